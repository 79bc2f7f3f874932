"""``netalert demo``: simulated devices, the real agent and a local mail sink.

Nothing here is imported by the service: the demo drives the agent from the
outside, like a user with a lab would (SNMP, traps, SMTP on loopback).
"""

from __future__ import annotations

from netalert.demo.run import DemoResult, run_demo

__all__ = ["DemoResult", "run_demo"]
