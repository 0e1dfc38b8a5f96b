"""Notice policy, apart from detection: which notes are raised, at which journald priority, and the
hosts that are never reported (Zeek keeps such policy in its notice framework, not in the scripts
that detect).
"""

from __future__ import annotations

import syslog
from collections.abc import Iterable
from ipaddress import IPv4Network, IPv6Network
from typing import Any

from icmpsensor.notice.types import BY_NAME, NOTE_TYPES

PRIORITY_VALUES = {
    "emerg": syslog.LOG_EMERG,
    "alert": syslog.LOG_ALERT,
    "crit": syslog.LOG_CRIT,
    "err": syslog.LOG_ERR,
    "warning": syslog.LOG_WARNING,
    "notice": syslog.LOG_NOTICE,
    "info": syslog.LOG_INFO,
    "debug": syslog.LOG_DEBUG,
}


def enabled_bits(switches: Any) -> int:
    """The bits (NoteType.bit) of the notes `detection.notices` switches on."""
    return sum(note.bit for note in NOTE_TYPES if getattr(switches, note.switch))


def journal_priority(priorities: Any, note: str) -> int:
    """The syslog priority `journald.priorities` gives a note (warning for a note the table lacks)."""
    known = BY_NAME.get(note)
    return PRIORITY_VALUES[getattr(priorities, known.switch) if known is not None else "warning"]


class _NetworkIndex:
    """Networks of one address family grouped by netmask, for one set lookup per prefix length."""

    def __init__(self, networks: Iterable[IPv4Network | IPv6Network]) -> None:
        by_mask: dict[int, set[int]] = {}
        for net in networks:
            by_mask.setdefault(int(net.netmask), set()).add(int(net.network_address))
        self.tables = tuple((mask, frozenset(nets)) for mask, nets in by_mask.items())

    def contains(self, addr: int) -> bool:
        return any(addr & mask in nets for mask, nets in self.tables)


class HostAllowlist:
    """`allowlist.hosts`: addresses and networks whose traffic is never reported."""

    def __init__(self, hosts: Iterable[IPv4Network | IPv6Network]) -> None:
        hosts = tuple(hosts)
        self.empty = not hosts
        self._v4 = _NetworkIndex(n for n in hosts if n.version == 4)
        self._v6 = _NetworkIndex(n for n in hosts if n.version == 6)

    def allowed(self, packed_addr: bytes) -> bool:
        """True if the packed address (4 or 16 bytes) lies inside an allowlisted network."""
        size = len(packed_addr)
        if size == 4:
            return self._v4.contains(int.from_bytes(packed_addr, "big"))
        if size == 16:
            return self._v6.contains(int.from_bytes(packed_addr, "big"))
        return False
