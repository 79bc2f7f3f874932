"""SNMP: the poller (UDP 161) and the trap/inform receiver (UDP 162)."""
