"""netalert: SNMP watches devices, SMTP tells people."""

__all__ = ["__version__", "version"]

# Written here only: pyproject.toml reads it (dynamic version), so the wheel's metadata,
# `netalert --version`, the status page and netalert_build_info all show this string.
__version__ = "0.2.0"


def version() -> str:
    """This netalert's version: the same as its wheel's, ``netalert --version``'s and
    the status page's."""
    return __version__
