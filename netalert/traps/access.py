"""Who may send traps: source networks and v1/v2c communities.

Decisions are cached per source address (bounded), because a trap storm
comes from few addresses and ``ip_address in network`` costs microseconds.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

__all__ = ["AccessPolicy", "plain_address"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def plain_address(host: str) -> str:
    """``::ffff:192.0.2.1`` → ``192.0.2.1``; other addresses unchanged (zone kept)."""
    if host.startswith("::ffff:") and "." in host:
        return host[7:]
    return host


class AccessPolicy:
    """Allowed networks and communities of ``[traps]``."""

    def __init__(
        self,
        networks: Iterable[IPNetwork],
        communities: Iterable[bytes],
        *,
        cache_size: int = 65_536,
    ) -> None:
        self._networks = tuple(networks)
        self.communities = frozenset(communities)
        self._cache: dict[str, bool] = {}
        self._cache_size = cache_size

    def allowed(self, host: str) -> bool:
        """True when ``host`` (an address string) is inside an allowed network."""
        hit = self._cache.get(host)
        if hit is not None:
            return hit
        try:
            address = ipaddress.ip_address(host.partition("%")[0])
        except ValueError:
            return False
        ok = any(address in net for net in self._networks if net.version == address.version)
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        self._cache[host] = ok
        return ok

    def community_ok(self, community: bytes) -> bool:
        """True when ``community`` is configured."""
        # Communities cross the network in clear text; a set lookup hides nothing worth hiding.
        return community in self.communities
