"""Trap and inform intake: sockets, access control, decoding, storms, naming."""
