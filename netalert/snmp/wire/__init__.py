"""SNMP on the wire: BER decoding and encoding, the v3 USM, value codecs."""
