"""A real `netalert run` mails along a routing tree: nested routes, regex and negative
matchers, ``continue`` and inheritance decide who gets which mail at a real SMTP server.

Three linkDown traps make three alerts (rules by ifIndex); the tree sends

- ``CoreLinkDown`` (critical) to the pager child (``rule=~Core.*``, ``continue``) and to
  the next sibling that matches (``rule!~Edge.*``), not to the catch-all child after it;
- ``EdgeLinkDown`` (warning) to the catch-all child, whose recipients, ``group_by`` and
  ``group_wait`` are its parent's;
- ``LabLinkDown`` (info) past the first top-level route to the second.

Every child sets no ``group_wait``: they inherit the parent's 1 s, so the mails come within
seconds (the default would be 30 s).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fault_checks import wait_mail
from tests.support.faults import AgentProcess, link_down, send_traps
from tests.support.ports import free_tcp_port, free_udp_port
from tests.support.smtp import SmtpServer

_CONFIG = """
[agent]
state_dir = "state"
http = "127.0.0.1:{http}"
drain_timeout = "2s"

[traps]
# the agent receives the traps itself: not a test of the trap workers (each a Python
# start; their tests: test_traps_workers*.py)
workers = 1
listen = ["127.0.0.1:{traps}"]
allow = ["127.0.0.0/8"]

[[rules]]
name = "CoreLinkDown"
trap = "IF-MIB::linkDown"
where = "ifIndex == 1"
severity = "critical"
summary = "core {{{{ ifIndex }}}}"

[[rules]]
name = "EdgeLinkDown"
trap = "IF-MIB::linkDown"
where = "ifIndex == 2"
severity = "warning"
summary = "edge {{{{ ifIndex }}}}"

[[rules]]
name = "LabLinkDown"
trap = "IF-MIB::linkDown"
where = "ifIndex == 3"
severity = "info"
summary = "lab {{{{ ifIndex }}}}"

[smtp]
host = "127.0.0.1"
port = {smtp}
from = "netalert <netalert@example.org>"

[[routes]]
name = "ops"
match = ["severity=~critical|warning"]
to = ["ops@example.org"]
group_by = ["rule"]
group_wait = "1s"

  [[routes.routes]]
  name = "pager"
  match = ["rule=~Core.*"]
  to = ["pager@example.org"]
  continue = true

  [[routes.routes]]
  name = "core"
  match = ["rule!~Edge.*"]
  to = ["core@example.org"]

  [[routes.routes]]
  name = "rest"

[[routes]]
name = "fallback"
to = ["fallback@example.org"]
group_wait = "1s"
"""


@pytest.fixture
def agent(tmp_path: Path, smtp_server: SmtpServer, mib_cache: Path) -> Iterator[AgentProcess]:
    http, traps = free_tcp_port(), free_udp_port()
    text = _CONFIG.format(http=http, traps=traps, smtp=smtp_server.port)
    proc = AgentProcess(tmp_path, text, http, mib_cache, traps_port=traps)
    yield proc
    proc.cleanup()


def test_a_nested_route_tree_mails_the_right_receivers(
    agent: AgentProcess, smtp_server: SmtpServer
) -> None:
    agent.start()
    send_traps(agent.traps_port, [link_down(1), link_down(2), link_down(3)])
    messages = wait_mail(smtp_server, 4, within=20)
    got = sorted((m.rcpt_tos, str(m.parsed()["Subject"]).split(" on ")[0]) for m in messages)
    assert got == [
        (("core@example.org",), "[FIRING] critical CoreLinkDown"),
        (("fallback@example.org",), "[FIRING] info LabLinkDown"),
        (("ops@example.org",), "[FIRING] warning EdgeLinkDown"),
        (("pager@example.org",), "[FIRING] critical CoreLinkDown"),
    ], agent.log()[-3000:]
    code, _ = agent.terminate()
    assert code == 0, agent.log()[-3000:]
    assert len(smtp_server.received()) == 4  # nothing more on the drain: no other route took one
