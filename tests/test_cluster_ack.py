"""[ack] on cluster nodes: one IMAP reader for the cluster, acks in PostgreSQL.

Two real `netalert run` nodes share a private PostgreSQL and nats-server, mail goes to the
aiosmtpd sink and replies land in a private Dovecot:

* the node holding the IMAP reader is not the owner of the alert: the operator's reply
  "ack" is acknowledged, the owner shows it on /api/alerts and stops repeating the alert;
* the IMAP-holding node is killed (-9): the other node takes the mailbox over and
  acknowledges the next reply.
"""

from __future__ import annotations

import email
import email.policy
import json
import time
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import pytest

from tests.support.dovecot import Dovecot
from tests.support.faults import AgentProcess
from tests.support.smtp import SmtpServer
from tests.test_ack_e2e import _ACK, _reply
from tests.test_cluster_agents import _device_of, _send, _wait, _wait_split
from tests.test_cluster_agents import _node as _agent_node

pytestmark = pytest.mark.e2e


def _node(
    tmp_path: Path,
    name: str,
    dsn: str,
    nats: str,
    smtp: SmtpServer,
    mib_cache: Path,
    dovecot: Dovecot,
    ca: Path,
) -> AgentProcess:
    agent = _agent_node(tmp_path, name, dsn, nats, smtp, mib_cache)
    text = agent.config_text.replace(
        'group_wait = "0s"', 'group_wait = "0s"\ngroup_interval = "1s"\nrepeat_interval = "2s"'
    )
    agent.config_text = text + _ACK.format(
        operators='"oncall@example.org"',
        imap=dovecot.tls_port,
        user=dovecot.user,
        password=dovecot.password,
        ca=ca,
    )
    return agent


@pytest.fixture
def nodes() -> Iterator[list[AgentProcess]]:
    started: list[AgentProcess] = []
    yield started
    for agent in started:
        agent.cleanup()


def _firing(smtp: SmtpServer, index: int) -> list[Message]:
    out = []
    for received in smtp.received():
        msg = email.message_from_bytes(received.data, policy=email.policy.default)
        body = msg.get_body(("plain",))  # type: ignore[attr-defined]
        text = str(body.get_content()) if body is not None else ""
        if msg.get("X-Netalert-State") == "firing" and f"ifIndex={index}" in text:
            out.append(msg)
    return out


def _acked(agent: AgentProcess, index: int) -> bool:
    status, body = agent.get("/api/alerts")
    if status != 200:
        return False
    return any(
        a["ack"] and a["labels"].get("ifIndex") == str(index) for a in json.loads(body)["alerts"]
    )


def _reader(agents: list[AgentProcess], *, within: float) -> AgentProcess:
    """The node whose IMAP reader is connected (one, and only one)."""
    deadline = time.monotonic() + within
    while True:
        ready = [a for a in agents if "event=ack_imap_ready" in a.log()]
        if ready:
            assert len(ready) == 1, "two nodes read the mailbox"
            return ready[0]
        logs = "\n".join(a.log()[-1500:] for a in agents)
        assert time.monotonic() < deadline, f"no node reads the mailbox:\n{logs}"
        time.sleep(0.1)


def test_an_ack_reaches_the_owner_and_the_mailbox_fails_over(
    tmp_path: Path,
    postgres: str,
    nats_url: str,
    smtp_server: SmtpServer,
    mib_cache: Path,
    dovecot: Dovecot,
    dovecot_ca_file: Path,
    nodes: list[AgentProcess],
) -> None:
    args = (postgres, nats_url, smtp_server, mib_cache, dovecot, dovecot_ca_file)
    a = _node(tmp_path, "na", *args)
    b = _node(tmp_path, "nb", *args)
    nodes += [a, b]
    a.start()
    b.start()
    owners = _wait_split(postgres, ["na", "nb"])
    reader = _reader([a, b], within=30)
    owner = b if reader is a else a
    time.sleep(2.0)  # the other node tried the lock meanwhile (every lease / 3 = 1 s)
    assert "event=ack_imap_ready" not in owner.log(), "both nodes read the mailbox"
    assert reader.metric("netalert_cluster_ack_mailbox_held") == 1
    assert owner.metric("netalert_cluster_ack_mailbox_held") == 0
    _, address = _device_of({s for s, n in owners.items() if n == owner.directory.name})

    # 1. The owner mails the alert and repeats it; the reply goes to the other node's reader.
    _send(owner, address, 1)
    _wait("a repeat before the ack", lambda: len(_firing(smtp_server, 1)) >= 2, within=30)
    dovecot.deliver(_reply(_firing(smtp_server, 1)[0], "ack on it"))
    _wait("the owner shows the ack", lambda: _acked(owner, 1), within=30)
    time.sleep(1.5)  # a repeat being mailed right now is let through
    before = len(_firing(smtp_server, 1))
    time.sleep(5.0)  # more than two repeat intervals
    assert len(_firing(smtp_server, 1)) == before, "the acknowledged alert still repeats"
    assert "event=ack_audit" in reader.log()

    # 2. The reader's node dies: the survivor takes the mailbox over and acks the next reply.
    reader.kill9()
    survivor = owner
    _wait(
        "the survivor reads the mailbox",
        lambda: "event=ack_imap_ready" in survivor.log(),
        within=30,
    )
    _wait("the survivor holds every shard", lambda: len(_wait_split(postgres, [
        survivor.directory.name])) > 0, within=30)  # fmt: skip
    _send(survivor, address, 2)
    _wait("the second alert mailed", lambda: len(_firing(smtp_server, 2)) >= 1, within=30)
    dovecot.deliver(_reply(_firing(smtp_server, 2)[0], "ack"))
    _wait("the survivor acks the next reply", lambda: _acked(survivor, 2), within=30)
    assert _acked(survivor, 1)  # the first ack is still in force
