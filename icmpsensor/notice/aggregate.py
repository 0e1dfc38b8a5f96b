"""Notice storms folded into counts: per note, per host, per interval (issue 13).

Zeek's notice framework suppresses a notice whose identifier was seen within `suppress_for`; here the
identifier is the note and the host a storm names: the destination thousands of spoofed sources send
"exfiltration" to, or the source that sends it to thousands of destinations. Within one interval
(`detection.aggregate_interval`, 60 s of packet time), the first `aggregate_max_notices` (10) notices of one
note towards one destination, or from one source, are written as they come; the others are counted,
and when the interval ends one notice per (note, host) tells the rest: how many, from (or to) how many
peers, their bytes, and a sample of the peers. The notices of a flow whose notice was folded are folded
too (its ExfilSummary joins its DataExfil), and a flow whose notice was written keeps being written, so
every uid in notice.log has its whole story (but UnpairedEchoReply, raised per packet: each is folded as a storm's
notice is, whatever its flow's earlier ones). Notices that tell many flows already (ExfilSpread: a host's to
or from many peers; SlowExfil: a pair's over a day) are not folded per host, and the aggregates never.
A storm can avoid repeating any host (one spoofed source to one spoofed destination per flow): past
`aggregate_max_per_note` (100) notices of one note written in the interval, whatever their hosts, the rest
are folded into one aggregate per note, its peers host pairs (Suricata's rate_filter `track by_rule`). The host
folds come first: a storm towards one victim is told as the victim's. ExfilSpread and SlowExfil too are folded
past their note's quota (one ExfilSpread per spoofed source is a storm of them), without tying the flow they
were raised on to their fold.
An aggregate names a sample of the peers folded, drawn at random weighted by the bytes their notices sent (a weighted
random sample without replacement, Efraimidis and Spirakis' A-Res: each notice's key ln(u) / bytes, the peers of the
largest keys, u from a keyed hash of the peer and the notice's time, keyed by SAMPLE_KEY, this host's: the same
input gives the same sample on one host, and an attacker cannot choose decoys that win), and the peers of its
LARGEST folded notices by bytes sent. A storm of small flows that uses up a quota cannot hide a real exfiltration
folded after it, whose ExfilSummary carries its whole size, nor can decoys as large as it sent first (they filled a
sample of the first peers folded, and `largest`: red team, 2026-12-08): hiding a flow of S bytes so that it is
named once in twenty takes decoys of ~160 S in all; and a notice of a flow that sent NEVER_FOLDED bytes or more is
not folded at all.

It runs where notices are written (runmode/pipeline.py), before evidence is started and before every
sink: notice.log, journald and stdout tell the same story, and a folded notice costs no evidence.
Pure: notices and a clock in, notices out. Memory: counts of the notices written per (note, host) and per
note in the interval (at most MAX_KEYS hosts' counts, then a notice of a new host is written uncounted but for
its note's quota; with max_per_note, two counts a written notice at most), a fold only for a key past its
quota, a bounded sample, the distinct peers of each fold (at most MAX_PEERS, and MAX_PEER_ENTRIES over all the
folds of an interval: then the peers read "N+"), and how each flow's first notice went, across intervals (a
summary follows its flow's first notice minutes later) until the flow's ExfilSummary, its last notice: so for
the alerted flows still alive (at most MAX_UIDS, oldest forgotten first, for those that never get a summary).
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import math
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from icmpsensor.accelerators import aggregate_extension as _fastaggregate
from icmpsensor.notice.record import Notice
from icmpsensor.notice.text import format_size
from icmpsensor.notice.types import EXFIL_SPREAD, EXFIL_SUMMARY, SLOW_EXFIL, UNPAIRED_ECHO_REPLY

NOT_PER_HOST = frozenset((EXFIL_SPREAD.name, SLOW_EXFIL.name))  # folded only past their note's quota
# Raised for every packet (a reply that answers nothing): each folded as a storm's notice is, not kept written with
# its flow's first (one flow of unsolicited replies raised 6,000 in 10 minutes, all written)
PER_PACKET = frozenset((UNPAIRED_ECHO_REPLY.name,))
# A storm is cheap because its flows are small (one packet, at most a 64 KB datagram): a notice of a flow that sent
# this many bytes or more is written whatever the quotas, and so is the rest of its flow's story. Three decoy flows
# larger than a real exfiltration pushed it out of an aggregate's `largest` (its sample then the first peers folded).
NEVER_FOLDED = 65_536
MAX_KEYS = 100_000
MAX_UIDS = 1_000_000
# A storm is over when nothing has been folded for QUIET seconds (of the clock advance() is given: packet time, or
# live the wall clock at each round of the loop): what was folded is told then, not at the end of the interval, whose
# quotas go on.
QUIET = 1.0
# ... or at the latest MAX_HOLD seconds after the first notice folded since the last were told: one spoofed alerting
# flow every 0.8 s never lets a storm be quiet, and held its aggregate (and the real exfiltration in its `largest`)
# to the interval's end (red team, 2026-12-06)
MAX_HOLD = 10.0
_UNSEEN = ("", "")  # a flow none of whose notices came yet
ANY_HOST = ("pairs", "")  # the (role, host) of a note's fold past max_per_note: its peers are host pairs


@dataclass(slots=True)
class _Fold:
    """What was folded for one (note, role, host) in the interval."""

    folded: int = 0
    peers: set[str] = field(default_factory=set)  # distinct peers of the folded notices (up to MAX_PEERS)
    sample: list[str] = field(default_factory=list)  # drawn weighted by bytes (its keys in sample_keys)
    sample_keys: list[float] = field(default_factory=list)
    bytes_sent: int = 0
    first: float = 0.0
    last: float = 0.0
    capped: bool = False  # a peer was not kept (MAX_PEERS, MAX_PEER_ENTRIES): the peers are a lower bound
    src: str = ""  # the first folded notice's hosts (one of them the fold's host): the aggregate's
    dst: str = ""
    largest: list[tuple[int, str]] = field(default_factory=list)  # a min-heap of (bytes sent, peer), LARGEST kept


LARGEST = 3  # the folded notices with the most bytes sent whose peers an aggregate names (at most its sample)

MAX_PEERS = 65_536  # distinct peers kept per fold
# ... and over all the folds of an interval (text addresses, ~100 bytes each): with a long aggregation interval a
# storm's folds would otherwise keep every source it came from
MAX_PEER_ENTRIES = 1_000_000


def _host_sample_key() -> int:
    """The key of the samples' draw: this host's (systemd's machine ID, hashed for this use as sd-id128's
    app-specific IDs are: the ID itself is not to be shown), a constant without one."""
    try:
        machine = Path("/etc/machine-id").read_bytes().strip()
    except OSError:
        machine = b""
    digest = hashlib.blake2b(b"icmpsensor aggregate sample\0" + machine, digest_size=8).digest()
    return int.from_bytes(digest, "little")


SAMPLE_KEY = _host_sample_key()
_MASK64 = (1 << 64) - 1


def sample_u(key: int, peer: str, ts: float) -> float:
    """A number in (0, 1), uniform to whoever does not know `key`, for a folded notice of `peer` at `ts`: FNV-1a of
    the peer's bytes from `key`, its time's IEEE bits mixed in by SplitMix64's finalizer (_fastaggregate.c
    sample_u the same)."""
    h = key
    for byte in peer.encode():
        h = ((h ^ byte) * 0x100000001B3) & _MASK64
    h ^= struct.unpack("<Q", struct.pack("<d", ts))[0]
    h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & _MASK64
    h ^= h >> 31
    return ((h >> 11) + 0.5) / 9007199254740992.0  # 2^53


class NoticeAggregator:
    __slots__ = (
        "_filter_in_c",
        "_first_folded",
        "_folds",
        "_largest_kept",
        "_last_folded",
        "_peer_entries",
        "_sample_key",
        "_uids",
        "_written",
        "aggregates",
        "folded",
        "interval",
        "max_notices",
        "max_per_note",
        "sample",
        "window_start",
    )

    def __init__(self, interval: float, max_notices: int, sample: int, max_per_note: int = 0, *,
                 accelerated: bool = True, sample_key: int | None = None) -> None:
        """`accelerated`: filter and fold in C (notice/_fastaggregate.c) when it is built; False: only the Python
        reference (filter's loop, _fold and the methods it calls; the equivalence tests). `sample_key`: the key of
        the samples' draw (SAMPLE_KEY, this host's, by default; tests give others)."""
        self._sample_key = SAMPLE_KEY if sample_key is None else sample_key & _MASK64
        self._filter_in_c = _fastaggregate.filter if accelerated and _fastaggregate is not None else None
        self.reconfigure(interval, max_notices, sample, max_per_note)
        self.window_start: float | None = None
        self._folds: dict[tuple[str, str, str], _Fold] = {}
        # (note, role, host) -> notices written as they came; (note, *ANY_HOST): of the note, whatever the hosts
        self._written: dict[tuple[str, str, str], int] = {}
        self._uids: dict[str, tuple[str, str] | None] = {}  # uid -> (role, host) it is folded under; None: written
        self.folded = 0  # notices folded since start (stats)
        self._peer_entries = 0  # peers kept over all the folds of the interval
        self._last_folded = float("-inf")  # the time of the latest notice folded
        self._first_folded = float("inf")  # the time of the earliest notice folded since the last were told
        self.aggregates = 0  # aggregate notices written since start

    @property
    def enabled(self) -> bool:
        return self.interval > 0 and self.max_notices > 0

    def reconfigure(self, interval: float, max_notices: int, sample: int, max_per_note: int) -> None:
        """The settings (at start and at each reload); max_per_note 0: no quota per note."""
        self.interval, self.max_notices, self.sample, self.max_per_note = interval, max_notices, sample, max_per_note
        self._largest_kept = min(LARGEST, sample)

    def fold_all(self, interval: float) -> None:
        """From now on a note's notices are folded but its first of each host and of the note, and those of a flow
        whose first notice was written (a live stop past its flush deadline: the open flows' summaries told as a
        storm's are); `interval` where aggregation was off."""
        self.reconfigure(self.interval or interval, 1, self.sample, 1)

    def filter(self, notices: Iterable[Notice]) -> list[Notice]:
        """The notices to write now: aggregates of an interval that has ended, then those not folded."""
        if not self.enabled:
            return list(notices)
        if self._filter_in_c is not None:
            return self._filter_in_c(self, notices)  # the loop below in C (a storm: two notices a flow)
        out: list[Notice] = []
        for notice in notices:
            out.extend(self.advance(notice.ts))
            if self._fold(notice):
                self.folded += 1
            else:
                out.append(notice)
        return out

    def advance(self, now: float) -> list[Notice]:
        """The aggregates due at `now`: all of them when the interval that began more than `interval` ago has
        ended (a new interval begins), those folded so far when nothing was folded for QUIET seconds (the storm is
        over) or the first of them was folded MAX_HOLD seconds ago (the interval and its quotas go on); all of them
        when aggregation was switched off."""
        if self.window_start is None:
            self.window_start = now
            return []
        if not self.enabled:  # switched off by a reload: what was folded before is told now
            return self._tell(now) if self._folds else []
        if now >= self.window_start + self.interval:
            due = self.flush(self.window_start + self.interval)
            self.window_start = now
            return due
        return self.told_if_due(now)

    def told_if_due(self, now: float) -> list[Notice]:
        """What was folded, when nothing has been folded for QUIET seconds at `now` (the storm is over) or the
        first of it MAX_HOLD seconds ago, else nothing. Cheap when nothing waits: live, every round of the loop asks
        (not only each tick), so that a storm is told QUIET after its end, not up to a tick later."""
        return self._tell(now) if self.due_at(now) else []

    def due_at(self, now: float) -> bool:
        """Whether something was folded and, at `now`, nothing has been for QUIET seconds or the first of it was
        MAX_HOLD seconds ago."""
        return bool(self._folds) and (now - self._last_folded >= QUIET or now - self._first_folded >= MAX_HOLD)

    def flush(self, ts: float | None = None) -> list[Notice]:
        """The aggregates of the interval so far (end of input, or the interval's end); a new interval."""
        due = self._tell(ts)
        self._written.clear()
        return due

    def _tell(self, ts: float | None) -> list[Notice]:
        """The aggregates of what was folded so far (at `ts`, never before a fold's last notice; None: each at its
        last notice's time); forgotten."""
        due = [self._aggregate(key, fold, fold.last if ts is None else max(ts, fold.last))
               for key, fold in self._folds.items() if fold.folded]
        self.aggregates += len(due)
        self._folds.clear()
        self._peer_entries = 0
        self._first_folded = float("inf")
        return due

    def stop_hooks(self) -> tuple[Callable[[str], bool], Callable[[Iterable[Notice]], list[Notice]]]:
        """folds and filter, for a detector's C path to call a packet at a time (Detector.process_many): the C
        functions bound to this aggregator where they are built (no Python frame a call; filter's is list while
        aggregation is off, as filter answers then), else the methods. Asked again after a reload. The C filter
        (`_fastaggregate.Filter`) also lets the detector's C path fold a notice before it makes it (its try_fold:
        where filter would fold the notice and tell nothing)."""
        if self._filter_in_c is None:
            return self.folds, self.filter
        assert _fastaggregate is not None
        return partial(_fastaggregate.folds, self), _fastaggregate.Filter(self) if self.enabled else list

    def folds(self, uid: str) -> bool:
        """Whether the flow `uid`'s notices are being folded (its first one was): none of them will be written."""
        return bool(uid) and self._uids.get(uid) is not None

    def _fold(self, notice: Notice) -> bool:
        """Whether the notice is folded into an aggregate (else it is written, and counted)."""
        if not notice.src or not notice.dst:
            return False
        big = notice.bytes_sent >= NEVER_FOLDED  # a flow bigger than a storm's: written
        if notice.note in NOT_PER_HOST:
            return not big and self._past_note_quota(notice)
        uid = notice.uid if notice.note not in PER_PACKET else ""
        if uid and notice.note == EXFIL_SUMMARY.name:  # the flow's last notice: its memory ends with it
            uid, under = "", self._uids.pop(uid, _UNSEEN)
        else:
            under = self._uids.get(uid, _UNSEEN) if uid else _UNSEEN
        if big:
            self._remember(uid, None)  # the rest of its flow's story written too
            return False
        if under is not _UNSEEN:
            if under is None:
                return False  # the flow's earlier notice was written: so is this one
            self._fold_under(notice, *under)
            return True
        to_key, from_key = (notice.note, "to", notice.dst), (notice.note, "from", notice.src)
        written = self._written
        to_written, from_written = written.get(to_key, 0), written.get(from_key, 0)
        # a fold is made only for a key past its quota: a storm's thousands of sources cost a count each
        if to_written >= self.max_notices:
            self._fold_under(notice, "to", notice.dst, uid)
            return True
        if from_written >= self.max_notices:
            self._fold_under(notice, "from", notice.src, uid)
            return True
        if self._past_note_quota(notice, uid):
            return True
        if len(written) < MAX_KEYS or (to_key in written and from_key in written):  # else written, not counted
            written[to_key], written[from_key] = to_written + 1, from_written + 1
        self._remember(uid, None)
        return False

    def _past_note_quota(self, notice: Notice, uid: str = "") -> bool:
        """Whether max_per_note notices of the note were written in the interval: then the notice is folded (for
        the flow `uid`'s later ones too), else counted as written."""
        key = (notice.note, *ANY_HOST)
        written = self._written.get(key, 0)
        if 0 < self.max_per_note <= written:
            self._fold_under(notice, *ANY_HOST, uid)
            return True
        self._written[key] = written + 1
        return False

    def _fold_under(self, notice: Notice, role: str, host: str, uid: str = "") -> None:
        """Fold the notice into (its note, role, host)'s aggregate; remember it for the flow `uid`'s later ones."""
        key = (notice.note, role, host)
        fold = self._folds.get(key)
        if fold is None:
            fold = self._folds[key] = _Fold(first=notice.ts, last=notice.ts, src=notice.src, dst=notice.dst)
        self._count(notice, fold, _peer(notice, role))
        self._remember(uid, (role, host))

    def _count(self, notice: Notice, fold: _Fold, peer: str) -> None:
        fold.folded += 1
        fold.bytes_sent += notice.bytes_sent
        if notice.ts > fold.last:
            fold.last = notice.ts
        if notice.ts > self._last_folded:
            self._last_folded = notice.ts
        if notice.ts < self._first_folded:
            self._first_folded = notice.ts
        peers = fold.peers
        if peer not in peers:
            if len(peers) < MAX_PEERS and self._peer_entries < MAX_PEER_ENTRIES:
                peers.add(peer)
                self._peer_entries += 1
            else:
                fold.capped = True
        if self.sample:
            self._draw(fold, peer, math.log(sample_u(self._sample_key, peer, notice.ts)) / max(notice.bytes_sent, 1))
        largest = fold.largest
        if len(largest) < self._largest_kept:
            heapq.heappush(largest, (notice.bytes_sent, peer))
        elif largest and notice.bytes_sent > largest[0][0]:
            heapq.heapreplace(largest, (notice.bytes_sent, peer))

    def _draw(self, fold: _Fold, peer: str, key: float) -> None:
        """A-Res: the sample keeps the peers of the largest keys, a peer's best key."""
        sample, keys = fold.sample, fold.sample_keys
        if peer in sample:
            at = sample.index(peer)
            if key > keys[at]:
                keys[at] = key
        elif len(sample) < self.sample:
            sample.append(peer)
            keys.append(key)
        else:
            at = keys.index(min(keys))
            if key > keys[at]:
                sample[at], keys[at] = peer, key

    def _remember(self, uid: str, under: tuple[str, str] | None) -> None:
        """Remember how a flow's notice went, across intervals (its summary may come much later); the
        oldest eighth is forgotten when MAX_UIDS are remembered."""
        if not uid:
            return
        uids = self._uids
        if len(uids) >= MAX_UIDS:
            self._uids = uids = dict(itertools.islice(uids.items(), len(uids) // 8, None))
        uids[uid] = under

    def _aggregate(self, key: tuple[str, str, str], fold: _Fold, ts: float) -> Notice:
        note, role, host = key
        short = note.split("::", 1)[-1]
        count = len(fold.peers)
        peers = f"{count}{'+' if fold.capped else ''}"
        within = f"within {self.interval:g} s"
        if role == "to":
            counted, told = "sources", f"to {host} {within}, from {peers} sources"
        elif role == "from":
            counted, told = "destinations", f"from {host} {within}, to {peers} destinations"
        else:
            counted, told = "host pairs", f"{within}, between {peers} host pairs"
        msg = f"{fold.folded} more {short} notices {told} ({format_size(fold.bytes_sent)} sent)"
        sub = (f"Aggregated: {fold.folded} notices, {peers} {counted}, first {fold.first:.6f}, "
               f"last {fold.last:.6f}, bytes sent {fold.bytes_sent}")
        if fold.sample:
            largest = sorted(fold.largest, reverse=True)
            drawn = [peer for _, peer in sorted(zip(fold.sample_keys, fold.sample, strict=True), key=_by_key)]
            msg += f"; sample: {', '.join(drawn)}; largest: " + \
                ", ".join(f"{peer} ({format_size(size)})" for size, peer in largest)
            sub += f", sample {' '.join(drawn)}, largest " + " ".join(f"{peer}:{size}" for size, peer in largest)
        return Notice(ts=ts, note=note, msg=msg, sub=sub, src=fold.src, dst=fold.dst, uid="", n=fold.folded,
                      bytes_sent=fold.bytes_sent, bytes_received=0, start=fold.first, end=fold.last,
                      peers=count)


def _by_key(entry: tuple[float, str]) -> float:
    return -entry[0]  # the sample named the most likely first (a stable sort: equal keys as drawn)


def _peer(notice: Notice, role: str) -> str:
    """The peer a folded notice adds to its aggregate: the source a storm came from, the destination it went to,
    or (folded per note) the host pair."""
    if role == "to":
        return notice.src
    if role == "from":
        return notice.dst
    return f"{notice.src}->{notice.dst}"


def bind_accelerator() -> None:
    """Hand the C fold the types it reads and writes in place and this module's limits (again after a test
    changes one)."""
    if _fastaggregate is not None:
        _fastaggregate.bind(Notice, _Fold, NoticeAggregator, NOT_PER_HOST, EXFIL_SUMMARY.name, ANY_HOST, MAX_PEERS,
                            MAX_PEER_ENTRIES, MAX_UIDS, MAX_KEYS, heapq.heappush, heapq.heapreplace, QUIET, PER_PACKET,
                            NEVER_FOLDED, MAX_HOLD)


bind_accelerator()
