"""The cluster's ``/metrics`` source (families declared in :mod:`netalert.metrics`)."""

from __future__ import annotations

from collections.abc import Callable

from netalert.cluster.leases import ClusterStats
from netalert.metrics import MetricSample, Sample, counter_samples

__all__ = ["cluster_source"]


def cluster_source(stats: ClusterStats) -> Callable[[], list[Sample]]:
    """A metrics source reading ``stats`` (register it as ``"cluster"``)."""

    def source() -> list[Sample]:
        return [
            MetricSample("netalert_cluster_nodes", stats.nodes),
            MetricSample("netalert_shards_owned", stats.shards_owned),
            MetricSample("netalert_lease_lost_total", stats.lease_lost),
            MetricSample("netalert_stream_lag", stats.stream_lag),
            *counter_samples("netalert_cluster_traps_rejected_total", "reason", stats.rejected),
        ]

    return source
