"""The ``[ack]`` config models (defined in :mod:`netalert.config.ack`, see there)."""

from __future__ import annotations

from netalert.config.ack import TOKEN_FIELD, AckConfig, ImapConfig, operator_pattern

__all__ = ["TOKEN_FIELD", "AckConfig", "ImapConfig", "operator_pattern"]
