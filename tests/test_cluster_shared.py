"""`netalert run` nodes sharing what used to be each node's own: silences and mail threads.

Real `netalert run` processes share a private PostgreSQL and nats-server, mail goes to the
aiosmtpd sink, traps are real datagrams from the devices' own loopback addresses:

* a silence added with `netalert silence add` against node A mutes the alert owned by
  node B within the refresh bound (`[cluster] silence_refresh`); `silence list` and
  `silence expire` against B act on the same silence;
* the resolved mail of an alert whose shard moved to another node (its first owner
  stopped) threads under the first mail, although each node signs with its own domain.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from netalert.cluster.shared import CLEANUP_TABLES
from netalert.snmp.types import SnmpType
from netalert.snmp.wire.ber import PduType
from netalert.snmp.wire.berenc import encode_message
from tests.support.faults import ROOT, AgentProcess, metric_values
from tests.support.smtp import SmtpServer
from tests.test_cluster_agents import (
    _device_of,
    _mails,
    _send,
    _wait,
    _wait_split,
)
from tests.test_cluster_agents import _node as _agent_node

pytestmark = pytest.mark.e2e

REFRESH = 0.5  # [cluster] silence_refresh of the nodes
LINK_UP = "1.3.6.1.6.3.1.1.5.4"


def _node(
    tmp_path: Path, name: str, dsn: str, nats: str, smtp: SmtpServer, mib_cache: Path
) -> AgentProcess:
    """A node of the agents' test config, with a clear trap, its own mail domain and a
    quick silence refresh."""
    agent = _agent_node(tmp_path, name, dsn, nats, smtp, mib_cache)
    text = agent.config_text
    text = text.replace('key = ["ifIndex"]', 'key = ["ifIndex"]\nclear_trap = "IF-MIB::linkUp"')
    text = text.replace(f"{name}@example.org", f"netalert@{name}.example.org")
    # A group's changes go out a group_interval after its last flush, and a node that
    # takes a shard over flushes the groups it adopted at once (nothing new to mail):
    # with the default 5m, a resolve coming just after that waited 5 minutes.
    text = text.replace('group_wait = "0s"', 'group_wait = "0s"\ngroup_interval = "1s"')
    agent.config_text = text + f'silence_refresh = "{REFRESH}s"\n'
    return agent


def _cli(agent: AgentProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "netalert", *args, "-c", str(agent.config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


def _link_up(index: int) -> bytes:
    return encode_message(
        version=1,
        community=b"public",
        pdu_type=PduType.TRAP_V2,
        request_id=index + 10_000,
        varbinds=[
            ("1.3.6.1.2.1.1.3.0", SnmpType.TIMETICKS, 4300),
            ("1.3.6.1.6.3.1.1.4.1.0", SnmpType.OID, LINK_UP),
            (f"1.3.6.1.2.1.2.2.1.1.{index}", SnmpType.INTEGER, index),
            (f"1.3.6.1.2.1.2.2.1.7.{index}", SnmpType.INTEGER, 1),
            (f"1.3.6.1.2.1.2.2.1.8.{index}", SnmpType.INTEGER, 1),
        ],
    )


def _send_up(agent: AgentProcess, address: str, index: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((address, 0))
        sock.sendto(_link_up(index), ("127.0.0.1", agent.traps_port))


def _about(smtp: SmtpServer, index: int) -> list[EmailMessage]:
    out = []
    for message in smtp.received():
        parsed = message.parsed()
        body = parsed.get_body(("plain",))
        assert body is not None
        if f"fault-test ifIndex={index}" in body.get_content():
            out.append(parsed)
    return out


@pytest.fixture
def nodes() -> Iterator[list[AgentProcess]]:
    started: list[AgentProcess] = []
    yield started
    for agent in started:
        agent.cleanup()


def _two_nodes(
    tmp_path: Path,
    postgres: str,
    nats_url: str,
    smtp: SmtpServer,
    mib_cache: Path,
    nodes: list[AgentProcess],
) -> tuple[AgentProcess, AgentProcess, dict[int, str]]:
    """Nodes ``na`` and ``nb`` started; returns them and the owner of each shard."""
    a = _node(tmp_path, "na", postgres, nats_url, smtp, mib_cache)
    b = _node(tmp_path, "nb", postgres, nats_url, smtp, mib_cache)
    nodes += [a, b]
    a.start()
    b.start()
    return a, b, _wait_split(postgres, ["na", "nb"])


def test_a_silence_added_on_one_node_mutes_the_alert_another_node_owns(
    tmp_path: Path,
    postgres: str,
    nats_url: str,
    smtp_server: SmtpServer,
    mib_cache: Path,
    nodes: list[AgentProcess],
) -> None:
    a, b, owners = _two_nodes(tmp_path, postgres, nats_url, smtp_server, mib_cache, nodes)
    b_shards = {s for s, n in owners.items() if n == "nb"}
    (muted, muted_at), (_, other_at) = _device_of(b_shards), _device_of(b_shards, 1)

    added = _cli(a, "silence", "add", "--match", f"device={muted}", "--for", "1h",
                 "--comment", "maintenance")  # fmt: skip
    assert added.returncode == 0, added.stderr
    silence_id = added.stdout.strip()
    listed = _cli(b, "silence", "list")  # the other node's CLI sees the same table
    assert listed.returncode == 0 and silence_id in listed.stdout, listed

    time.sleep(REFRESH + 1.0)  # past nb's refresh bound
    _send(b, muted_at, 1)
    _send(b, other_at, 2)
    _wait("the unsilenced alert mailed", lambda: 2 in _mails(smtp_server), within=30)
    time.sleep(2.0)  # the silenced one would come now
    assert 1 not in _mails(smtp_server), "nb mailed an alert silenced on na"

    expired = _cli(b, "silence", "expire", silence_id)
    assert expired.returncode == 0, expired.stderr
    assert silence_id not in _cli(a, "silence", "list").stdout
    time.sleep(REFRESH + 1.0)
    _send(b, muted_at, 3)  # the silence is over on na's word too: mailed
    _wait("mailed after the expiry", lambda: 3 in _mails(smtp_server), within=30)
    assert b.metric("netalert_cluster_silence_reads_total") > 10  # every 0.5 s
    assert b.metric("netalert_cluster_silence_read_failures_total") == 0
    status, body = b.get("/metrics")  # the clean-up runs on every node (one at a time cleans)
    tables = metric_values(body, "netalert_cluster_pruned_rows_total")
    assert status == 200 and set(tables) == {f'table="{table}"' for table in CLEANUP_TABLES}, tables


def test_the_resolved_mail_after_a_failover_threads_under_the_first_mail(
    tmp_path: Path,
    postgres: str,
    nats_url: str,
    smtp_server: SmtpServer,
    mib_cache: Path,
    nodes: list[AgentProcess],
) -> None:
    a, b, owners = _two_nodes(tmp_path, postgres, nats_url, smtp_server, mib_cache, nodes)
    _, address = _device_of({s for s, n in owners.items() if n == "na"})

    _send(a, address, 1)
    _wait("the firing mail", lambda: len(_about(smtp_server, 1)) == 1, within=30)
    first = _about(smtp_server, 1)[0]
    assert "na.example.org" in str(first["Message-ID"])
    a.terminate()  # a clean stop: nb takes every shard at once
    _wait("nb holds every shard", lambda: set(_wait_split(postgres, ["nb"]).values()) == {"nb"},
          within=30)  # fmt: skip

    _send_up(b, address, 1)
    _wait("the resolved mail", lambda: len(_about(smtp_server, 1)) == 2, within=30)
    second = _about(smtp_server, 1)[1]
    assert re.search(r"resolved", str(second["Subject"]), re.IGNORECASE), second["Subject"]
    assert str(second["In-Reply-To"]) == str(first["Message-ID"]), (
        second["In-Reply-To"],
        first["Message-ID"],
    )
    assert str(first["Message-ID"]) in str(second["References"])
