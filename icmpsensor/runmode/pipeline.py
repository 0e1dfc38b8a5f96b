"""The one place the stages are wired: batches -> decode -> detect -> evidence -> notice sinks.

Every run mode feeds its batches through a Pipeline, so replay and live, in one process or in
workers, run the very same decoder and detector.
"""

from __future__ import annotations

import dataclasses
import gc
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet

from icmpsensor.config.schema import Config, DetectionConfig
from icmpsensor.decode.fast import Decoder, frames_in_order
from icmpsensor.decode.fragments import new_reassembler
from icmpsensor.decode.packet import IcmpPacket
from icmpsensor.decode.stats import DecodeStats
from icmpsensor.detect.profile import make_detector
from icmpsensor.notice.aggregate import NoticeAggregator
from icmpsensor.notice.record import Notice
from icmpsensor.output.evidence import EvidenceRecorder, pair_key
from icmpsensor.output.sink import NoticeSink, print_error, write_notice
from icmpsensor.source.batch import Batch

# process_many's pairs to stop at (output/evidence.py pair_key), evidence off
NOTHING_WATCHED: frozenset[tuple[bytes, bytes]] = frozenset()

# Collector thresholds for the packet pipeline. With the default (700 allocations) a young-generation
# collection runs every few dozen packets, and full collections walk the whole flow table again and
# again while a flood of new sources churns it (measured: the 1M-source flood runs ~35 % faster
# with these, the ordinary mix ~5 %). A storm's flows each leave a dozen live objects, which every
# young collection walks: 200,000 halves the collector's time on the notice storm and the novel-payload
# flood against 50,000 (docs/performance.md). The pipeline's records form no reference cycles of note.
GC_THRESHOLDS = (200_000, 20, 100)


def tune_gc() -> None:
    """Set GC_THRESHOLDS for this process (and the workers it forks)."""
    gc.set_threshold(*GC_THRESHOLDS)


def settle_gc() -> None:
    """Before the first packet: what the process made so far, the pipeline and its tables among it (alive as long
    as the process, empty yet), moved to the collector's oldest generation. Else they are young until the first
    young collection, which a storm brings when they hold tens of thousands of entries each: that one collection
    walked them all (a 20,000-flow storm's collections took 10-11 ms with that walk, 3 ms since;
    docs/performance.md)."""
    gc.collect(1)


class Pipeline:
    """`evidence_waits`: when the evidence writer's queue is full, wait for it (a replay: complete evidence,
    the same on every run) or drop and count (live: the writer never slows detection)."""

    def __init__(self, cfg: Config, sinks: Sequence[NoticeSink],
                 on_write_error: Callable[[str], None] | None = None, *, evidence_waits: bool = True) -> None:
        self.cfg = cfg
        self.sinks = list(sinks)
        self.on_write_error = on_write_error or print_error
        self.decode_stats = DecodeStats()
        evidence = cfg.output.evidence
        self.reassembler = new_reassembler(
            max_datagrams=cfg.decode.max_fragmented_datagrams,
            timeout=cfg.decode.fragment_timeout,
            stats=self.decode_stats.fragments,
            keep_frames=evidence.enabled,  # evidence holds the fragments as they came
        )
        self.detector = make_detector(cfg.detection, cfg.allowlist)
        detection = cfg.detection
        self.aggregator = NoticeAggregator(detection.aggregate_interval, detection.aggregate_max_notices,
                                           detection.aggregate_sample, detection.aggregate_max_per_note)
        self.evidence = EvidenceRecorder(cfg.output.log_dir, evidence, wait_when_full=evidence_waits) \
            if evidence.enabled else None
        self.notices_emitted = 0
        self.write_errors = 0
        self._decoders: list[Decoder] = []

    def decoder_for(self, linktype: int) -> Decoder:
        """A decoder for one source (file or interface); raises InputError on unsupported link types."""
        decoder = Decoder(
            linktype,
            self.decode_stats,
            verify_checksums=self.cfg.decode.verify_checksums,
            reassembler=self.reassembler,
        )
        self._decoders.append(decoder)
        return decoder

    def feed_batch(self, decoder: Decoder, buf: bytes, meta: bytes) -> None:
        """Decode and detect one libpcap batch as it was read (see Decoder.decode_batch). With evidence on, a
        packet's frame stays in the batch; the recorder copies it out only if it holds the packet."""
        if self.evidence is None:
            self.detect(decoder.decode_batch(buf, meta))
        else:
            self._detect_observed(decoder.decode_frames(buf, meta), Batch(decoder, buf, meta), decoder.due)

    def detect(self, packets: Sequence[IcmpPacket]) -> None:
        """Detect decoded packets. Packets fed here come without their captured frames (benchmarks, tests):
        evidence holds them re-encoded (output/evidence.py encode)."""
        if self.evidence is not None:
            self._detect_observed(packets, None)
            return
        listed: list[int] = []  # the packets a recorder would see: nobody's here
        for _, _, kept in self._stops(packets, NOTHING_WATCHED, listed):
            listed.clear()
            if kept:
                self._write(kept)

    def _stops(self, packets: Sequence[IcmpPacket | None], watched: AbstractSet[tuple[bytes, bytes]],
               observed: list[int]) -> Iterator[tuple[int, IcmpPacket, Sequence[Notice]]]:
        """The packets the detector stops at, (index, packet, the notices to write: what the aggregator does not
        fold), and only those: it goes past the packets that leave the caller nothing to do (Detector.process_many:
        no notices to write, no novel bytes, a pair not in `watched`); those of a watched pair, and those with
        novel bytes the evidence recorder is to see (~index; not those of a flow whose notices the aggregator
        folds), are appended to `observed` instead, before the caller is given the next packet."""
        packets = packets if isinstance(packets, list) else list(packets)
        process_many, index, end = self.detector.process_many, 0, len(packets)
        folds, kept = self.aggregator.stop_hooks()
        while True:
            index, notices = process_many(packets, index, watched, observed, folds, kept)
            if index == end:
                return
            yield index, packets[index], notices  # type: ignore[misc]
            index += 1

    def _detect_observed(self, packets: Sequence[IcmpPacket | None], batch: Batch | None,
                         due: Sequence[tuple[int, IcmpPacket]] = ()) -> None:
        """Detect, and show the evidence recorder each packet with novel bytes or of a pair it watches (one
        set look-up per packet), but a packet with novel bytes of a flow whose notices the aggregator folds
        (they never name an evidence file: the notices are folded before the packet is shown). With `batch`,
        packets[i] is frame i's (None: the frame gave none). `due`: the messages of abandoned datagrams
        (Decoder.due), each detected before the packet of the frame it came due at; evidence holds them as their
        own fragment frames (IcmpPacket.frames), not as that frame."""
        detector = self.detector
        evidence = self.evidence
        assert evidence is not None
        observe, observe_passed, watched = evidence.observe, evidence.observe_passed, evidence.watched
        aggregator = self.aggregator
        frames = None  # with `due`: the frame each packet's evidence is held as, by position
        if due:
            packets, frames = frames_in_order(packets, due)
        # the packets the detector went past that the recorder is to see (no notices to write): a watched pair's,
        # and those with novel bytes (~index) but of a flow whose notices are folded; each shown to the recorder
        # before the packet it stops at next, as if it had stopped at them
        passed: list[int] = []
        for index, pkt, kept in self._stops(packets, watched, passed):
            if passed:
                observe_passed(packets, passed, batch, frames)
            if kept and kept[0].ts < pkt.ts:  # flows this packet's time ended (their summaries close their files)
                ended = next((i for i, notice in enumerate(kept) if notice.ts >= pkt.ts), len(kept))
                self._write(kept[:ended])
                kept = kept[ended:]
            novel = detector.last_novel
            if (watched and pair_key(pkt.src, pkt.dst) in watched) or (novel and not (
                    aggregator.folded and aggregator.folds(detector.flow_uid(pkt.src, pkt.dst)))):
                observe(pkt, novel, batch, index if frames is None else frames[index])
            if kept:
                self._write(kept)
        if passed:
            observe_passed(packets, passed, batch, frames)
        evidence.flush()

    def advance(self, now: float) -> None:
        """The clock is `now` (live: wall time while the wire is quiet): fragmented datagrams that time out hand
        on what they held, then flows idle since expire, a chunk at a time (FlowDetector.advance_chunks: after a
        clock's jump, a storm's summaries folded as they come)."""
        if self._decoders and len(self.reassembler):
            self._detect_abandoned(self._decoders[-1].expire(now))
        for notices in self.detector.advance_chunks(now, self.aggregator.stop_hooks()[1]):
            self.emit(notices)
        if self.aggregator.window_start is not None:
            self._write(self.aggregator.advance(now))

    def tell_due(self, now: float) -> None:
        """Live, between ticks: the aggregates due at `now`, a storm's that was over (NoticeAggregator.told_if_due)."""
        self._write(self.aggregator.told_if_due(now))

    def finish(self, deadline: float | None = None) -> None:
        """End of input: the datagrams still waiting for fragments hand on what they held (those whose timeout
        the clock has passed as timed out: a fragment of another pair may have come last, or none, and a replay
        worker's end, Worker.run, expires them at the latest clock of all), then every open flow is evaluated and
        its notices written, a chunk of flows at a time (FlowDetector.flush_chunks: a storm's summaries folded as
        they come, not held all at once), then the aggregates, stamped with the detector's clock as those
        summaries are. Past `deadline` (time.monotonic(): a live stop's,
        which has 5 s) the notices still to come are folded into aggregates (NoticeAggregator.fold_all), whatever
        the aggregation settings: 100,000 open alerted flows' summaries written one by one took 4-5 s."""
        if self._decoders and len(self.reassembler):
            self._detect_abandoned(self._decoders[-1].expire(self.detector.now))
            self._detect_abandoned(self._decoders[-1].flush())
        for notices in self.detector.flush_chunks(self.aggregator.stop_hooks()[1]):
            if deadline is not None and time.monotonic() > deadline:
                self.aggregator.fold_all(DetectionConfig.aggregate_interval)  # the default where it is off
                deadline = None
            self.emit(notices)
        self._write(self.aggregator.flush(self.detector.now))  # told now: after the summaries just written

    def _detect_abandoned(self, packets: list[IcmpPacket]) -> None:
        """Detect the messages of datagrams abandoned outside any batch (Decoder.expire, Decoder.flush)."""
        if not packets:
            return
        if self.evidence is None:
            self.detect(packets)
            return
        decoder = self._decoders[-1]  # the frames are their own fragments'; the link type the source's
        self._detect_observed([], Batch(decoder, b"", b""), [(0, pkt) for pkt in packets])

    def emit(self, notices: Iterable[Notice]) -> None:
        """Write the detector's notices, but those a storm's aggregate folds (notice/aggregate.py). The detector's
        chunks of ended flows (advance, finish) come here as they are made, each before the next is asked for: it is
        given the filter too (stop_hooks), so that its C path need not make the notices the filter would fold."""
        self._write(self.aggregator.filter(notices))

    def _write(self, notices: Iterable[Notice]) -> None:
        """Write notices to every sink; evidence is started for a notice here, as it is written, and only
        then (a notice the detector suppressed or the aggregator folded never reaches this)."""
        for notice in notices:
            self.notices_emitted += 1
            if self.evidence is not None:
                self.evidence.attach(notice)
            self.write_errors += write_notice(self.sinks, notice, self.on_write_error)

    def reconfigure(self, cfg: Config) -> None:
        """Apply a reloaded configuration (detection, allowlists, checksum checks); detector state is kept."""
        self.cfg = cfg
        self.detector.reconfigure(cfg.detection, cfg.allowlist)
        self.aggregator.reconfigure(cfg.detection.aggregate_interval, cfg.detection.aggregate_max_notices,
                                    cfg.detection.aggregate_sample, cfg.detection.aggregate_max_per_note)
        for decoder in self._decoders:
            decoder.verify_checksums = cfg.decode.verify_checksums

    def close_evidence(self, deadline: float | None = None) -> None:
        """Let the evidence writer finish, until `deadline` (time.monotonic(); None: everything); what it could
        not write by then is counted in the evidence stats. Idempotent."""
        if self.evidence is not None:
            self.evidence.close(deadline)

    def close(self, evidence_deadline: float | None = None) -> None:
        self.close_evidence(evidence_deadline)
        for sink in self.sinks:
            sink.close()

    def stats(self) -> dict[str, object]:
        return {
            "decode": self.decode_stats.as_dict(),
            "detect": self.detector.stats.as_dict(),
            "flows": self.detector.flow_count,
            "pending_requests": self.detector.pending_count,
            "notices": self.notices_emitted,
            "notices_folded": self.aggregator.folded,
            "notices_aggregated": self.aggregator.aggregates,
            "notice_write_errors": self.write_errors,
            "evidence": dataclasses.asdict(self.evidence.stats) if self.evidence is not None else {},
        }
