"""netalert: SNMP watches devices, SMTP tells people."""

__all__ = ["__version__"]

__version__ = "0.1.0"
