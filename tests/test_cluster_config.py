"""The ``[cluster]`` section: optional, validated, its DSN a secret like the others."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from netalert.config import load_config_text
from netalert.config.models import ClusterConfig
from netalert.errors import ConfigError

DSN = "postgresql://netalert:pw@127.0.0.1:5432/netalert"


def _problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, env=env or {})
    return info.value.problems


def test_without_cluster_nothing_changes() -> None:
    assert load_config_text("", env={}).cluster is None


def test_defaults() -> None:
    cluster = load_config_text(f'[cluster]\npostgres = "{DSN}"\n', env={}).cluster
    assert cluster is not None
    assert cluster.nats == "nats://127.0.0.1:4222"
    assert cluster.shards == 64
    assert cluster.lease == timedelta(seconds=10)
    assert cluster.node  # the host name
    assert cluster.postgres.get_secret_value() == DSN
    assert "pw" not in repr(cluster)


def test_all_keys() -> None:
    text = f"""
[cluster]
postgres = "{DSN}"
nats = "nats://10.0.0.1:4222, tls://10.0.0.2:4222"
node = "nms-a"
shards = 16
lease = "3s"
"""
    cluster = load_config_text(text, env={}).cluster
    assert cluster == ClusterConfig.model_validate(
        {
            "postgres": DSN,
            "nats": "nats://10.0.0.1:4222, tls://10.0.0.2:4222",
            "node": "nms-a",
            "shards": 16,
            "lease": "3s",
        }
    )
    assert cluster.nats_servers() == ["nats://10.0.0.1:4222", "tls://10.0.0.2:4222"]


def test_dsn_from_env_and_from_file(tmp_path: Path) -> None:
    text = '[cluster]\npostgres = "postgresql://netalert:${PGPASS}@db/netalert"\n'
    cluster = load_config_text(text, env={"PGPASS": "s3cret"}).cluster
    assert cluster is not None
    assert cluster.postgres.get_secret_value() == "postgresql://netalert:s3cret@db/netalert"
    (tmp_path / "dsn").write_text(DSN + "\n")
    config = tmp_path / "config.toml"
    cluster = load_config_text('[cluster]\npostgres_file = "dsn"\n', source=config, env={}).cluster
    assert cluster is not None and cluster.postgres.get_secret_value() == DSN


def test_errors_name_the_key_and_never_the_secret() -> None:
    problems = _problems(
        """
[cluster]
postgres = "mysql://root:topsecret@db/x"
nats = "http://x:4222"
node = "bad name"
shards = 0
lease = "500ms"
colour = 1
"""
    )
    assert problems == [
        "cluster.postgres: must be a URI starting with postgresql://",
        "cluster.nats: 'http://x:4222' is not a URL nats://HOST:PORT or tls://HOST:PORT",
        "cluster.node: letters, digits, '.', '_' and '-' only, at most 63, starting with a "
        "letter or digit",
        "cluster.shards: must be at least 1, got 0",
        "cluster.lease: must be between 1s and 10m",
        "cluster.colour: unknown key",
    ]
    assert not any("topsecret" in line for line in problems)


def test_postgres_is_required() -> None:
    assert _problems("[cluster]\n") == ["cluster.postgres: required key is missing"]


def test_dsn_and_file_both_given() -> None:
    problems = _problems(f'[cluster]\npostgres = "{DSN}"\npostgres_file = "x"\n')
    assert problems == ["cluster.postgres_file: give either postgres or postgres_file, not both"]


def test_check_config_no_longer_warns_about_cluster() -> None:
    # `netalert run` is a cluster node now: the warning that it ignores [cluster] is gone.
    from netalert.config.risks import config_warnings

    config = load_config_text(f'[cluster]\npostgres = "{DSN}"\n', env={})
    assert not [w for w in config_warnings(config) if w.path == "cluster"]


def test_stream_bounds_and_ack_wait() -> None:
    config = load_config_text(f'[cluster]\npostgres = "{DSN}"\n', env={})
    cluster = config.cluster
    assert cluster is not None
    assert (cluster.ack_wait.total_seconds(), cluster.duplicate_window.total_seconds()) == (30, 120)
    assert (cluster.stream_max_messages, cluster.stream_max_bytes) == (1_000_000, 1 << 30)
    assert cluster.stream_max_age.total_seconds() == 86400
    assert cluster.publish_hold_max == 10_000
    problems = _problems(
        f'[cluster]\npostgres = "{DSN}"\nack_wait = "0s"\nstream_max_messages = 10\n'
        'stream_max_age = "1m"\nduplicate_window = "5m"\npublish_hold_max = 0\n'
    )
    assert problems == [
        "cluster.ack_wait: must be between 1s and 1h",
        "cluster.stream_max_messages: must be at least 1000, got 10",
        "cluster.publish_hold_max: must be at least 1, got 0",
    ]
    problems = _problems(
        f'[cluster]\npostgres = "{DSN}"\nstream_max_age = "1m"\nduplicate_window = "5m"\n'
    )
    assert problems == [
        "cluster: duplicate_window (5m) must not be longer than stream_max_age (1m)"
    ]


def test_the_three_node_example_of_the_docs_is_a_valid_config() -> None:
    """docs/cluster.md's 3-node config and the systemd drop-in it installs agree."""
    import configparser
    import re

    root = Path(__file__).resolve().parents[1]
    page = (root / "docs" / "cluster.md").read_text()
    section = page[page.index("## Three nodes with systemd") :]
    toml = re.search(r"```toml\n(.*?)```", section, re.S)
    assert toml is not None
    dsn = "postgresql://netalert:pw@db.example.org:5432/netalert"
    cluster = load_config_text(toml.group(1), env={"NETALERT_POSTGRES": dsn}).cluster
    assert cluster is not None and cluster.shards == 64
    assert cluster.postgres.get_secret_value() == dsn
    assert len(cluster.nats_servers()) == 2
    dropin = configparser.ConfigParser(interpolation=None)
    dropin.read(root / "contrib" / "netalert-cluster.conf")
    assert dropin["Service"]["EnvironmentFile"] == "/etc/netalert/cluster.env"
    assert "netalert.service.d/cluster.conf" in section
    assert "/etc/netalert/cluster.env" in section


def test_a_fixed_engine_id_is_refused_on_a_cluster_node() -> None:
    # informs are per node: one engine ID on several nodes would run several clocks
    text = f'[traps]\nengine_id = "80001f8804746573742d7472617073"\n[cluster]\npostgres = "{DSN}"\n'
    assert _problems(text) == [
        "traps.engine_id: leave it empty with [cluster]: each node keeps its own engine ID "
        "(informs go to one node, see docs/cluster.md)"
    ]
    assert load_config_text(text.partition("[cluster]")[0], env={}).traps.engine_id


def test_check_config_summary_names_the_node_and_says_what_it_did_not_check() -> None:
    # check-config never connects: a newcomer is told so, and where to look instead
    from netalert.config.summary import summary

    config = load_config_text(f'[cluster]\npostgres = "{DSN}"\nnode = "nms-a"\n', env={})
    lines = summary(config, Path("config.toml")).splitlines()
    assert (
        "  cluster: node nms-a, 64 shards (PostgreSQL and NATS not contacted:"
        " netalert cluster status does)"
    ) in lines
    assert not any("pw" in line for line in lines)
    plain = summary(load_config_text("", env={}), Path("config.toml"))
    assert "cluster" not in plain
