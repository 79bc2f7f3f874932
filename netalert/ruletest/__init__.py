"""Rule tests: ``netalert test rules FILE...`` runs a config's rules in virtual time.

A test file (TOML) names a config, feeds its devices' polls as series of values
and its traps at given times, and states which alerts (and, optionally, which
notifications) to expect at given times. The runner drives the agent's own
rule engine, alert store, dispatcher and mail renderer with a virtual clock:
no socket, no SMTP, milliseconds per test.
"""

from __future__ import annotations

__all__: list[str] = []
