"""config.toml: models, loading and the check-config summary."""

from netalert.config.loader import load_config, load_config_text
from netalert.config.models import Config
from netalert.config.summary import summary

__all__ = ["Config", "load_config", "load_config_text", "summary"]
