"""The short summary ``netalert check-config`` prints for a valid config."""

from __future__ import annotations

from pathlib import Path

from netalert.config.models import Config

__all__ = ["summary"]


def summary(config: Config, path: Path) -> str:
    """Returns a few lines describing what the config will do; no secrets."""
    poll_rules = sum(1 for r in config.rules if not r.is_trap_rule)
    trap_rules = len(config.rules) - poll_rules
    names = ", ".join(d.name for d in config.devices[:5])
    if len(config.devices) > 5:
        names += ", ..."
    listeners = (
        ", ".join(str(a.with_default(162)) for a in config.traps.listen)
        if config.traps.enabled
        else "disabled"
    )
    smtp = config.smtp
    lines = [
        f"{path}: ok",
        f"  devices: {len(config.devices)}" + (f" ({names})" if names else ""),
        f"  rules: {len(config.rules)} ({poll_rules} poll, {trap_rules} trap)",
        f"  routes: {len(config.routes)}",
        f"  trap listeners: {listeners}",
        f"  smtp: {smtp.host}:{smtp.port} ({smtp.security})",
        f"  status page: {'http://' + str(config.agent.http) if config.agent.http else 'disabled'}",
    ]
    cluster = config.cluster
    if cluster is not None:  # its servers are named by secrets: only what is not one
        lines.append(
            f"  cluster: node {cluster.node}, {cluster.shards} shards"
            " (PostgreSQL and NATS not contacted: netalert cluster status does)"
        )
    return "\n".join(lines)
