"""Evidence of alerted flows: a pcap of their packets and the bytes their requests carried.

The recorder buffers, per directional host pair that sent novel bytes, a ring of its
last `packets_before` packets. When a notice names the pair, the ring goes to
`<log_dir>/evidence/<uid>.pcap` and the pair's following packets are appended, up to
`packets_after` packets or `max_file_bytes`; the echo-request payloads are also written
in order to `<uid>.bin`, which is the transferred file itself when a tool sends it raw.
The notice carries the pcap's path in its `evidence` field.

Packets are written as they were decoded, re-encoded as raw IP (LINKTYPE_RAW): the
link layer is not kept and fragmented messages appear reassembled. Disk use is bounded
by `max_total_bytes`, counted in the blocks the files take on disk: the oldest evidence
files are deleted first.

The directory is one the recorder created or verified (a real directory, not a link, owned by
this user and writable by nobody else; output/logfile.py verify_directory); every file in it is
created new (O_EXCL, O_NOFOLLOW) relative to that verified directory, and the trim deletes only
files named as the recorder names them (`<uid>.pcap`, `<uid>.bin`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import struct
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import BinaryIO

import dpkt

from icmpsensor.config.schema import EvidenceConfig
from icmpsensor.decode.checksum import internet_checksum
from icmpsensor.decode.linktypes import LINKTYPE_RAW
from icmpsensor.decode.packet import IcmpPacket
from icmpsensor.errors import SensorError
from icmpsensor.notice.record import Notice
from icmpsensor.notice.types import EXFIL_SUMMARY
from icmpsensor.output.logfile import LOG_MODE, verify_directory

MAX_OPEN_FILES = 64
KNOWN_UIDS = 65536  # uids whose evidence files are remembered after they were closed
DISK_BLOCK = 4096  # what a file's size is rounded up to on disk (the common file system block)
EVIDENCE_NAME = re.compile(r"C[0-9A-Za-z]{17}\.(pcap|bin)")  # a flow uid (detect/flows.py new_uid)

Pair = tuple[bytes, bytes]


def encode(pkt: IcmpPacket) -> bytes:
    """The decoded message as a raw IPv4 or IPv6 packet with correct lengths and checksums."""
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


def _on_disk(size: int) -> int:
    """The disk space a file of `size` bytes takes: whole blocks, at least one."""
    return max(1, -(-size // DISK_BLOCK)) * DISK_BLOCK


def _create(name: str, dir_fd: int) -> BinaryIO:
    """A new file in the verified directory, never through a link; kept open while the flow lasts."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.fdopen(os.open(name, flags, LOG_MODE, dir_fd=dir_fd), "ab")


@dataclass
class _OpenFile:
    pcap_path: str
    pcap: BinaryIO
    writer: dpkt.pcap.Writer
    carried: BinaryIO
    packets: int = 0
    size: int = 24  # bytes of the pcap file
    carried_size: int = 0  # bytes of the .bin file


@dataclass
class EvidenceStats:
    files: int = 0
    packets: int = 0
    deleted: int = 0  # files removed to stay within max_total_bytes
    errors: int = 0
    buffers_evicted: int = 0


@dataclass
class EvidenceRecorder:
    log_dir: str
    cfg: EvidenceConfig
    stats: EvidenceStats = field(default_factory=EvidenceStats)

    def __post_init__(self) -> None:
        self.directory = os.path.abspath(os.path.join(self.log_dir, self.cfg.directory))
        self._rings: OrderedDict[Pair, deque[IcmpPacket]] = OrderedDict()
        self._open: OrderedDict[Pair, _OpenFile] = OrderedDict()
        self._closed: OrderedDict[str, str] = OrderedDict()  # uid -> pcap path of files already closed
        # The pairs buffered or recorded (the keys of _rings and _open; a pair is never in both): the
        # pipeline checks a packet's pair here before calling observe() for a packet without novel bytes.
        self.watched: set[Pair] = set()
        # An evidence directory that is already there is verified now (OutputError, exit 73, if it is a
        # link or someone else's); one that is not is created with the first notice.
        self._dir_fd = verify_directory(self.directory) if os.path.lexists(self.directory) else -1
        self._disk = self._disk_usage()

    # -- per packet ----------------------------------------------------------------------------

    def observe(self, pkt: IcmpPacket, novel: int) -> None:
        """Buffer the packet if its pair is suspicious (it sent novel bytes) or is being recorded.
        Nothing happens for a packet without novel bytes whose pair is not in `watched`: the pipeline
        does not call it then."""
        key = (pkt.src, pkt.dst)
        recording = self._open.get(key)
        if recording is not None:
            self._write(key, recording, pkt)
            return
        ring = self._rings.get(key)
        if ring is None:
            if not novel or not self.cfg.packets_before:
                return
            ring = self._rings[key] = deque(maxlen=self.cfg.packets_before)
            self.watched.add(key)
            if len(self._rings) > self.cfg.max_flows_buffered:
                self.watched.discard(self._rings.popitem(last=False)[0])
                self.stats.buffers_evicted += 1
        else:
            self._rings.move_to_end(key)
        ring.append(pkt)

    # -- per notice ----------------------------------------------------------------------------

    def attach(self, notice: Notice) -> None:
        """Open (or reuse) the evidence files of the pair the notice names; set notice.evidence."""
        try:
            key = (ipaddress.ip_address(notice.src).packed, ipaddress.ip_address(notice.dst).packed)
        except ValueError:
            return
        recording = self._open.get(key)
        if recording is None:
            closed = self._closed.get(notice.uid)
            if closed is not None:  # recorded, and closed since (MAX_OPEN_FILES): named, not reopened
                notice.evidence = closed
                return
            recording = self._start(key, notice.uid)
        if recording is None:
            return
        notice.evidence = recording.pcap_path
        if notice.note == EXFIL_SUMMARY.name:  # the flow is over
            self._finish(key)

    def _start(self, key: Pair, uid: str) -> _OpenFile | None:
        if not uid:
            return None
        try:
            if self._dir_fd < 0:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(self.directory, 0o750)
                self._dir_fd = verify_directory(self.directory)
            pcap = _create(uid + ".pcap", self._dir_fd)
            try:
                carried = _create(uid + ".bin", self._dir_fd)
            except OSError:
                pcap.close()
                raise
        except (OSError, SensorError):
            self.stats.errors += 1
            return None
        base = os.path.join(self.directory, uid)
        recording = _OpenFile(base + ".pcap", pcap, dpkt.pcap.Writer(pcap, linktype=LINKTYPE_RAW), carried)
        self._open[key] = recording
        self.watched.add(key)
        self._disk += 2 * DISK_BLOCK  # two new files: a block each on disk, however small
        self.stats.files += 1
        if len(self._open) > MAX_OPEN_FILES:
            self._finish(next(iter(self._open)))
        for pkt in self._rings.pop(key, ()):
            self._write(key, recording, pkt)
        return recording

    def _write(self, key: Pair, recording: _OpenFile, pkt: IcmpPacket) -> None:
        cfg = self.cfg
        if recording.packets >= cfg.packets_before + cfg.packets_after:
            return
        packet = encode(pkt)
        if recording.size + 16 + len(packet) > cfg.max_file_bytes:
            return
        try:
            recording.writer.writepkt(packet, ts=pkt.ts)
            if pkt.is_echo_request:
                recording.carried.write(pkt.payload)
        except OSError:
            self.stats.errors += 1
            return
        recording.packets += 1
        carried = len(pkt.payload) if pkt.is_echo_request else 0
        self._disk += (_on_disk(recording.size + 16 + len(packet)) - _on_disk(recording.size)
                       + _on_disk(recording.carried_size + carried) - _on_disk(recording.carried_size))
        recording.size += 16 + len(packet)
        recording.carried_size += carried
        self.stats.packets += 1
        if self._disk > cfg.max_total_bytes:
            self._trim()

    def _finish(self, key: Pair) -> None:
        recording = self._open.pop(key, None)
        if recording is None:
            return
        self.watched.discard(key)
        self._closed[os.path.basename(recording.pcap_path)[:-5]] = recording.pcap_path
        if len(self._closed) > KNOWN_UIDS:
            self._closed.popitem(last=False)
        for handle in (recording.pcap, recording.carried):
            with contextlib.suppress(OSError):
                handle.close()

    def close(self) -> None:
        while self._open:
            self._finish(next(iter(self._open)))
        if self._dir_fd >= 0:
            os.close(self._dir_fd)
            self._dir_fd = -1

    # -- disk budget -------------------------------------------------------------------------

    def _sizes(self) -> list[tuple[float, int, str]]:
        """(mtime, bytes on disk, name) of every evidence file, oldest first; files that vanish meanwhile
        (another worker trimmed them) are left out. Disk blocks, not file sizes: a storm of small files
        takes a block each."""
        if self._dir_fd < 0:
            return []
        found = []
        with contextlib.suppress(OSError), os.scandir(self._dir_fd) as entries:
            for entry in entries:
                if not EVIDENCE_NAME.fullmatch(entry.name):
                    continue
                with contextlib.suppress(OSError):
                    st = entry.stat(follow_symlinks=False)
                    found.append((st.st_mtime, st.st_blocks * 512, entry.name))
        return sorted(found)

    def _disk_usage(self) -> int:
        return sum(size for _, size, _ in self._sizes())

    def refresh_disk_usage(self) -> None:
        """Measure the directory again: with several workers, the others write into it too."""
        self._disk = self._disk_usage()

    def _trim(self) -> None:
        """Delete the oldest evidence files (not those still being written) until within budget."""
        busy = {os.path.basename(path) for r in self._open.values()
                for path in (r.pcap_path, r.pcap_path[:-5] + ".bin")}
        for recording in self._open.values():  # so that the sizes on disk are the real ones
            with contextlib.suppress(OSError):
                recording.pcap.flush()
                recording.carried.flush()
        entries = self._sizes()
        self._disk = sum(size for _, size, _ in entries)
        target = self.cfg.max_total_bytes * 0.9  # some room, so that not every write rescans the directory
        for _, size, name in entries:
            if self._disk <= target:
                break
            if name in busy:
                continue
            try:
                os.unlink(name, dir_fd=self._dir_fd)
            except FileNotFoundError:
                self._disk -= size  # another worker deleted it
            except OSError:
                pass
            else:
                self._disk -= size
                self.stats.deleted += 1
