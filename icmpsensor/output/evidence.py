"""Evidence of alerted flows: the frames of the host pair as they were captured, and the bytes its requests
carried.

The recorder runs on the detector's thread and only decides; a writer thread writes
(output/evidencewriter.py), so that no disk ever slows detection. A packet with a frame is held or buffered in C
(output/_fastevidence.c record and record_passed; observe and the methods it calls are the reference).

* **Buffering.** Per host pair that sent novel bytes (both directions: requests and replies) it keeps a
  ring of the last `packets_before` packets, at most `max_flows_buffered` pairs (the least recently
  active dropped first, counted). The pipeline does not show it a packet with novel bytes of a flow
  whose notices a storm's aggregate folds: they never name a file. A packet is held as the frames it was
  captured in, made pcap records when it is held (output/evidencewriter.py HeldPacket): copied out of
  its libpcap batch, or the fragment frames a reassembled message came in (IcmpPacket.frames), with
  the capture's link type.
* **Notices.** When a notice that is being emitted names the pair, its files are started: the ring goes
  to `<log_dir>/<directory>/<uid>.pcap` and the pair's following packets are appended, up to
  `packets_after` packets or `max_file_bytes`; the echo-request payloads the notice's source sent go
  to `<uid>.bin`, the transferred file itself when a tool sends it raw. The notice carries the pcap's
  absolute path in its `evidence` field. A notice about a pair already recorded names the same pcap;
  the flow's summary (ExfilSummary) closes it.
* **Caps.** At most `max_files_per_minute` flows get new files per minute of packet time; a notice
  beyond that gets none (counted: dropped_rate). When the writer's queue is full a live sensor drops
  the files or packets (counted); a replay waits for the writer.

The disk budget, the directory checks and the file names are the writer's.
"""

from __future__ import annotations

import os
import socket
import struct
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass

from icmpsensor.accelerators import evidence_extension as _fastevidence
from icmpsensor.config.schema import EvidenceConfig
from icmpsensor.decode.checksum import internet_checksum
from icmpsensor.decode.linktypes import LINKTYPE_RAW, file_linktype
from icmpsensor.decode.packet import IcmpPacket
from icmpsensor.notice.record import Notice
from icmpsensor.notice.types import EXFIL_SUMMARY
from icmpsensor.output.evidencewriter import (
    PCAP_HEADER,
    RECORD,
    EvidenceStats,
    EvidenceWriter,
    HeldPacket,
    WriteJob,
    held_frame,
    held_frames,
)
from icmpsensor.source.batch import BATCH_META, Batch, CapturedFrame

# Flows whose files are open at once; the least recently recorded is closed first, counted (`cut`). It was the least
# recently started: 64 spoofed one-packet alerted flows cut a real exfiltration's evidence, uncounted.
MAX_OPEN_FILES = 64
KNOWN_UIDS = 65536  # uids whose evidence files are remembered after they were closed

Pair = tuple[bytes, bytes]

__all__ = ["EvidenceRecorder", "EvidenceStats", "encode"]


def encode(pkt: IcmpPacket) -> bytes:
    """The decoded message as a raw IPv4 or IPv6 packet with correct lengths and checksums: the frame of a
    packet that came without one (fed to Pipeline.detect by a benchmark or a test), and a test helper."""
    body = struct.pack("!HH", pkt.ident, pkt.seq) + pkt.payload if pkt.ident >= 0 else pkt.payload
    if pkt.ipv6:
        pseudo = pkt.src + pkt.dst + struct.pack("!I3xB", 4 + len(body), 58)
        header = struct.pack("!BB", pkt.icmp_type, pkt.icmp_code)
        icmp = header + struct.pack("!H", internet_checksum(pseudo + header + b"\0\0" + body)) + body
        return struct.pack("!IHBB", 6 << 28, len(icmp), 58, 64) + pkt.src + pkt.dst + icmp
    header = struct.pack("!BB", pkt.icmp_type, pkt.icmp_code)
    icmp = header + struct.pack("!H", internet_checksum(header + b"\0\0" + body)) + body
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 0, 0, 64, 1, 0, pkt.src, pkt.dst)
    ip = ip[:10] + struct.pack("!H", internet_checksum(ip)) + ip[12:]
    return ip + icmp


def pair_key(src: bytes, dst: bytes) -> Pair:
    """The key of a host pair, the same for both directions."""
    return (src, dst) if src <= dst else (dst, src)


def packed(address: str) -> bytes | None:
    """A notice's address (text) packed as the decoder packs it; None if it is not an address."""
    try:
        return socket.inet_pton(socket.AF_INET6 if ":" in address else socket.AF_INET, address)
    except (OSError, ValueError):
        return None


@dataclass(slots=True)
class _Recording:
    """A flow whose evidence files are being written."""

    uid: str
    pcap_path: str
    packets: int = 0  # packets handed to the writer
    size: int = PCAP_HEADER.size  # bytes of its pcap: the header, then the records


# The step for a packet with a frame in C (output/_fastevidence.c record: observe, _record, _held, _fits, _buffer and
# _evict_ring are its reference, an equivalence test holds them equal).
if _fastevidence is not None:
    _fastevidence.bind_recorder(IcmpPacket, _Recording, deque)

# A pair's ring: its one packet as itself (a storm's pairs send one), more in a deque of packets_before.
Ring = HeldPacket | deque[HeldPacket]


def _records_size(pkt: IcmpPacket, batch: Batch | None, index: int) -> int:
    """len(HeldPacket.records) of the packet as EvidenceRecorder._held would hold it, without holding it."""
    frames = pkt.frames
    if frames:
        return sum([RECORD.size + len(frame.data) for frame in frames])
    if batch is None:
        return RECORD.size + len(encode(pkt))
    _, _, off, cap = BATCH_META.unpack_from(batch.meta, index * BATCH_META.size)
    return RECORD.size + max(0, min(cap, len(batch.buf) - off))  # buf[off : off + cap], as held_frame cuts it


def _packets(ring: Ring | None) -> Sequence[HeldPacket]:
    if ring is None:
        return ()
    return ring if type(ring) is deque else (ring,)  # type: ignore[return-value]


class EvidenceRecorder:
    """See the module docstring. `watched` holds the key (pair_key) of every pair buffered or recorded, one for
    both directions: the pipeline calls observe() for a packet without novel bytes only when its pair_key(src, dst)
    is in it."""

    def __init__(self, log_dir: str, cfg: EvidenceConfig, *, wait_when_full: bool = True,
                 accelerated: bool = True) -> None:
        """`accelerated`: packets with a frame take the C step when it is built; False: only the Python reference
        (the equivalence tests)."""
        self.cfg = cfg
        self._fast = _fastevidence if accelerated else None
        self.directory = os.path.abspath(os.path.join(log_dir, cfg.directory))
        self.stats = EvidenceStats()
        self.writer = EvidenceWriter(self.directory, cfg, self.stats, wait_when_full=wait_when_full)
        self._rings: OrderedDict[Pair, Ring] = OrderedDict()
        self._buffered = 0  # what the rings hold, bytes (HeldPacket.cost): at most cfg.max_buffer_bytes
        self._open: OrderedDict[Pair, _Recording] = OrderedDict()
        # uid -> the pcap its notices named (its own, or its pair's another flow started), for when that file is
        # closed: named, not reopened
        self._closed: OrderedDict[str, str] = OrderedDict()
        self.watched: set[Pair] = set()
        self.linktype = LINKTYPE_RAW  # of the last packet held: the link type of a pcap started empty
        self._minute = -1  # the minute of packet time max_files_per_minute counts in
        self._started = 0  # files started in it
        self._closed_writer = False
        # packets of recorded flows not yet handed to the writer: a batch's worth at most (flush)
        self._pending: dict[str, list[HeldPacket]] = {}

    # -- per packet ----------------------------------------------------------------------------

    def observe(self, pkt: IcmpPacket, novel: int, batch: Batch | None, index: int) -> None:
        """Hold the packet if its pair is suspicious (the packet has novel bytes) or is buffered or recorded.
        `batch` and `index`: where its frame is (None: a packet without one, re-encoded). Closed: nothing."""
        if self._closed_writer:
            return
        fast = self._fast
        if fast is not None and batch is not None:
            if fast.record(self, pkt, novel, batch.buf, batch.meta, index,
                           file_linktype(batch.decoder.linktype)) == fast.TRUNCATED:
                self.stats.truncated += 1
            return
        key = pair_key(pkt.src, pkt.dst)
        recording = self._open.get(key)
        if recording is not None:
            self._record(key, recording, pkt, batch, index)
        else:
            self._buffer(key, pkt, novel, batch, index)

    def _buffer(self, key: Pair, pkt: IcmpPacket, novel: int, batch: Batch | None, index: int) -> None:
        """observe() for a pair without a recording: its ring."""
        rings = self._rings
        ring = rings.get(key)
        if ring is None:
            if not novel or not self.cfg.packets_before:
                return
            held = rings[key] = self._held(pkt, batch, index)  # a pair's first packet is its ring (a storm's)
            self._watch(key)
            if len(rings) > self.cfg.max_flows_buffered:
                self._evict_ring()
        else:
            rings.move_to_end(key)
            held = self._held(pkt, batch, index)
            if type(ring) is deque:
                if len(ring) == ring.maxlen:
                    self._buffered -= ring[0].cost  # the oldest packet leaves the ring
                ring.append(held)
            elif self.cfg.packets_before > 1:
                rings[key] = deque((ring, held), maxlen=self.cfg.packets_before)
            else:
                rings[key] = held
                self._buffered -= ring.cost
        self._buffered += held.cost
        while self._buffered > self.cfg.max_buffer_bytes and self._rings:
            self._evict_ring()

    def observe_passed(self, packets: Sequence[IcmpPacket | None], passed: list[int], batch: Batch | None,
                       frames: list[int] | None) -> None:
        """observe() each packet the detector went past, in order: packets[i] for each i in `passed` (a watched pair's:
        its novel bytes do not matter, as the pair has a ring or a recording) or ~i (with novel bytes: observed with
        1, as their count does not matter either), its frame frames[i] (None: i); `passed` is emptied. With a
        batch they take the C step in one call."""
        fast = self._fast
        if fast is None or batch is None or type(packets) is not list or self._closed_writer:
            for listed in passed:
                novel, index = (1, ~listed) if listed < 0 else (0, listed)
                self.observe(packets[index], novel, batch, index if frames is None else frames[index])  # type: ignore[arg-type]
            passed.clear()
            return
        self.stats.truncated += fast.record_passed(self, packets, passed, frames, batch.buf, batch.meta,
                                                   file_linktype(batch.decoder.linktype))
        passed.clear()

    def _evict_ring(self) -> None:
        """Drop the least recently active pair's ring (counted)."""
        self._release(next(iter(self._rings)))
        self.stats.buffers_evicted += 1

    def _held(self, pkt: IcmpPacket, batch: Batch | None, index: int) -> HeldPacket:
        carried = pkt.payload if pkt.is_echo_request else b""
        if batch is None:  # no capture behind it: the message re-encoded as raw IP
            sec = int(pkt.ts)
            frames = pkt.frames or (CapturedFrame(sec, min(round((pkt.ts - sec) * 1e6), 999_999), encode(pkt)),)
            self.linktype = LINKTYPE_RAW
            return held_frames(LINKTYPE_RAW, frames, pkt.src, carried)
        self.linktype = linktype = file_linktype(batch.decoder.linktype)
        if pkt.frames:
            return held_frames(linktype, pkt.frames, pkt.src, carried)
        return held_frame(linktype, batch.buf, batch.meta, index, pkt.src, carried)

    def _record(self, key: Pair, recording: _Recording, pkt: IcmpPacket, batch: Batch | None, index: int) -> None:
        cfg = self.cfg
        if recording.packets >= cfg.packets_before + cfg.packets_after:
            self.stats.truncated += 1
            return
        if not self._fits(recording, _records_size(pkt, batch, index)):  # before it is held: a copy for nothing
            return
        held = self._held(pkt, batch, index)
        pending = self._pending.get(recording.uid)
        if pending is None:
            self._pending[recording.uid] = [held]
        else:
            pending.append(held)
        self._open.move_to_end(key)  # the least recently recorded is closed first (MAX_OPEN_FILES)

    def flush(self) -> None:
        """Hand the recorded packets held since the last flush to the writer, a job per flow, at once (the
        pipeline calls it after each batch). What the writer refuses is counted."""
        if not self._pending:
            return
        jobs = [WriteJob(uid, tuple(packets)) for uid, packets in self._pending.items()]
        self._pending.clear()
        for job in self.writer.submit_all(jobs):
            self.stats.dropped_queue_packets += len(job.packets)

    def _fits(self, recording: _Recording, size: int) -> bool:
        """Count a packet whose records are `size` bytes into the recording if it is within max_file_bytes (else:
        truncated)."""
        if recording.size + size > self.cfg.max_file_bytes:
            self.stats.truncated += 1
            return False
        recording.size += size
        recording.packets += 1
        return True

    # -- per notice ----------------------------------------------------------------------------

    def attach(self, notice: Notice) -> None:
        """For a notice being emitted: start (or name) the evidence files of the pair it names and set
        notice.evidence to the pcap's absolute path; a summary closes them. Closed: nothing."""
        src, dst = packed(notice.src), packed(notice.dst)
        if src is None or dst is None or self._closed_writer:
            return
        key = pair_key(src, dst)
        summary = notice.note == EXFIL_SUMMARY.name
        recording = self._open.get(key)
        if recording is not None:
            notice.evidence = recording.pcap_path
            if notice.uid == recording.uid:
                if summary:  # the flow is over
                    self._finish(key)
            elif notice.uid and not summary:  # the pair's other flow: its later notices name this file too
                self._name_closed(notice.uid, recording.pcap_path)
            return
        closed = self._closed.get(notice.uid)
        if closed is not None:  # recorded, and closed since (MAX_OPEN_FILES): named, not reopened
            notice.evidence = closed
            if summary:  # the flow is over: nothing more to buffer for it
                self._release(key)
        elif notice.uid:
            self._start(key, src, notice)

    def _start(self, key: Pair, src: bytes, notice: Notice) -> None:
        ring = self._release(key)  # started or refused, the pair's buffered packets are released
        if not self._new_file_allowed(notice.ts):
            self.stats.dropped_rate += 1
            return
        recording = _Recording(notice.uid, os.path.join(self.directory, notice.uid + ".pcap"))
        packets = tuple(held for held in ring if self._fits(recording, len(held.records)))
        linktype = packets[0].linktype if packets else self.linktype
        if not self.writer.submit(WriteJob(notice.uid, packets, src=src, linktype=linktype)):
            self.stats.dropped_queue_files += 1
            self.stats.dropped_queue_packets += len(packets)
            return
        self._open[key] = recording
        self._watch(key)
        notice.evidence = recording.pcap_path
        if len(self._open) > MAX_OPEN_FILES:
            self.stats.cut += 1
            self._finish(next(iter(self._open)))
        if notice.note == EXFIL_SUMMARY.name:
            self._finish(key)

    def _new_file_allowed(self, ts: float) -> bool:
        """max_files_per_minute, by minute of packet time (the notice's)."""
        minute = int(ts // 60)
        if minute != self._minute:
            self._minute, self._started = minute, 0
        if self._started >= self.cfg.max_files_per_minute:
            return False
        self._started += 1
        return True

    def _finish(self, key: Pair) -> None:
        recording = self._open.pop(key, None)
        if recording is None:
            return
        self.flush()  # its packets before its end
        self._unwatch(key)
        self._name_closed(recording.uid, recording.pcap_path)
        self.writer.submit(WriteJob(recording.uid, finish=True), force=True)

    def _name_closed(self, uid: str, pcap_path: str) -> None:
        self._closed[uid] = pcap_path
        if len(self._closed) > KNOWN_UIDS:
            self._closed.popitem(last=False)

    def buffered(self, key: Pair) -> Sequence[HeldPacket]:
        """The packets buffered for a pair (pair_key), oldest first."""
        return _packets(self._rings.get(key))

    def _release(self, key: Pair) -> Sequence[HeldPacket]:
        """Stop buffering the pair; the packets its ring held, oldest first."""
        packets = _packets(self._rings.pop(key, None))
        if packets:
            self._buffered -= sum([held.cost for held in packets])
            self._unwatch(key)
        return packets

    def _watch(self, key: Pair) -> None:
        self.watched.add(key)

    def _unwatch(self, key: Pair) -> None:
        self.watched.discard(key)

    # -- the end ---------------------------------------------------------------------------------

    def close(self, deadline: float | None = None) -> None:
        """Close every flow's files and let the writer finish, until `deadline` (time.monotonic(); None: all
        of it); what it could not write by then is counted. Idempotent."""
        if self._closed_writer:
            return
        self.flush()
        while self._open:
            self._finish(next(iter(self._open)))
        self._rings.clear()
        self._buffered = 0
        self.watched.clear()
        self._closed_writer = True
        self.writer.close(deadline)

    def refresh_disk_usage(self) -> None:
        """Measure the directory again: with several workers, the others write into it too."""
        self.writer.refresh_disk_usage()
