"""Polling: the scheduler, the SNMP clients, counters, rates and rows."""
