"""Wiring of the stages: frames -> decode -> detect -> notice sinks.

File replay and live capture both feed frames through one Pipeline, so they run the
very same decoder and detector.
"""

from __future__ import annotations

import dataclasses
import gc
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from icmpsensor.config import Config
from icmpsensor.decode import Decoder, DecodeStats
from icmpsensor.detect import make_detector
from icmpsensor.evidence import EvidenceRecorder
from icmpsensor.fragments import Reassembler
from icmpsensor.notices import Notice
from icmpsensor.packet import IcmpPacket
from icmpsensor.sinks import NoticeLog, NoticeSink, NoticeWriteError, StdoutSink

# Collector thresholds for the packet pipeline. With the default (700 allocations) a young-generation
# collection runs every few dozen packets, and full collections walk the whole flow table again and
# again while a flood of new sources churns it (measured: the 1M-source flood runs ~35 % faster
# with these, the ordinary mix ~5 %). The pipeline's records form no reference cycles of note.
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """Set GC_THRESHOLDS for this process (and the workers it forks)."""
    gc.set_threshold(*GC_THRESHOLDS)


class Pipeline:
    def __init__(self, cfg: Config, sinks: Sequence[NoticeSink],
                 on_write_error: Callable[[str], None] | None = None) -> None:
        self.cfg = cfg
        self.sinks = list(sinks)
        self.on_write_error = on_write_error or _print_error
        self.decode_stats = DecodeStats()
        self.reassembler = Reassembler(
            max_datagrams=cfg.decode.max_fragmented_datagrams,
            timeout=cfg.decode.fragment_timeout,
            stats=self.decode_stats.fragments,
        )
        self.detector = make_detector(cfg.detection, cfg.allowlist)
        evidence = cfg.output.evidence
        self.evidence = EvidenceRecorder(cfg.output.log_dir, evidence) if evidence.enabled else None
        self.notices_emitted = 0
        self.write_errors = 0

    def decoder_for(self, linktype: int) -> Decoder:
        """A decoder for one source (file or interface); raises InputError on unsupported link types."""
        return Decoder(
            linktype,
            self.decode_stats,
            verify_checksums=self.cfg.decode.verify_checksums,
            reassembler=self.reassembler,
        )

    def feed_batch(self, decoder: Decoder, buf: bytes, meta: bytes) -> None:
        """Decode and detect one libpcap batch as it was read (see Decoder.decode_batch)."""
        self.detect(decoder.decode_batch(buf, meta))

    def detect(self, packets: list[IcmpPacket]) -> None:
        detector = self.detector
        process = detector.process
        evidence = self.evidence
        if evidence is None:
            for pkt in packets:
                notices = process(pkt)
                if notices:
                    self.emit(notices)
            return
        observe, watched = evidence.observe, evidence.watched
        for pkt in packets:
            notices = process(pkt)
            novel = detector.last_novel
            if novel or (watched and (pkt.src, pkt.dst) in watched):
                observe(pkt, novel)
            if notices:
                self.emit(notices)

    def advance(self, now: float) -> None:
        notices = self.detector.advance(now)
        if notices:
            self.emit(notices)

    def finish(self) -> None:
        """End of input: every open flow is evaluated and its notices written."""
        self.emit(self.detector.flush())

    def emit(self, notices: Iterable[Notice]) -> None:
        for notice in notices:
            self.notices_emitted += 1
            if self.evidence is not None:
                self.evidence.attach(notice)
            self.write_errors += write_notice(self.sinks, notice, self.on_write_error)

    def reconfigure(self, cfg: Config) -> None:
        """Apply a reloaded configuration; detector state is kept."""
        self.cfg = cfg
        self.detector.reconfigure(cfg.detection, cfg.allowlist)

    def close(self) -> None:
        if self.evidence is not None:
            self.evidence.close()
        for sink in self.sinks:
            sink.close()

    def stats(self) -> dict[str, object]:
        return {
            "decode": self.decode_stats.as_dict(),
            "detect": self.detector.stats.as_dict(),
            "flows": self.detector.flow_count,
            "pending_requests": self.detector.pending_count,
            "notices": self.notices_emitted,
            "notice_write_errors": self.write_errors,
            "evidence": dataclasses.asdict(self.evidence.stats) if self.evidence is not None else {},
        }


def add_stats(total: dict[str, Any], part: Mapping[str, Any]) -> None:
    """Add the counters of a stats record (such as `Pipeline.stats()`) into `total`, nested dicts key by
    key: several workers' records into one."""
    for key, value in part.items():
        if isinstance(value, Mapping):
            add_stats(total.setdefault(key, {}), value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            total[key] = total.get(key, 0) + value


def write_notice(sinks: Sequence[NoticeSink], notice: Notice, on_write_error: Callable[[str], None]) -> int:
    """Emit one notice to every sink; how many sinks failed (each failure is reported)."""
    errors = 0
    for sink in sinks:
        try:
            sink.emit(notice)
        except NoticeWriteError as exc:
            errors += 1
            on_write_error(f"cannot write notice to {type(sink).__name__} ({exc.strerror}): "
                           f"{notice.note} {notice.src} -> {notice.dst}")
    return errors


def _print_error(message: str) -> None:
    print(f"icmpsensor: error: {message}", file=sys.stderr)


def build_sinks(cfg: Config) -> list[NoticeSink]:
    sinks: list[NoticeSink] = [NoticeLog(cfg.output.log_dir, cfg.output.notice_log, cfg.sensor.name)]
    if cfg.output.stdout:
        sinks.append(StdoutSink(cfg.sensor.name))
    return sinks
