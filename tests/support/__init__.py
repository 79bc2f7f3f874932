"""Shared test fixtures: real net-snmp daemons and a real aiosmtpd server."""
