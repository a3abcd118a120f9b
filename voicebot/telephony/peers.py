"""Who may connect to a phone door that has no authentication of its own (Asterisk
AudioSocket): an allow-list of IP networks, checked when a connection is accepted, before a byte
is read. No I/O: the TCP door asks, and closes the refused.

A refused peer is logged once (a scanner or a misrouted PBX retries; one line says it all), and
the set of logged peers is bounded so a flood of addresses cannot grow it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_LOGGED_PEERS = 1024


def parse_networks(entries: Iterable[str]) -> tuple[IpNetwork, ...]:
    """`["10.0.0.0/8", "192.0.2.7"]` as networks; a bad entry raises ValueError naming it."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(str(entry).strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"allow_from entry {str(entry)[:60]!r} is not an IP address or network "
                "(e.g. 10.0.0.0/8, 192.0.2.7, fd00::/8)"
            ) from None
    return tuple(networks)


def is_loopback(host: str) -> bool:
    """Whether a listening address reaches this machine only (`0.0.0.0`, `::`, a name: no)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class PeerFilter:
    def __init__(self, networks: Iterable[str]) -> None:
        self.networks = parse_networks(networks)
        self._logged: set[str] = set()

    def allows(self, host: str) -> bool:
        """True when the allow-list is empty, or `host` is in one of its networks."""
        if not self.networks:
            return True
        try:
            ip = ipaddress.ip_address(host.partition("%")[0])  # an IPv6 zone id is not the peer
        except ValueError:
            return False  # not an IP peer (a UNIX socket): not on the list
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # a dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d
        return any(ip.version == net.version and ip in net for net in self.networks)

    def first_refusal(self, host: str) -> bool:
        """True the first time `host` is refused (log it then), False afterwards."""
        if host in self._logged or len(self._logged) >= MAX_LOGGED_PEERS:
            return False
        self._logged.add(host)
        return True
