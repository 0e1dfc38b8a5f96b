"""The standard detector's C path for echo messages that change no decision (detect/_fastflows.c, Detector.process
with `accelerated`) held equal to the Python detector it short-cuts (`accelerated=False`): after every packet the
same notices (every field and text but the random uid) and the same last_novel; every few packets and at the end
the same state: flows (every field, in the table's order), pending requests (in order), counters, clock, pair and
host memories, the tool tracker's flows. On every exfiltration and benign corpus case, the seed captures, two slices
of the bench's captures, and generated traffic with tiny tables, sweeps, allowlisted payloads, both reply
pairings, IP options, fragments' partial messages and out-of-order times. The C path must also take most of a
ping's packets (else agreeing says little)."""

from __future__ import annotations

import collections
import dataclasses
import functools
import gc
import ipaddress
import itertools
import random
import struct
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from icmpsensor.config.schema import AllowlistConfig, Config, DetectionConfig, NoticeSwitches
from icmpsensor.decode.fast import Decoder
from icmpsensor.decode.packet import HEADLESS, HeadlessPacket, IcmpPacket, PartialPacket
from icmpsensor.decode.stats import DecodeStats
from icmpsensor.detect import capacity, fingerprints, flows, nonecho, standard
from icmpsensor.detect.flows import Flow
from icmpsensor.detect.original import OriginalDetector as Original
from icmpsensor.detect.standard import Detector
from icmpsensor.notice.aggregate import NoticeAggregator
from icmpsensor.notice.record import Notice
from icmpsensor.notice.text import addr_text
from icmpsensor.output.evidence import pair_key
from icmpsensor.output.sink import ListSink
from icmpsensor.runmode.pipeline import Pipeline
from icmpsensor.runmode.replay import replay_pipeline
from testkit import benign_corpus, cli, craft, synthmix
from testkit import exfil_corpus as corpus
from tests.hypothesis_counts import examples
from tests.python_lines import lines_run

needs_c = pytest.mark.skipif(standard._fastflows is None or standard.tunnels._fasttools is None,
                             reason="the C accelerators are turned off or not built")

FLOW_FIELDS = [f.name for f in dataclasses.fields(Flow) if f.name != "uid"]
RR = b"\x07\x03\x04"  # an IPv4 record-route option, as the decoder keeps it


def iputils(sent: float, size: int = 56, fill: bytes | None = None) -> bytes:
    """iputils ping's payload (fingerprints._iputils64): a little-endian 64-bit struct timeval of `sent`, then the
    default fill (byte j = j) or `fill`."""
    sec = int(sent)
    stamp = struct.pack("<QQ", sec, round((sent - sec) * 1e6) % 1_000_000)
    return stamp + (fill if fill is not None else bytes(j & 0xFF for j in range(16, size)))[: size - 16]


def bsd(sent: float, size: int = 56, fill: bytes | None = None, usec: int | None = None) -> bytes:
    """BSD (macOS) ping's payload (fingerprints._bsd): a big-endian struct tv32 of `sent`, then the default fill
    (byte j = j) or `fill`."""
    sec = int(sent)
    stamp = struct.pack(">II", sec, round((sent - sec) * 1e6) % 1_000_000 if usec is None else usec)
    return stamp + (fill if fill is not None else bytes(j & 0xFF for j in range(8, size)))[: size - 8]


TRACKER = bytes.fromhex("0123456789ab4def8123456789abcdef")  # a version 4 UUID, RFC 4122 variant


def pro_bing(sent: float, size: int = 24, fill: bytes | None = None, tracker: bytes = TRACKER) -> bytes:
    """prometheus-community/pro-bing's payload (fingerprints._pro_bing): the send time as big-endian int64
    nanoseconds, the tracker UUID, then 0x01 (or `fill`) to `size` bytes."""
    return (struct.pack(">q", round(sent * 1e9)) + tracker + (fill if fill is not None else b"\x01" * size))[:size]


def busybox(sent: float, size: int = 56, fill: bytes | None = None) -> bytes:
    """BusyBox ping's payload (fingerprints._busybox): microseconds (here: of `sent`) as a little-endian uint32,
    wrapping, then the -p byte (default 0) or `fill`."""
    counter = round(sent * 1e6) % 2**32
    return (struct.pack("<I", counter) + (fill if fill is not None else bytes(size)))[:size]


def cisco(sent: float, size: int = 72, fill: bytes | None = None) -> bytes:
    """Cisco IOS ping's payload (fingerprints._cisco): four zeros, milliseconds (here: of `sent`) as a big-endian
    uint32, wrapping, then the pattern 0xABCD repeated or `fill`."""
    counter = round(sent * 1e3) % 2**32
    return (bytes(4) + struct.pack(">I", counter) + (fill if fill is not None else b"\xab\xcd" * size))[:size]


LAYOUTS = {"iputils": iputils, "bsd": bsd, "pro-bing": pro_bing, "busybox": busybox, "cisco": cisco}
FILL_START = {"iputils": 16, "bsd": 8, "pro-bing": 24, "busybox": 4, "cisco": 8}
WALL_CLOCKS = ("iputils", "bsd", "pro-bing")  # BusyBox's and Cisco's count from boot and wrap: no wall clock


def test_pip_install_builds_it() -> None:
    """`pip install` builds it; only ICMPSENSOR_PURE_PYTHON turns it off (the detector then runs the reference)."""
    import os

    built = standard._fastflows is not None and standard.tunnels._fasttools is not None
    assert built or os.environ.get("ICMPSENSOR_PURE_PYTHON")
    detector = Detector(DetectionConfig(), AllowlistConfig())
    assert (detector._fast is not None) == built
    assert Detector(DetectionConfig(), AllowlistConfig(), accelerated=False)._fast is None


def notice_values(notices: Iterable[Notice]) -> list[tuple[object, ...]]:
    return [(*n.replace(uid="").values(), bool(n.uid)) for n in notices]


def state(det: Detector) -> dict[str, object]:
    tools = det._tools
    return {
        "flows": [(key, [getattr(flow, name) for name in FLOW_FIELDS], bool(flow.uid))
                  for key, flow in det._flows.items()],
        "pending": list(det._pending.items()),
        "stats": det.stats.as_dict(),
        "clock": (det.now, det._next_sweep, det.last_novel, det._run_free),
        "pairs": list(det._pairs.items()),
        "hosts": [(list(t.hosts.items()), t.peer_entries) for t in (det._senders, det._receivers)],
        "tools": [(key, flow.state()) for key, flow in tools._c.flows.items()],  # type: ignore[attr-defined]
        "empty_requests": list(tools._empty_requests),
    }


class Counting:
    """A FastPath that counts what it answered: a packet's last answer (one that moves the clock to a sweep is
    declined, swept by Python, then offered again)."""

    def __init__(self, fast: object) -> None:
        self.fast = fast
        self.answers: dict[int, str] = {}  # id(packet) -> what the path did with it
        self.ends: list[bool] = []  # each flow's end: whether the path made it (Detector._flow_ended)

    def flow_ended(self, flow: Flow, ts: float, due: list[Notice]) -> bool:
        ended = self.fast.flow_ended(flow, ts, due)  # type: ignore[attr-defined]
        self.ends.append(ended)
        return ended

    def flows_ended(self, table: object, now: float, timeout: float | None, due: list[Notice],
                    *limit: int) -> tuple[int, Flow | None]:
        ended, flow = self.fast.flows_ended(table, now, timeout, due, *limit)  # type: ignore[attr-defined]
        self.ends.extend([True] * ended)
        return ended, flow

    def handle(self, pkt: IcmpPacket) -> object:
        answer = self.fast.handle(pkt)  # type: ignore[attr-defined]
        self.answers[id(pkt)] = ("handled" if answer is None else "novel" if answer is True
                                 else "declined" if answer is False else "handed out" if answer == ()
                                 else "evaluated" if len(answer) == 1 else "finished")  # type: ignore[arg-type]
        return answer

    def _count(self, answer: str) -> int:
        return sum(1 for given in self.answers.values() if given == answer)

    @property
    def handled(self) -> int:
        return self._count("handled")

    @property
    def novel(self) -> int:
        """Handled, with novel bytes (a reported exfiltration's next chunk)."""
        return self._count("novel")

    @property
    def declined(self) -> int:
        return self._count("declined")

    @property
    def finished(self) -> int:
        return self._count("finished")

    @property
    def handed_out(self) -> int:
        """Handled up to what Detector._finish hands out, nothing left to evaluate: what the flow's evaluation found
        due raised in C (raise_due), ExfilSpread a share of the hosts' memories raised, the ExfilSummary of a flow a
        full table evicted in C after a new flow, or such an eviction left to Python."""
        return self._count("handed out")

    @property
    def evaluated(self) -> int:
        """A new flow's first request, handled up to its evaluation (Detector._finish evaluates it)."""
        return self._count("evaluated")


def charged_at(packets: list[IcmpPacket], target: IcmpPacket) -> bool:
    """Whether the reference detector charged a header channel for `target` (one of `packets`, replayed in order):
    its flow's capacity state carried bits or charged bytes it had not before."""
    reference = Detector(DetectionConfig(), AllowlistConfig(), accelerated=False)

    def charges() -> tuple[object, ...] | None:
        flow = reference._flows.get((target.src, target.dst))
        state = None if flow is None else flow.channels
        return None if state is None else (state.carry, dict(state.charged or {}))

    before = None
    for pkt in packets:
        if pkt is target:
            before = charges()
        reference.process(pkt)
        if pkt is target:
            return charges() not in (None, before)
    raise AssertionError("target not among the packets")


def not_as_a_ping(counting: Counting) -> int:
    """The packets not taken as a ping's next: declined (Python's), or with novel bytes (evaluated or not)."""
    return counting.declined + counting.evaluated + counting.novel


def run_both(packets: Iterable[IcmpPacket], detection: DetectionConfig | None = None,
             allowlist: AllowlistConfig | None = None) -> Counting:
    """Both detectors on the same packets, compared after each (notices) and at ~200 places (state: after every
    packet of a short sequence); the C path's counts."""
    packets = list(packets)
    every = max(1, len(packets) // 200)
    detection = detection or DetectionConfig()
    allowlist = allowlist or AllowlistConfig()
    reference = Detector(detection, allowlist, accelerated=False)
    fast = Detector(detection, allowlist)
    assert reference._fast is None and fast._fast is not None
    assert reference._fast_notice is None and fast._fast_notice is not None  # the notices made in C too
    counting = Counting(fast._fast)
    fast._fast = counting
    for i, pkt in enumerate(packets):
        want, got = notice_values(reference.process(pkt)), notice_values(fast.process(pkt))
        assert got == want, (i, pkt)
        assert fast.last_novel == reference.last_novel, (i, pkt)
        if i % every == 0:
            assert state(fast) == state(reference), (i, pkt)
    assert state(fast) == state(reference)
    assert notice_values(fast.flush()) == notice_values(reference.flush())
    assert state(fast) == state(reference)
    return counting


CASES = {**{f"exfil-{name}": make for name, make in corpus.EXFIL_CASES.items()},
         **{f"benign-{name}": make for name, make in benign_corpus.BENIGN_CASES.items()}}


@needs_c
@pytest.mark.parametrize("case", sorted(CASES))
def test_both_agree_on_every_corpus_case(case: str) -> None:
    run_both(CASES[case]())


def decoded(path: Path) -> list[IcmpPacket]:
    linktype, frames = craft.read_capture(path)
    decoder = Decoder(linktype, DecodeStats())
    return [p for ts, frame, wire_len in frames if (p := decoder.decode(ts, frame, wire_len)) is not None]


@needs_c
def test_both_agree_on_the_seed_captures(seed_dir: Path) -> None:
    handled = 0
    for path in sorted(seed_dir.glob("*.pcap")):
        handled += run_both(decoded(path)).handled
    assert handled > 100


@needs_c
@pytest.mark.parametrize("kind", ["mix", "novel_mix"])
def test_both_agree_on_the_bench_captures_and_the_c_path_takes_most_pings(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "mix.pcap"
    synthmix.generate(path, packets=30_000, seed=7, kind=kind)
    packets = decoded(path)
    counting = run_both(packets)
    echo = sum(1 for p in packets if p.ident >= 0)
    answered = (counting.handled + counting.novel + counting.finished + counting.evaluated + counting.handed_out
                + counting.declined)
    assert answered == len(packets)
    assert counting.handled >= 0.4 * echo, (counting.handled, echo)  # measured on the mix: 58 % of echo messages


def chunks(count: int, size: int, seed: int = 3) -> list[bytes]:
    """`count` chunks of a file that does not compress (random bytes), `size` bytes each."""
    rng = random.Random(seed)
    return [rng.randbytes(size) for _ in range(count)]


@needs_c
@pytest.mark.parametrize("size", [40, 64, 65, 512, 1400])
def test_a_reported_exfiltrations_next_chunks_take_the_c_path(size: int) -> None:
    """A file sent a chunk a request, in step, with its replies: once the flow has added its share to the hosts'
    memories and would raise no note (DataExfil raised, AsymPayloadFlow not yet due or raised: its fifth changed
    request is Python's), the C path takes each next chunk with its novel bytes (last_novel, which the pipeline shows
    the evidence recorder); a chunk the sender sent lately counts once. The same notices and state as the
    reference's."""
    payloads = chunks(80, size)
    payloads[70] = payloads[68]  # sent again: in the sender's recent payloads, no novel bytes
    requests = [corpus.echo(T0 + 0.01 * i, "10.0.0.1", "10.0.0.2", True, 7, i + 1, p) for i, p in enumerate(payloads)]
    counting = run_both(corpus.with_replies(requests))
    taken = [counting.answers[id(r)] for r in requests]
    assert taken[10:70] == ["novel"] * 60 and taken[71:] == ["novel"] * 9, taken
    assert taken[70] == "handled", taken


@needs_c
def test_a_chunk_that_raises_a_note_or_adds_to_the_hosts_has_it_raised_in_c() -> None:
    """A request whose evaluation raises a note (AsymPayloadFlow's threshold made high: it is raised late, on the
    request that crosses it; raise_due) or whose share of the hosts' memories raised one (ExfilSpread:
    novel_bytes_threshold made high, every chunk adds, through the detector's own _spread) is taken by the C path,
    what was due raised there and handed out ("handed out"); a chunk whose evaluation would raise nothing and whose
    share raised nothing is the C path's alone ("novel").
    A chunk that differs from the last one in a few places only (a counter's) is the Python detector's."""
    payloads = chunks(60, 200)
    requests = [corpus.echo(T0 + 0.01 * i, "10.0.0.1", "10.0.0.2", True, 7, i + 1, p) for i, p in enumerate(payloads)]
    late = dataclasses.replace(DetectionConfig(), changed_requests_threshold=50)
    counting = run_both(requests, late)
    taken = [counting.answers[id(r)] for r in requests]
    # the flow made (its evaluation would raise nothing: one 200-byte payload); its second chunk raises DataExfil,
    # due alone: raised in C
    assert taken[:2] == ["novel", "handed out"], taken
    assert taken[50] == "handed out", taken  # the 51st changed request raises it
    assert set(taken[2:50]) | set(taken[51:]) == {"novel"}, taken
    # every chunk adds to the hosts' memories (novel_bytes_threshold made high): evaluated while the evaluation may
    # raise something, then the C path's alone where the share raises nothing ...
    counting = run_both(requests, dataclasses.replace(DetectionConfig(), novel_bytes_threshold=100_000))
    taken = [counting.answers[id(r)] for r in requests]
    assert taken[:2] == ["novel", "handed out"] and taken.count("novel") >= 50, taken
    # ... and evaluated where the share raises ExfilSpread (one peer enough, raised again every 0.1 s: each 10th)
    spreading = dataclasses.replace(DetectionConfig(), novel_bytes_threshold=100_000, spread_min_peers=1,
                                    spread_min_bytes=1000, slow_exfil_window=0.1)
    reference = Detector(spreading, AllowlistConfig(), accelerated=False)
    spread = [i for i, r in enumerate(requests)
              if "ICMP::ICMP_ExfilSpread" in [n.note for n in reference.process(r)]]
    assert len(spread) >= 5, spread
    counting = run_both(requests, spreading)
    taken = [counting.answers[id(r)] for r in requests]
    assert {taken[i] for i in spread} == {"handed out"} and taken.count("novel") >= 40, taken
    counter = [payloads[29][:10] + struct.pack(">I", i) + payloads[29][14:] for i in range(30)]  # in the head
    requests = [corpus.echo(T0 + 0.01 * i, "10.0.0.1", "10.0.0.2", True, 7, i + 1, p)
                for i, p in enumerate([*payloads[:30], *counter])]
    counting = run_both(requests)
    assert counting.novel >= 10 and all(counting.answers[id(r)] not in ("novel", "evaluated") for r in requests[30:]), \
        counting.answers


@needs_c
@pytest.mark.parametrize(("changed", "taken"), [(24, "declined"), (25, "novel")])
def test_a_chunk_that_may_be_fields_is_the_python_detectors(changed: int, taken: str) -> None:
    """Detector._as_fields reads a request that differs from the last in at most 3 * MAX_FIELD_BYTES places (the
    rest equal) as counters or clocks: such a request is the Python detector's, one place more the C path's."""
    assert 3 * capacity.MAX_FIELD_BYTES == 24
    payloads = chunks(30, 200)
    last = payloads[-1]
    payloads.append(bytes(b ^ 0x5A if i < changed else b for i, b in enumerate(last)))  # in the sketch's head
    requests = [corpus.echo(T0 + 0.01 * i, "10.0.0.1", "10.0.0.2", True, 7, i + 1, p) for i, p in enumerate(payloads)]
    counting = run_both(requests)
    assert counting.answers[id(requests[29])] == "novel" and counting.answers[id(requests[30])] == taken, \
        counting.answers


def field_flood(flows: int, per_flow: int, span: float, seed: int = 12) -> list[IcmpPacket]:
    """Requests each differing from their flow's last in 4 two-byte places (random values): read as counters or
    clocks by the Python detector, ~100 times a mix packet's cost (red team, 2026-12-08: 0.009 of the mix)."""
    rng = random.Random(seed)
    base = bytes(rng.randrange(256) for _ in range(64))
    packets = []
    for i in range(flows * per_flow):
        flow, k = i % flows, i // flows
        payload = bytearray(base)
        if k:
            for at in (0, 16, 32, 48):
                payload[at : at + 2] = rng.randbytes(2)
        packets.append(corpus.echo(T0 + span * i / (flows * per_flow), f"10.7.{flow // 250}.{flow % 250 + 1}",
                                   "10.0.0.2", True, 7, k + 1, bytes(payload)))
    return packets


@needs_c
def test_a_flood_of_field_readings_is_charged_byte_for_byte_past_its_budget() -> None:
    """Reading a request's few changed places as counters or clocks is the Python detector's (field_bits, ~1 ms
    each): past FIELD_READINGS of them at once, refilled one per FIELD_READING_REFILL seconds of packet time, the
    differing bytes are charged as they are (never less than their fields carry), in C, and counted
    (`fields_unread`). Both paths agree; the C path takes the requests past the budget."""
    readings, refill = capacity.FIELD_READINGS, capacity.FIELD_READING_REFILL
    packets = field_flood(100, 30, span=1.0)
    counting = run_both(packets)
    reference = Detector(DetectionConfig(), AllowlistConfig(), accelerated=False)
    for pkt in packets:
        reference.process(pkt)
    read = len(packets) - 100 - reference.stats.fields_unread
    assert reference.stats.fields_unread > 0 and readings <= read <= readings + 1.0 / refill + 1, read
    assert counting.declined <= read + 100, counting.declined  # the others taken in C
    slow = field_flood(10, 30, span=300.0)  # 1 a second per flow: every one read
    reference = Detector(DetectionConfig(), AllowlistConfig(), accelerated=False)
    for pkt in slow:
        reference.process(pkt)
    assert reference.stats.fields_unread == 0


@needs_c
def test_a_ping_with_a_timestamp_option_is_judged_alike_and_stays_quiet() -> None:
    """`ping -T tsonly`: each request's IPv4 timestamp option holds the sender's time of day in ms (capacity.
    timestamp_bytes reads it): the C path hands such a request to the Python detector; both agree, no notice."""
    requests = []
    for i in range(60):
        ts = T0 + 0.2 * i
        ms = int(ts % 86_400 * 1000)
        option = bytes((68, 40, 9, 0)) + struct.pack("!I", ms) + bytes(32)
        requests.append(dataclasses.replace(corpus.echo(ts, "10.0.0.1", "10.0.0.2", True, 7, i + 1, iputils(ts)),
                                            options=option))
    counting = run_both(requests)
    assert counting.declined == len(requests) - 1 or counting.declined == len(requests), counting.answers
    reference = Detector(DetectionConfig(), AllowlistConfig(), accelerated=False)
    assert not [n for pkt in requests for n in reference.process(pkt)] and not reference.flush()


def unsolicited_replies(count: int, skew: Callable[[int], float]) -> list[IcmpPacket]:
    """iputils replies to requests the sensor never saw (one identifier, the sequence one up), each embedding its
    request's send time: the capture time less 20 ms, plus `skew(i)` seconds."""
    return [corpus.echo(T0 + 0.1 * i, "10.5.0.9", "10.0.0.1", False, 0x4242, i + 1,
                        iputils(T0 + 0.1 * i - 0.02 + skew(i))) for i in range(count)]


@needs_c
def test_unsolicited_replies_whose_clock_jumps_carry_data_and_asymmetric_ones_do_not() -> None:
    """A reply's clock is its request's; with no request seen, its sender chose it: a clock whose offset to the
    capture clock jumps within the template's tolerance carried ~29 bits a reply, unseen (red team, 2026-12-08).
    Replies of a real ping seen without their requests (asymmetric routing) keep one offset: free. Both paths
    agree (the C path hands a clock it would charge to the reference)."""
    rng = random.Random(9)
    jumps = unsolicited_replies(200, lambda i: rng.uniform(-250.0, 250.0))
    run_both(jumps)
    reference = Detector(DetectionConfig(), AllowlistConfig(), accelerated=False)
    notes = [n.note for pkt in jumps for n in reference.process(pkt)] + [n.note for n in reference.flush()]
    assert "ICMP::ICMP_DataExfil" in notes, notes
    flow = next(iter(reference._flows.values())) if reference._flows else None
    assert flow is None or (flow.channels is not None and (flow.channels.charged or {}).get("time", 0) > 0)
    steady = unsolicited_replies(200, lambda i: rng.uniform(-0.002, 0.002))
    counting = run_both(steady)
    reference = Detector(DetectionConfig(), AllowlistConfig(), accelerated=False)
    assert not [n for pkt in steady for n in reference.process(pkt)] and not reference.flush()
    assert counting.declined <= 2, counting.answers  # the C path takes a steady clock


@needs_c
def test_errors_longer_than_an_error_can_be_are_judged_alike() -> None:
    """An error whose right quote makes it longer than an error is (nonecho.error_payload_limit) is not the C path's
    benign error: its excess is charged (unexplained_bytes), in both alike."""
    packets = []
    for i in range(40):
        data = random.Random(i).randbytes(1400 if i % 2 else 400)
        udp = benign_corpus.udp_datagram("10.0.0.1", "10.9.9.9", 40000, 53, data)
        datagram = benign_corpus.ipv4_header("10.0.0.1", "10.9.9.9", 17, len(udp), ttl=64, ident=i) + udp
        payload = bytes(4) + datagram
        packets.append(IcmpPacket(T0 + i, bytes((10, 9, 9, 9)), bytes((10, 0, 0, 1)), False, 3, 3, -1, -1, payload,
                                  len(payload) + 42))
    counting = run_both(packets)
    answers = [counting.answers[id(p)] for p in packets]
    assert all(answers[i] == "handled" for i in range(0, 40, 2)), answers  # benign in C
    assert all(answers[i] != "handled" for i in range(1, 40, 2)), answers  # their excess charged


@needs_c
def test_with_dataexfil_off_slowexfil_is_checked_by_python() -> None:
    """DataExfil switched off: a flow never reports its pair, so where the pair has a memory each request's
    evaluation checks SlowExfil (and trims the memory): the Python detector's, until it raises it. Without a memory
    (the pair's first flow) there is nothing to read: C's."""
    switches = dataclasses.replace(DetectionConfig().notices, data_exfil=False)
    detection = dataclasses.replace(DetectionConfig(), notices=switches, idle_timeout=1.0)
    # two flows of the pair, the first ended (idle) before the second: the pair's memory holds the first's bytes
    requests = [corpus.echo(T0 + 0.01 * i + 5.0 * (i >= 20), "10.0.0.1", "10.0.0.2", True, 7, i + 1, p)
                for i, p in enumerate(chunks(40, 200))]
    counting = run_both(requests, detection)
    reference = Detector(detection, AllowlistConfig(), accelerated=False)
    notes = [[n.note for n in reference.process(p)] for p in requests]
    raised = [i for i, names in enumerate(notes) if "ICMP::ICMP_SlowExfil" in names]
    assert len(raised) == 1 and raised[0] >= 20, raised
    taken = [counting.answers[id(r)] for r in requests]
    # the first flow's pair has no memory yet (nothing for SlowExfil to read): C's, a note raised there
    # (AsymPayloadFlow); the second's memory is read until SlowExfil is raised, then C's
    assert taken[:20] == ["handed out" if names else "novel" for names in notes[:20]], taken
    assert "novel" not in taken[20 : raised[0] + 1] and "novel" in taken[raised[0] + 1 :], taken


def replay_stops(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                 evidence: bool = True) -> tuple[list[int], Pipeline]:
    """The capture through the product's replay (logs in tmp_path/logs): the indexes the pipeline's loop stopped at
    (Pipeline._stops), and the pipeline, closed."""
    cfg = Config()
    cfg.output.evidence.enabled = evidence
    cfg.output.log_dir = str(tmp_path / "logs")
    (tmp_path / "logs").mkdir()
    pipeline = Pipeline(cfg, [ListSink()])  # type: ignore[list-item]
    stopped: list[int] = []
    stops = Pipeline._stops

    def counted(self: Pipeline, *args: object) -> Iterable[tuple[int, IcmpPacket, list[Notice]]]:
        for stop in stops(self, *args):  # type: ignore[arg-type]
            stopped.append(stop[0])
            yield stop

    monkeypatch.setattr(Pipeline, "_stops", counted)
    replay_pipeline(pipeline, [str(path)])
    pipeline.close()
    return stopped, pipeline


@needs_c
def test_the_pipeline_goes_past_a_recorded_pairs_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A recorded exfiltration's next chunks, which the C path takes with their novel bytes, are the evidence
    recorder's whatever they carried (a watched pair has a ring or a recording): the pipeline hands them to it in
    runs (observe_passed) instead of stopping at each; every one of them is in the evidence pcap."""
    frames = [(T0 + 0.001 * i, craft.ether(craft.icmp4("10.0.0.1", "10.0.0.2", 8, 0, 7, i + 1, p)))
              for i, p in enumerate(chunks(300, 512))]
    path = tmp_path / "chunks.pcap"
    craft.write_pcap(path, frames)
    stopped, _ = replay_stops(path, tmp_path, monkeypatch)
    assert 0 < len(stopped) <= 20, stopped  # the first requests (a new flow, DataExfil, ASymPayloadFlow) and sweeps
    (pcap,) = (tmp_path / "logs").rglob("*.pcap")
    assert len(craft.read_capture(pcap)[1]) == 300


@needs_c
def test_the_pipeline_goes_past_a_novel_payload_floods_requests(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A novel-payload flood from spoofed sources (four requests of random bytes from each, to one target): the
    pipeline stops only where a request raises a notice or needs Python; the others, their novel bytes the evidence
    recorder's to see, are handed to it in runs (observe_passed). The evidence is what it was when each was a stop:
    test_the_pipeline_gives_the_same_with_the_detectors_c_path_and_without."""
    path = tmp_path / "flood.pcap"
    synthmix.generate(path, packets=8_000, seed=5, kind="novel_flood")
    stopped, pipeline = replay_stops(path, tmp_path, monkeypatch)
    assert 0 < len(stopped) < 0.3 * 8_000, len(stopped)  # a stop at each flow's DataExfil (one in four)
    assert pipeline.stats()["evidence"]["files"] > 0  # type: ignore[index]


@needs_c
@pytest.mark.parametrize("evidence", [True, False], ids=["evidence", "no evidence"])
@pytest.mark.parametrize("kind", ["storm", "novel_flood"])
def test_the_pipeline_goes_past_the_packets_whose_notices_the_aggregator_folds(
        kind: str, evidence: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A notice storm (a one-packet exfiltration from each of thousands of sources to one target) and a novel-payload
    flood: past the aggregator's quota, the notices the C path raises are folded as they are raised (the aggregator's
    filter, called from the C path) and the pipeline stops only where there is a notice to write or the packet needs
    Python (a sweep, a clock step), with evidence on or off; the notices written and the aggregates are those of
    test_the_pipeline_gives_the_same_with_the_detectors_c_path_and_without."""
    path = tmp_path / "storm.pcap"
    synthmix.generate(path, packets=8_000, seed=6, kind=kind)
    stopped, pipeline = replay_stops(path, tmp_path, monkeypatch, evidence)
    stats = pipeline.stats()
    assert stats["notices_folded"] > 3_000 and stats["notices_aggregated"] > 0, stats
    assert 0 < len(stopped) < 0.05 * 8_000, len(stopped)


@needs_c
def test_a_request_the_tool_tracker_matches_in_c_is_finished_in_c() -> None:
    """nping --data: the same payload in every request, the sequence numbers stepping by 0..2; the C path takes its
    requests, a ping's next ones: the one the C tool tracker matches it finishes with the tracker's own finish (asked
    from C, as Detector._recognise_tool asks FastToolTracker.observe) and raises the Tunnel notice there, as the
    reference does."""
    packets = corpus.EXFIL_CASES["nping-data"]()
    reference = Detector(DetectionConfig(), AllowlistConfig(), accelerated=False)
    notes = [[n.note for n in reference.process(p)] for p in packets]
    tunnel = [i for i, names in enumerate(notes) if "ICMP::ICMP_Tunnel" in names]
    counting = run_both(packets)
    assert tunnel and {counting.answers[id(packets[i])] for i in tunnel} == {"handed out"}, (tunnel, vars(counting))
    assert counting.finished == 0 and counting.handled >= 1, vars(counting)


@needs_c
def test_a_pings_repeated_requests_and_their_replies_take_the_c_path() -> None:
    """What the path is for, and where it stops: a ping with the same payload every time (a health check's) runs
    in C after its first exchange; a reply that does not repeat its request, a new identifier, a sequence number
    out of step, a request with IP options, each go to Python. (Windows' own payload is allowlisted by default:
    that too goes to Python.)"""
    payload = b"health-check 0123456789abcdefghij"
    requests = [corpus.echo(1e9 + 0.2 * i, "10.0.0.1", "10.0.0.2", True, 7, i + 1, payload) for i in range(20)]
    counting = run_both(corpus.with_replies(requests))
    # all but the first request and reply, and the packets that move the clock past a whole second (a sweep)
    assert counting.handled >= 32, vars(counting)

    odd = [*requests[:3], corpus.echo(1e9 + 3, "10.0.0.1", "10.0.0.2", True, 8, 4, payload),  # new identifier
           corpus.echo(1e9 + 4, "10.0.0.1", "10.0.0.2", True, 8, 9, payload),  # out of step
           dataclasses.replace(corpus.echo(1e9 + 5, "10.0.0.1", "10.0.0.2", True, 8, 10, payload), options=RR),
           corpus.echo(1e9 + 6, "10.0.0.2", "10.0.0.1", False, 8, 10, payload[::-1])]  # differs from its request
    counting = run_both(odd)
    # the first request makes the flow in C (its evaluation would raise nothing); the new identifier and the sequence
    # number out of step are charged in C (repeated_request: under a byte each, nothing to evaluate); the request with
    # IP options and the reply that differs (its flow made) are Python's
    assert counting.novel == 1 and counting.handled == 4 and counting.declined == 2, vars(counting)
    assert [counting.answers[id(p)] for p in odd[3:5]] == ["handled", "handled"], counting.answers


def storm(count: int, target: str = "10.1.0.81", seed: int = 4) -> list[IcmpPacket]:
    """One echo request with 500 random bytes from each of `count` spoofed sources to `target`, 1 ms apart."""
    rng = random.Random(seed)
    return [corpus.echo(T0 + i * 1e-3, f"100.64.{i // 250}.{i % 250 + 1}", target, True, rng.randrange(1, 0xFFFF),
                        1, rng.randbytes(500)) for i in range(count)]


@needs_c
def test_a_storms_first_requests_make_their_flows_in_c_and_only_their_evaluation_is_python() -> None:
    """A notice storm: each spoofed source's one request makes its flow in C (first_request: the flow, its header,
    its sketch, the sender's memory, the tool tracker, the pending request, its novel bytes and their share of the
    hosts' memories, through the detector's own _spread, which raises the target's ExfilSpread on the way); Python
    only evaluates the flow. The notices and the whole state after every packet are the reference's."""
    counting = run_both(storm(300))
    # each taken by C: evaluated, or finished where the tool tracker answered something about the random bytes
    assert counting.handed_out + counting.finished == 300 and counting.handed_out >= 290, vars(counting)
    fast = Detector(DetectionConfig(), AllowlistConfig())
    notes = [n.note for pkt in storm(300) for n in fast.process(pkt)]
    assert notes.count("ICMP::ICMP_DataExfil") == 300 and "ICMP::ICMP_ExfilSpread" in notes


def headless_traffic(seed: int = 8, count: int = 400) -> list[IcmpPacket]:
    """Headless fragments (decode/fragments.py): a storm of spoofed sources' random 16-byte runs towards one host,
    benign pings' fills (explained), runs of both in one packet, and an exfiltration's data runs interleaved with
    its own echo requests, IPv4 and IPv6."""
    rng = random.Random(seed)
    packets: list[IcmpPacket] = []
    for i in range(count):
        ts = T0 + i * 0.01
        v6 = i % 5 == 4
        src = f"2001:db8:{i % 97:x}::9" if v6 else f"100.64.{i // 250 % 250}.{i % 250 + 1}"
        dst = "2001:db8:ff::1" if v6 else "10.1.0.81"
        fill = [bytes(range(200, 256)) + bytes(range(0, 100)), b"\x01" * 300, bytes(64)][i % 3]
        runs = [((1480, 16), rng.randbytes(16)), ((1480, len(fill)), fill),
                ((1480, len(fill)), fill), ((8, 16), rng.randbytes(16))][i % 4]
        (offset, length), data = runs
        extra = ((offset + 2960, len(fill)),) if i % 6 == 0 else ()
        payload = data + (fill if extra else b"")
        packets.append(HeadlessPacket(ts, craft.addr(src), craft.addr(dst), v6, HEADLESS, 0, -1, -1, payload, 1514,
                                      b"", None, ts - 0.5, ((offset, length), *extra)))
        if i % 10 == 0:
            packets.append(corpus.echo(ts + 0.001, "192.0.2.8", "10.1.0.81", True, 0x5151, i, rng.randbytes(64)))
            packets.append(HeadlessPacket(ts + 0.002, craft.addr("192.0.2.8"), craft.addr("10.1.0.81"), False,
                                          HEADLESS, 0, -1, -1, rng.randbytes(1480), 1514, b"", None, ts,
                                          ((1480, 1480),)))
    return packets


@needs_c
def test_headless_fragments_are_judged_in_c_as_in_python() -> None:
    """A flood of spoofed fragments without their first is a notice storm: the C path takes each headless packet as
    a non-echo message (nonecho.unexplained_bytes asked), the notices and the state after every packet the
    reference's."""
    counting = run_both(headless_traffic())
    assert counting.declined <= len(counting.answers) // 20, vars(counting)
    fast = Detector(DetectionConfig(), AllowlistConfig())
    notes = [n for pkt in headless_traffic() for n in fast.process(pkt)]
    assert {n.src for n in notes if n.note == "ICMP::ICMP_NonEchoPayload"} >= {"192.0.2.8", "100.64.0.1"}
    assert not any(n.src in ("100.64.0.2", "100.64.0.3") for n in notes)  # their fills explained


@st.composite
def headless_runs(draw: st.DrawFn) -> tuple[tuple[tuple[int, int], ...], bytes]:
    """A headless packet's runs and payload: each run a benign fill at any phase (the iputils / BSD count, Windows'
    alphabet, traceroute -I's), zeros or 0x01, a pattern of 1 to 20 bytes repeated, random bytes, or a fill with a
    byte changed; 1 to 64 bytes (a single byte too), 1 to 4 runs at offsets a fragment's."""
    fills = (fingerprints._SEQ, fingerprints._WINDOWS_FILL, fingerprints._TRACEROUTE_FILL)
    runs, payload, offset = [], b"", draw(st.integers(1, 8000)) * 8
    for _ in range(draw(st.integers(1, 4))):
        n = draw(st.integers(1, 64))
        kind = draw(st.sampled_from(["fill", "free", "pattern", "random", "changed"]))
        if kind in ("fill", "changed"):
            fill = draw(st.sampled_from(fills))
            start = draw(st.integers(0, 300))
            run = bytearray(fill[start:start + n])
            if kind == "changed" and run:
                at = draw(st.integers(0, len(run) - 1))
                run[at] ^= draw(st.integers(1, 255))
            run = bytes(run)
        elif kind == "free":
            run = bytes([draw(st.sampled_from([0, 1]))]) * n
        elif kind == "pattern":
            pattern = draw(st.binary(min_size=1, max_size=20))
            run = (pattern * (n // len(pattern) + 2))[draw(st.integers(0, len(pattern) - 1)):][:n]
        else:
            run = draw(st.binary(min_size=n, max_size=n))
        runs.append((offset, len(run)))
        payload += run
        offset += len(run) + draw(st.integers(1, 4)) * 8
    return tuple(runs), payload


@needs_c
@settings(max_examples=examples(3000), deadline=None)
@given(made=headless_runs(), v6=st.booleans())
def test_a_headless_packets_bytes_are_charged_in_c_as_the_reference_charges_them(
        made: tuple[tuple[tuple[int, int], ...], bytes], v6: bool) -> None:
    """FastPath.headless_bytes (other_message's judge of a headless packet) against nonecho.unexplained_bytes, its
    reference (_headless, fingerprints.fill_charge, _period): the unexplained bytes and the reason, on runs of every
    kind fill_charge tells apart and at its edges (a fill at any phase, one byte changed, patterns up to past
    MAX_PATTERN, a single byte)."""
    runs, payload = made
    src, dst = ("2001:db8::9", "2001:db8::1") if v6 else ("100.64.0.9", "10.1.0.81")
    pkt = HeadlessPacket(T0, corpus.packed(src), corpus.packed(dst), v6, HEADLESS, 0, -1, -1, payload, 1514, b"",
                         None, T0 - 0.5, runs)
    assert PATH.headless_bytes(pkt) == nonecho.unexplained_bytes(pkt)


@needs_c
def test_a_headless_flood_runs_under_a_few_python_lines_a_packet() -> None:
    """Headless fragments from spoofed sources (random runs, benign fills, both): other_message judges each itself
    (headless_bytes; nonecho.unexplained_bytes is not asked): what 1,500 more add is under 15 Python lines a packet
    (~11.5: Detector.process, and _finish handing out the notices of the two packets in five that raise one; ~38
    while unexplained_bytes was asked)."""
    def lines(count: int) -> int:
        packets = [pkt for pkt in headless_traffic(count=count) if isinstance(pkt, HeadlessPacket)]
        detector = Detector(DetectionConfig(), AllowlistConfig())
        return lines_run(lambda: [detector.process(pkt) for pkt in packets])

    assert lines(3_000) - lines(1_500) < 15 * 1_500


def spread_traffic(sources: int = 40, targets: int = 3, seed: int = 6) -> list[IcmpPacket]:
    """Each source sends three requests in step (100 random bytes each: under novel_bytes_threshold, so each adds to
    the hosts' memories) to one of `targets` targets, the sources interleaved, 2 ms apart."""
    rng = random.Random(seed)
    packets = []
    for rounds in range(3):
        for i in range(sources):
            packets.append(corpus.echo(T0 + (rounds * sources + i) * 2e-3, f"100.64.1.{i + 1}",
                                       f"10.1.0.{80 + i % targets}", True, 1000 + i, rounds + 1, rng.randbytes(100)))
    return packets


@needs_c
@pytest.mark.parametrize("limit", ["none", "peers kept", "peer entries", "hosts", "window", "spread"])
def test_the_hosts_memories_the_c_path_keeps_are_the_references_at_every_limit(
        limit: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The C path's _spread (spread_share, table_add: HostTable.touch and add, SpreadMemory.add) against the
    reference, state after every packet, with each limit reached within a few packets: a host's peers kept
    (SPREAD_PEERS_KEPT), the peers over a table (SPREAD_PEER_ENTRIES: HostTable._shed), the hosts a table keeps
    (max_pairs), the slow window (a host's memory starts again), ExfilSpread raised again and again."""
    detection = DetectionConfig()
    if limit == "peers kept":
        monkeypatch.setattr(standard, "SPREAD_PEERS_KEPT", 3)
    elif limit == "peer entries":
        monkeypatch.setattr(standard, "SPREAD_PEER_ENTRIES", 10)
    elif limit == "hosts":
        detection = dataclasses.replace(detection, max_pairs=8)
    elif limit == "window":
        detection = dataclasses.replace(detection, slow_exfil_window=0.05)
    elif limit == "spread":
        detection = dataclasses.replace(detection, spread_min_peers=2, spread_min_bytes=150, slow_exfil_window=0.1)
    packets = spread_traffic()
    counting = run_both(packets, detection)
    assert counting.evaluated + counting.novel >= len(packets) // 2, vars(counting)


@needs_c
def test_a_first_request_goes_to_python_where_the_c_path_cannot_tell_it_alike() -> None:
    """Where a new flow's first request needs what only the Python detector does, the C path leaves it: a template's
    payload with IP options, a sender whose last payload went to another peer and that may read
    as a few counters or clocks against that flow's (a monitor's text and round number, host after host), a pair
    with a memory (a flow that came back), an allowlist to look up. A tool's first packet is
    taken up to the tool tracker, which answers: Python finishes it. In a full flow table the C path makes the
    flow and Python evicts one after its evaluation, as _process does. Each against the
    reference, state and notices after every packet."""
    random_bytes = random.Random(9).randbytes
    ping = benign_corpus.iputils_payload(56, T0)
    cases = {
        "template with IP options": ([dataclasses.replace(corpus.echo(T0, "10.0.0.1", "10.0.0.2", True, 7, 1, ping),
                                                          options=RR)], None, None),
        "another peer": ([corpus.echo(T0, "10.0.0.1", "10.0.0.2", True, 7, 1, b"round 0001 " + bytes(100)),
                          corpus.echo(T0 + 0.1, "10.0.0.1", "10.0.0.3", True, 7, 1, b"round 0002 " + bytes(100))],
                         None, None),
        "pair remembered": ([corpus.echo(T0, "10.0.0.1", "10.0.0.2", True, 7, 1, random_bytes(300)),
                             corpus.echo(T0 + 400, "10.0.0.1", "10.0.0.2", True, 8, 1, random_bytes(300))], None, None),
        "allowlist": ([corpus.echo(T0, "10.0.0.1", "10.0.0.2", True, 7, 1, random_bytes(300))], None,
                      AllowlistConfig(hosts=(ipaddress.ip_network("192.0.2.0/24"),))),
    }
    for name, (packets, detection, allowlist) in cases.items():
        counting = run_both(packets, detection, allowlist)
        assert counting.answers[id(packets[-1])] == "declined", (name, counting.answers)
    # a template's payload (explain's answer, its run started as _consistent starts it) is taken, and an empty one
    for payload in (ping, b""):
        first = corpus.echo(T0, "10.0.0.1", "10.0.0.2", True, 7, 1, payload)
        assert run_both([first]).answers[id(first)] == "handled", payload
    # a full table: the C path makes the flow, Python evaluates it and evicts one (the storm's older flows)
    packets = storm(40)
    counting = run_both(packets, DetectionConfig(max_flows=3))
    assert counting.handed_out == 40, counting.answers
    tool = corpus.ptunnel_session()[0]  # the tracker's answer finished from C, its Tunnel raised there
    assert tool.icmp_type == 8
    counting = run_both([tool])
    assert counting.answers[id(tool)] == "handed out", counting.answers


@needs_c
@pytest.mark.parametrize("flows_count", [1, flows.FLUSH_CHUNK, 2 * flows.FLUSH_CHUNK + 17])
def test_the_flush_ends_flows_a_chunk_at_a_time(flows_count: int) -> None:
    """FlowDetector.flush_chunks: the end of input ends the flows FLUSH_CHUNK at a time, oldest first, each chunk's
    notices handed out before the next chunk's are made (the pipeline folds them in between: a storm's 100,000
    flows no longer hold 100,000 summaries at once); the C path's chunks (flows_ended's limit) are the reference's,
    notice for notice, and together what flush() gives."""
    packets = storm(flows_count)
    reference = Detector(DetectionConfig(), AllowlistConfig(), accelerated=False)
    fast = Detector(DetectionConfig(), AllowlistConfig())
    whole = Detector(DetectionConfig(), AllowlistConfig())
    for pkt in packets:
        for detector in (reference, fast, whole):
            detector.process(pkt)
    want = [notice_values(chunk) for chunk in reference.flush_chunks()]
    got = [notice_values(chunk) for chunk in fast.flush_chunks()]
    assert got == want
    assert len(got) == -(-flows_count // flows.FLUSH_CHUNK)
    assert all(len(chunk) <= flows.FLUSH_CHUNK for chunk in got)  # one ExfilSummary a flow
    assert [n for chunk in got for n in chunk] == notice_values(whole.flush())
    assert state(fast) == state(reference) and not fast._flows and not fast._pending


def whole_flush(detector: Detector, kept: flows.Kept | None = None) -> Iterator[list[Notice]]:
    """The flush before flush_chunks: every flow ended onto one list."""
    due: list[Notice] = []
    detector._end_flows(due, detector.now, None, kept=kept)
    detector._pending.clear()
    yield due


@needs_c
def test_the_pipeline_folds_each_flush_chunk_before_the_next_is_made(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Pipeline.finish: the aggregator filters each chunk of the flush as it comes (never more than a chunk's notices
    at once), and notice.log is what one filter of the whole flush wrote."""
    path = tmp_path / "storm.pcap"
    craft.write_pcap(path, [(p.ts, craft.ether(craft.icmp4(addr_text(p.src), addr_text(p.dst), 8, 0, p.ident, p.seq,
                                                            p.payload))) for p in storm(3 * flows.FLUSH_CHUNK)])
    sizes: list[int] = []
    filter_notices = NoticeAggregator.filter
    monkeypatch.setattr(NoticeAggregator, "filter",
                        lambda aggregator, notices: sizes.append(len(notices)) or filter_notices(aggregator, notices))
    logs = []
    for chunked in (True, False):
        cfg = Config()
        cfg.output.log_dir = str(tmp_path / str(chunked))
        pipeline = Pipeline(cfg, [ListSink()])  # type: ignore[list-item]
        sizes.clear()
        if not chunked:  # the whole flush at once, as before
            monkeypatch.setattr(Detector, "flush_chunks", whole_flush)
        replay_pipeline(pipeline, [str(path)])
        pipeline.close()
        written = pipeline.sinks[0].notices  # type: ignore[attr-defined]
        logs.append(notice_values(n.replace(evidence=str(bool(n.evidence))) for n in written))  # a path with the uid
        if chunked:
            assert max(sizes) <= flows.FLUSH_CHUNK, sizes
        else:
            assert max(sizes) >= 3 * flows.FLUSH_CHUNK, sizes
    assert logs[0] == logs[1] and logs[0]


def folded_story(detector: Detector, aggregator: NoticeAggregator, packets: list[IcmpPacket | None],
                 end: str) -> list[tuple[object, ...]]:
    """What the pipeline writes of a replay of `packets`: process_many over them with the aggregator's stop hooks,
    then (`end`) the flush's chunks, or the chunks of advance() 1,000 s later, each filtered as it comes, then the
    aggregates; both handed the filter as the pipeline hands it (flush_chunks, advance_chunks)."""
    folds, kept = aggregator.stop_hooks()
    written: list[Notice] = []
    index = 0
    while index < len(packets):
        index, notices = detector.process_many(packets, index, frozenset(), [], folds, kept)
        written += notices or ()
        index += index < len(packets)
    at = detector.now + 1_000.0
    chunks = detector.flush_chunks(kept) if end == "flush" else detector.advance_chunks(at, kept)
    for chunk in chunks:
        written += aggregator.filter(chunk)
    written += aggregator.flush(detector.now)
    return notice_values(written)


@needs_c
@pytest.mark.parametrize("end", ["flush", "advance", "gap"])
def test_a_storms_notices_the_aggregator_folds_are_never_made(end: str) -> None:
    """With the aggregator's C filter as `kept` (the pipeline's stop hooks), the C path folds a notice the filter
    would fold and tell nothing of where it would make it (a storm's DataExfil in run(), its summaries in the flush,
    in a sweep at a replay's gap and in advance's chunks): notice.log, the aggregates and the aggregator's and the
    detector's state are those of the Python detector and aggregator, and most of the storm's notices are never
    made (FastPath.unmade)."""
    packets: list[IcmpPacket | None] = list(storm(3 * flows.FLUSH_CHUNK))
    if end == "gap":  # a packet 1,000 s later sweeps every flow
        packets.append(dataclasses.replace(storm(1, target="10.1.0.82", seed=5)[0], ts=packets[-1].ts + 1_000.0))
    fast = Detector(DetectionConfig(), AllowlistConfig())
    reference = Detector(DetectionConfig(), AllowlistConfig(), accelerated=False)
    folding = NoticeAggregator(60.0, 10, 3, 100)
    reference_folding = NoticeAggregator(60.0, 10, 3, 100, accelerated=False)
    got = folded_story(fast, folding, packets, end)
    assert got == folded_story(reference, reference_folding, packets, end)
    assert state(fast) == state(reference) and folding.folded == reference_folding.folded
    assert [n[1] for n in got if not n[-1]] == ["ICMP::ICMP_DataExfil", "ICMP::ICMP_ExfilSummary"]  # the aggregates
    # of 2 x 3,072 notices, all made but the quota's ten DataExfil, the few a due aggregate comes before, and the
    # summaries of the first chunk of flows ended: the quota's written flows are the oldest, and once a chunk holds a
    # notice still to be filtered, the rest of the chunk is made (what the filter does with one may change another)
    assert fast._fast.unmade >= 3 * flows.FLUSH_CHUNK - 20 + 2 * flows.FLUSH_CHUNK, fast._fast.unmade  # type: ignore


@pytest.mark.parametrize("accelerated", [True, False])
def test_a_sweep_hands_its_notices_to_kept_a_chunk_at_a_time(accelerated: bool) -> None:
    """A gap in a replay (or a clock that jumped) past idle_timeout sweeps every flow before the next packet:
    process_many hands the sweep's notices to kept() FLUSH_CHUNK flows at a time, then the packet's own, and
    answers what kept() kept of them all, as process() gives them (a storm's 100,000 idle flows no longer hold
    100,000 summaries at once before the aggregator folds them)."""
    packets = storm(2 * flows.FLUSH_CHUNK + 17)
    late = dataclasses.replace(storm(1, target="10.1.0.82", seed=5)[0], ts=packets[-1].ts + 1_000.0)
    chunked = Detector(DetectionConfig(), AllowlistConfig(), accelerated=accelerated)  # False: FlowDetector's loop
    whole = Detector(DetectionConfig(), AllowlistConfig(), accelerated=False)
    for pkt in packets:
        chunked.process(pkt)
        whole.process(pkt)
    sizes: list[int] = []

    def kept(notices: Iterable[Notice]) -> list[Notice]:
        notices = list(notices)
        sizes.append(len(notices))
        return notices[::2]  # what a filter keeps: some of them

    index, got = chunked.process_many([None, late], 0, frozenset(), [], lambda uid: False, kept)
    want = whole.process(late)  # the sweep's notices, then the packet's
    assert index == 1 and len(want) > 2 * flows.FLUSH_CHUNK
    assert max(sizes) <= flows.FLUSH_CHUNK and sum(sizes) == len(want), sizes
    chunks, start = [], 0
    for size in sizes:
        chunks += want[start:start + size][::2]
        start += size
    assert notice_values(got or ()) == notice_values(chunks)
    assert state(chunked) == state(whole) and len(chunked._flows) == 1


@pytest.mark.parametrize("accelerated", [True, False])
def test_the_clock_moved_by_advance_ends_idle_flows_a_chunk_at_a_time(accelerated: bool) -> None:
    """FlowDetector.advance_chunks (the pipeline's advance: live, the wall clock while the wire is quiet; a replay
    worker's sweep at another's packet): the flows a sweep ends FLUSH_CHUNK at a time, as advance() ends them."""
    packets = storm(2 * flows.FLUSH_CHUNK + 17)
    chunked = Detector(DetectionConfig(), AllowlistConfig(), accelerated=accelerated)
    whole = Detector(DetectionConfig(), AllowlistConfig(), accelerated=False)
    for pkt in packets:
        chunked.process(pkt)
        whole.process(pkt)
    at = packets[-1].ts + 1_000.0
    got = [notice_values(chunk) for chunk in chunked.advance_chunks(at)]
    want = notice_values(whole.advance(at))
    assert [n for chunk in got for n in chunk] == want
    assert [len(chunk) for chunk in got] == [flows.FLUSH_CHUNK, flows.FLUSH_CHUNK, 17]
    assert state(chunked) == state(whole) and not chunked._flows
    assert list(chunked.advance_chunks(at)) == [] and list(chunked.advance_chunks(at - 5)) == []
    assert chunked.now == at  # the clock never goes back


@needs_c
@pytest.mark.parametrize("sweep", ["gap", "advance"])
def test_the_pipeline_folds_each_chunk_of_a_sweep_before_the_next_is_made(tmp_path: Path, sweep: str,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A storm's flows ended by a sweep, at a replay's gap (a packet 1,000 s later) or by Pipeline.advance: the
    aggregator filters a chunk of them at a time, and notice.log is what one filter of the whole sweep wrote."""
    packets = storm(3 * flows.FLUSH_CHUNK)
    late = dataclasses.replace(storm(1, target="10.1.0.82", seed=5)[0], ts=packets[-1].ts + 1_000.0)
    path = tmp_path / "storm.pcap"
    craft.write_pcap(path, [(p.ts, craft.ether(craft.icmp4(addr_text(p.src), addr_text(p.dst), 8, 0, p.ident, p.seq,
                                                            p.payload)))
                            for p in packets + ([late] if sweep == "gap" else [])])
    sizes: list[int] = []
    filter_notices = NoticeAggregator.filter
    monkeypatch.setattr(NoticeAggregator, "filter",
                        lambda aggregator, notices: sizes.append(len(notices)) or filter_notices(aggregator, notices))
    stop_hooks = NoticeAggregator.stop_hooks

    def counted_hooks(aggregator: NoticeAggregator) -> tuple[Callable[[str], bool], Callable[..., list[Notice]]]:
        folds, kept = stop_hooks(aggregator)  # the filter the detector calls a packet at a time (C's, bound)
        return folds, lambda notices: sizes.append(len(notices)) or kept(notices)

    monkeypatch.setattr(NoticeAggregator, "stop_hooks", counted_hooks)
    logs = []
    for chunk in (flows.FLUSH_CHUNK, 10**9):  # the sweep in chunks; at once, as before
        monkeypatch.setattr(flows, "FLUSH_CHUNK", chunk)
        cfg = Config()
        cfg.output.log_dir = str(tmp_path / str(chunk))
        pipeline = Pipeline(cfg, [ListSink()])  # type: ignore[list-item]
        if sweep == "gap":
            replay_pipeline(pipeline, [str(path)])
        else:
            pipeline.detect(packets)
            sizes.clear()
            pipeline.advance(late.ts)
            assert not pipeline.detector.flow_count
            pipeline.finish()
        pipeline.close()
        written = pipeline.sinks[0].notices  # type: ignore[attr-defined]
        logs.append(notice_values(n.replace(evidence=str(bool(n.evidence))) for n in written))
        if chunk == flows.FLUSH_CHUNK:
            assert max(sizes) <= chunk, sizes
        else:
            assert max(sizes) >= 3 * flows.FLUSH_CHUNK, sizes
        sizes.clear()
    assert logs[0] == logs[1] and logs[0]


def lines_replayed(tmp_path: Path, packets: list[IcmpPacket], name: str) -> int:
    """The Python lines the pipeline (evidence on) runs replaying `packets` written as an IPv4 capture (each as the
    decoder gives it: type, code, identifier and sequence number, 0 where a message has none, payload)."""
    path = tmp_path / f"{name}.pcap"
    craft.write_pcap(path, [(p.ts, craft.ether(craft.icmp4(addr_text(p.src), addr_text(p.dst), p.icmp_type,
                                                            p.icmp_code, max(p.ident, 0), max(p.seq, 0), p.payload)))
                            for p in packets])
    cfg = Config()
    cfg.output.log_dir = str(tmp_path / name)
    pipeline = Pipeline(cfg, [ListSink()])  # type: ignore[list-item]
    lines = lines_run(lambda: replay_pipeline(pipeline, [str(path)]))
    pipeline.close()
    return lines


def to_many(count: int, sizes: tuple[int, int] = (16, 64), seed: int = 12, sources: int = 1,
            targets: int = 0) -> list[IcmpPacket]:
    """Novel requests (random bytes, `sizes` long) from `sources` hosts, each to a host it has not sent to before
    (`targets` 0) or to one of `targets` hosts at random (a mesh: a pair seen again now and then), 1 ms apart."""
    rng = random.Random(seed)
    packets = []
    for i in range(count):
        src = f"10.9.{rng.randrange(sources) // 250}.{rng.randrange(sources) % 250 + 1}" if sources > 1 else "10.9.0.1"
        peer = rng.randrange(targets) if targets else i
        packets.append(corpus.echo(T0 + i * 1e-3, src, f"100.70.{peer // 250}.{peer % 250 + 1}", True,
                                   rng.randrange(1, 0xFFFF), 1, rng.randbytes(rng.randint(*sizes))))
    return packets


@needs_c
@pytest.mark.parametrize("shape", ["one to many", "one to many, long", "mesh", "mesh, long"])
def test_a_senders_first_request_to_another_peer_takes_the_c_path_where_no_field_can_explain_it(shape: str) -> None:
    """A sender whose last payload went to another peer: Detector._novelty compares a new flow's first payload with
    that flow's last, as counters or clocks (_as_fields), only where their rests and lengths are equal and they
    differ in at most 3 * MAX_FIELD_BYTES places. Where that is ruled out before anything changes (no such flow
    left, a length or rest of its own, more places changed), the C path makes the flow: a host sending new data to
    host after host, or a mesh of hosts doing so. The same notices and state as the reference's after every packet;
    the few requests whose first bytes may be fields (equal lengths, at most 24 bytes) go to Python."""
    sizes = (16, 64) if "long" not in shape else (65, 600)
    packets = to_many(600, sizes) if "mesh" not in shape else to_many(600, sizes, sources=300, targets=300)
    counting = run_both(packets)
    assert counting.declined <= 30, vars(counting)
    rest = random.Random(5).randbytes(60)  # not zeros: a counter then zeros is BusyBox's template
    fields = [corpus.echo(T0 + i * 1e-3, "10.9.0.1", f"100.70.0.{i + 1}", True, 7, 1, b"%04d" % i + rest)
              for i in range(40)]
    counting = run_both(fields)  # a counter in the first bytes, the rest as the last peer's
    assert counting.declined >= 35, vars(counting)


@needs_c
@pytest.mark.parametrize(("changed", "taken"), [(24, "declined"), (25, "novel")])
def test_a_first_request_that_may_be_fields_against_the_last_peers_is_the_python_detectors(changed: int,
                                                                                            taken: str) -> None:
    """A sender's first payload to a new peer, against its last one to another peer (the same rest and length):
    _as_fields reads at most 3 * MAX_FIELD_BYTES changed places as counters or clocks, so such a request is the
    Python detector's; one place more, the C path makes the flow."""
    last = random.Random(22).randbytes(200)
    first = bytes(b ^ 0x5A if i < changed else b for i, b in enumerate(last))
    packets = [corpus.echo(T0, "10.0.0.1", "10.0.0.2", True, 7, 1, last),
               corpus.echo(T0 + 0.1, "10.0.0.1", "10.0.0.3", True, 8, 1, first)]
    counting = run_both(packets)
    assert counting.answers[id(packets[-1])] == taken, counting.answers


@needs_c
def test_a_one_to_many_flood_runs_under_a_few_python_lines_a_packet(tmp_path: Path) -> None:
    """Replayed through the pipeline (evidence on), a host sending new bytes to a new peer each time runs in C but
    for the notices it raises and the few requests that may be fields: what 3,000 more of its packets add is under
    three Python lines a packet (the Python detector's: ~300)."""
    more = (lines_replayed(tmp_path, to_many(6_000, seed=13), "6000")
            - lines_replayed(tmp_path, to_many(3_000, seed=13), "3000"))
    assert more < 9_000, more


def header_flood(count: int, header: str, per_source: int = 4, seed: int = 14, size: int = 300) -> list[IcmpPacket]:
    """A novel-payload flood from spoofed sources, `per_source` requests of random bytes each, whose identifier and
    sequence number are not a ping's: `header` "zero" (scapy's ICMP() default: identifier and sequence number 0
    every time), "random" (both drawn afresh), "ident" (a new identifier each, the sequence number 1), "seq" (one
    identifier, the sequence number jumping), "sizes" (the random header and a new size each time)."""
    rng = random.Random(seed)
    packets = []
    for i in range(count):
        source = i // per_source
        ident, seq = {"zero": (0, 0), "ident": (i % per_source + 1, 1), "seq": (7, rng.randrange(0x10000))}.get(
            header, (rng.randrange(0x10000), rng.randrange(0x10000)))
        payload = rng.randbytes(rng.randint(20, 1400) if header == "sizes" else size)
        packets.append(corpus.echo(T0 + i * 5e-4, f"100.66.{source // 250}.{source % 250 + 1}", "10.1.0.81", True,
                                   ident, seq, payload))
    return packets


@needs_c
@pytest.mark.parametrize("header", ["zero", "random", "ident", "seq", "sizes"])
def test_a_novel_request_whose_header_is_not_a_pings_takes_the_c_path(header: str) -> None:
    """A request with novel bytes whose identifier changed, or whose sequence number is out of step, or both with its
    size: what its header carried is worked out as capacity.request_header does (the runs it remembers, the run and
    parameter budgets: _fastflows.request_header) and charged in C (Detector._header, _charge), then its payload is
    taken as any novel request's. Each flow's requests after its first take the C path; the notices and state are
    the reference's after every packet."""
    packets = header_flood(400, header)
    counting = run_both(packets)
    assert counting.declined <= 4, vars(counting)


def channels_state(state: capacity.FlowChannels) -> tuple[object, ...]:
    return tuple(getattr(state, f.name) for f in dataclasses.fields(state))


@needs_c
@settings(max_examples=examples(3000), deadline=None)
@given(calls=st.lists(st.tuples(st.sampled_from([0, 1, 2, 7, 8, 0x100, 0x7FFF, 0xFFFF]),  # identifier
                                st.integers(0, 0xFFFF), st.sampled_from([0, 8, 56, 57, 100, 1400]),  # seq, size
                                st.sampled_from([0.0, 0.001, 1.0, 4.9, 5.0, 60.0, -1.0])),  # seconds since the last
                      min_size=1, max_size=40),
       runs=st.integers(0, 20), stride=st.sampled_from([1, 1, 2, -1, 37]))
def test_request_header_in_c_is_the_references(calls: list[tuple[int, int, int, float]], runs: int,
                                               stride: int) -> None:
    """_fastflows.request_header against capacity.request_header, call after call on two copies of one flow's
    capacity state: the same charges (channel, bits: every float equal) and answer, and the same state after each
    (its size before the last, stride, both budgets' dues, the runs it remembers in their order, past
    RUNS_REMEMBERED); runs side by side resumed, budgets spent and refilled, pauses past RUN_PAUSE."""
    rng = random.Random(runs)
    start = {"runs": {rng.randrange(0x10000): (rng.randrange(0x10000), rng.choice([8, 56, 100]),
                                               T0 - rng.choice([0.0, 1.0, 4.9, 5.0, 300.0])) for _ in range(runs)}
             or None, "stride": stride}
    reference, fast = capacity.FlowChannels(**start), capacity.FlowChannels(**start)  # type: ignore[arg-type]
    if start["runs"] is not None:
        fast.runs = dict(start["runs"])  # type: ignore[arg-type]
    now, last = T0, (7, 1, 56)
    for ident, seq, size, gap in calls:
        now += max(gap, 0.0)
        want = capacity.request_header(reference, last, ident, seq, size, now, gap)
        got = standard._fastflows.request_header(fast, last, ident, seq, size, now, gap)
        assert got == want and [type(bits) for _, bits in got[0]] == [float] * len(want[0]), (got, want)
        assert channels_state(fast) == channels_state(reference)
        assert list((fast.runs or {}).items()) == list((reference.runs or {}).items())
        last = (ident, seq, size)


@needs_c
@pytest.mark.parametrize("gap", [0.0, capacity.RUN_REFILL])
def test_request_header_in_c_spends_a_budget_to_its_last_token(gap: float) -> None:
    """New runs back to back (at one instant, or one a refill apart): the run budget's last free token (its due
    exactly (RUN_BUDGET - 1) * RUN_REFILL ahead) and the first charged run after it are the reference's; so are the
    parameter budget's, each new run also a new size."""
    reference, fast = capacity.FlowChannels(), capacity.FlowChannels()
    last, answers = (1, 1, 56), []
    for i in range(int(capacity.RUN_BUDGET) + 3):
        now = T0 + i * gap
        call = (last, 100 + i, 1, 60 + i, now, gap)
        want = capacity.request_header(reference, *call)
        assert standard._fastflows.request_header(fast, *call) == want
        assert channels_state(fast) == channels_state(reference)
        answers.append(want[1])
        last = (100 + i, 1, 60 + i)
    assert True in answers and (gap or False in answers), answers


@needs_c
def test_request_header_in_c_refuses_what_is_not_a_flows_state() -> None:
    """Its arguments checked: a FlowChannels, the last (identifier, sequence number, size) as ints, ints and floats;
    a state whose fields are not the reference's types is refused, not charged."""
    request_header = standard._fastflows.request_header
    for args in [(object(), (7, 1, 56), 7, 2, 56, T0, 1.0), (capacity.FlowChannels(), (7, 1), 7, 2, 56, T0, 1.0),
                 (capacity.FlowChannels(), (7, 1, "56"), 7, 2, 56, T0, 1.0),
                 (capacity.FlowChannels(stride="1"), (7, 1, 56), 7, 2, 56, T0, 1.0),  # type: ignore[arg-type]
                 (capacity.FlowChannels(run_due=0), (7, 1, 56), 8, 2, 56, T0, 1.0),
                 (capacity.FlowChannels(runs=[]), (7, 1, 56), 8, 2, 56, T0, 1.0)]:  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            request_header(*args)


@needs_c
@pytest.mark.parametrize("size", [40, 300])
def test_a_flow_past_its_run_budget_is_charged_its_new_runs_in_c(size: int) -> None:
    """One pair, a new identifier on every request (past RUN_BUDGET a new run costs its identifier's bits, and a new
    size its length's), sizes alternating and new: the charges, the carried bits, the runs remembered
    (RUNS_REMEMBERED, one resumed now and then) and the hosts' memories are the reference's, packet by packet."""
    rng = random.Random(size)
    idents = [rng.randrange(0x10000) for _ in range(20)]
    packets = []
    for i in range(120):
        ident = idents[i % 20] if i % 7 == 3 else rng.randrange(0x10000)
        length = size if i % 3 else size + rng.randrange(1, 9)
        packets.append(corpus.echo(T0 + i * 0.05, "10.0.0.1", "10.0.0.2", True, ident, rng.randrange(3),
                                   rng.randbytes(length)))
    counting = run_both(packets, dataclasses.replace(DetectionConfig(), novel_bytes_threshold=100_000))
    assert counting.declined <= 2, vars(counting)


@needs_c
@settings(max_examples=examples(300), deadline=None)
@given(steps=st.lists(st.tuples(st.sampled_from([0, 1, 2, 7, 0x7FFF]), st.integers(-3, 0x10000),
                                st.sampled_from([0, 1, 5, 64, 65, 300]), st.sampled_from([0.0, 0.01, 1.0, 6.0, -0.2]),
                                st.sampled_from(["new", "same", "head", "tail"])), min_size=1, max_size=40),
       threshold=st.sampled_from([50, 256, 100_000]))
def test_both_agree_on_generated_headers(steps: list[tuple[int, int, int, float, str]], threshold: int) -> None:
    """One pair's requests with identifiers, sequence steps, sizes, gaps (a pause past RUN_PAUSE, time going back)
    and payloads (new, the same, changed in the sketch's head or past it) drawn at random."""
    ts, seq, payload, packets = T0, 1, b"", []
    rng = random.Random(len(steps))
    for ident, step, size, gap, change in steps:
        ts += gap
        seq = (seq + step) & 0xFFFF
        payload = (rng.randbytes(size) if change == "new" or len(payload) != size
                   else payload if change == "same" else (b"!" + payload[1:]) if change == "head"
                   else payload[:-1] + b"!")
        packets.append(corpus.echo(ts, "10.0.0.1", "10.0.0.2", True, ident, seq, payload))
    run_both(packets, dataclasses.replace(DetectionConfig(), novel_bytes_threshold=threshold))


@needs_c
def test_a_flood_of_requests_with_random_headers_runs_under_a_few_python_lines_a_packet(tmp_path: Path) -> None:
    """Replayed through the pipeline (evidence on), a novel-payload flood whose identifiers and sequence numbers are
    drawn at random runs in C (capacity.request_header's charges too: _fastflows.request_header) but for the notices
    it raises: what 2,000 more of its packets add is under two Python lines a packet (the Python detector's: ~140;
    with request_header called from C, ~14)."""
    more = (lines_replayed(tmp_path, header_flood(4_000, "random", seed=15), "4000")
            - lines_replayed(tmp_path, header_flood(2_000, "random", seed=15), "2000"))
    assert more < 4_000, more


def unpaired_flood(count: int, per_source: int = 1, seed: int = 16, sizes: tuple[int, int] = (16, 600),
                   target: str = "10.1.0.81") -> list[IcmpPacket]:
    """Echo replies with random bytes from spoofed sources to `target`, answering nothing (a tunnel's replies seen
    without their requests, or a flood): `per_source` from each, in step (one identifier, the sequence one up, the
    same size: a header that changes is charged, in Python), 1 ms apart."""
    rng = random.Random(seed)
    idents = [rng.randrange(0x10000) for _ in range(count // per_source + 1)]
    sizes_of = [rng.randint(*sizes) for _ in range(count // per_source + 1)]
    return [corpus.echo(T0 + i * 1e-3, f"100.67.{i // per_source // 250}.{i // per_source % 250 + 1}", target, False,
                        idents[i // per_source], i % per_source + 1, rng.randbytes(sizes_of[i // per_source]))
            for i in range(count)]


@needs_c
@pytest.mark.parametrize("per_source", [1, 4])
def test_an_unpaired_replys_novel_bytes_take_the_c_path(per_source: int) -> None:
    """An echo reply that answers no pending request, with a payload no template explains: Detector._on_reply, its
    flow made (or found), the reply counted unpaired, its bytes novel against the flow's last payload (none for a
    new flow), the tool tracker, the novel bytes and their share of the hosts' memories, then the flow's evaluation
    as for a request's. The same notices and state as the reference's after every packet."""
    packets = unpaired_flood(400, per_source)
    counting = run_both(packets)
    assert counting.declined <= 4, vars(counting)
    # the hosts' memories raise ExfilSpread for the target: evaluated or handed out, as a request's
    counting = run_both(unpaired_flood(200, per_source, sizes=(300, 600)),
                        dataclasses.replace(DetectionConfig(), novel_bytes_threshold=100_000, spread_min_peers=3))
    assert counting.declined <= 4 and counting.handed_out + counting.evaluated > 0, vars(counting)


@needs_c
def test_an_unpaired_reply_goes_to_python_where_the_c_path_cannot_tell_it_alike() -> None:
    """Where an unpaired reply needs what only the Python detector does, the C path leaves it: its note on
    (UnpairedEchoReply), the pairing by the last request (reply_pairing last_request), an allowlist, a pair with a
    memory, an empty payload. A template's payload (a ping whose request was not seen) and a payload the flow's last
    repeats are taken (test_replies_seen_without_their_requests_take_the_c_path). A reply the tool tracker answers
    for is taken, the answer finished by the tracker's own finish (asked
    from C) and what is due raised in C; each against the reference, state and notices after every packet."""
    random_bytes = random.Random(17).randbytes
    reply = corpus.echo(T0, "10.0.0.2", "10.0.0.1", False, 7, 1, random_bytes(300))
    cases = {
        "note on": ([reply], dataclasses.replace(DetectionConfig(), notices=NoticeSwitches(unpaired_echo_reply=True)),
                    None),
        "last request": ([reply], dataclasses.replace(DetectionConfig(), reply_pairing="last_request"), None),
        "allowlist": ([reply], None, AllowlistConfig(hosts=(ipaddress.ip_network("192.0.2.0/24"),))),
        "pair remembered": ([reply, corpus.echo(T0 + 400, "10.0.0.2", "10.0.0.1", False, 8, 1, random_bytes(300))],
                            None, None),
        "empty": ([corpus.echo(T0, "10.0.0.2", "10.0.0.1", False, 7, 1, b"")], None, None),
    }
    for name, (packets, detection, allowlist) in cases.items():
        counting = run_both(packets, detection, allowlist)
        assert counting.answers[id(packets[-1])] == "declined", (name, counting.answers)
    taken = {"template": [corpus.echo(T0, "10.0.0.2", "10.0.0.1", False, 7, 1, benign_corpus.iputils_payload(56, T0))],
             "repeated": [reply, dataclasses.replace(reply, ts=T0 + 0.1, seq=2)]}
    for name, packets in taken.items():
        assert run_both(packets).answers[id(packets[-1])] == "handled", name
    for session in (corpus.ptunnel_session(), corpus.hans_session(), corpus.icmpdoor_session()):
        replies = [p for p in session if p.icmp_type == 0]
        counting = run_both(replies)
        assert counting.finished == 0 and counting.handed_out >= 1 and counting.declined <= len(replies) // 2, \
            vars(counting)


@needs_c
def test_an_unpaired_reply_flood_runs_under_a_few_python_lines_a_packet(tmp_path: Path) -> None:
    """Replayed through the pipeline (evidence on), echo replies with random bytes from spoofed sources run in C but
    for the notices they raise: what 3,000 more of them add is under two Python lines a packet (the Python
    detector's: ~200)."""
    more = (lines_replayed(tmp_path, unpaired_flood(6_000, seed=18), "6000")
            - lines_replayed(tmp_path, unpaired_flood(3_000, seed=18), "3000"))
    assert more < 6_000, more


ROUTER_ALERT = b"\x94\x04\x00\x00"  # an IPv4 Router Alert, which capacity.option_bytes charges nothing for
HOP_OPTIONS = b"\x1e\x04\x01\x02\x03\x04"  # an IPv6 hop-by-hop option of an experimental type, as decoded


@needs_c
@pytest.mark.parametrize("options", ["record route", "router alert", "new each time", "ipv6"])
def test_a_novel_request_with_ip_options_takes_the_c_path(options: str) -> None:
    """Novel requests carrying IP options (a flood from spoofed sources, four each, and one flow's next chunks):
    Detector._options charges the options' bytes once while they repeat (capacity.options_bits, none for a Router
    Alert), after the header's charges and before the payload's, in C; the notices and state are the reference's
    after every packet."""
    rng = random.Random(19)
    packets = []
    for i in range(240):
        source = i // 4 if i < 200 else 999  # then one flow's chunks
        option = {"record route": RR, "router alert": ROUTER_ALERT, "ipv6": HOP_OPTIONS,
                  "new each time": b"\x07\x07\x04" + rng.randbytes(4)}[options]
        pkt = corpus.echo(T0 + i * 1e-3, f"100.68.{source // 250}.{source % 250 + 1}", "10.1.0.81", True,
                          rng.randrange(0x10000) if i % 3 else 5, i % 4 + 1, rng.randbytes(rng.randint(16, 400)))
        if options == "ipv6":
            pkt = dataclasses.replace(pkt, src=V6[0][:12] + pkt.src, dst=V6[1], ipv6=True, icmp_type=128)
        packets.append(dataclasses.replace(pkt, options=option))
    counting = run_both(packets)
    assert counting.declined <= 6, vars(counting)


def other_flood(count: int, kind: tuple[int, int], ipv6: bool = False, per_source: int = 4, seed: int = 20,
                size: int = 300) -> list[IcmpPacket]:
    """Non-echo messages of type and code `kind` carrying random bytes from spoofed sources, `per_source` each."""
    rng = random.Random(seed)
    packets = []
    for i in range(count):
        source = i // per_source
        pkt = corpus.echo(T0 + i * 1e-3, f"100.69.{source // 250}.{source % 250 + 1}", "10.1.0.81", True, -1, -1,
                          rng.randbytes(size))
        if ipv6:
            pkt = dataclasses.replace(pkt, src=V6[0][:12] + pkt.src, dst=V6[1], ipv6=True)
        packets.append(dataclasses.replace(pkt, icmp_type=kind[0], icmp_code=kind[1]))
    return packets


@needs_c
@pytest.mark.parametrize("kind", [(3, 1), (11, 0), (13, 0), (15, 0), (42, 0), (200, 0), (1, 4, "v6"), (139, 0, "v6"),
                                  (200, 0, "v6"), (13, 0, "v6")])
def test_a_non_echo_messages_unexplained_bytes_take_the_c_path(kind: tuple) -> None:
    """A non-echo message whose bytes nonecho.unexplained_bytes does not explain (errors quoting random bytes,
    timestamps, information requests, types nobody defined; ICMPv6's too), from spoofed sources, four each:
    Detector._on_other in C (unexplained_bytes asked, as the reference asks it; the flow made or touched, its bytes,
    its non-echo novel bytes and first reason, their share of the hosts' memories), its evaluation left as a
    request's (NonEchoPayload is Python's to raise). The notices and state are the reference's after every packet."""
    packets = other_flood(400, kind[:2], ipv6=len(kind) > 2)
    counting = run_both(packets)
    assert counting.declined == 0 and counting.handed_out + counting.evaluated + counting.novel == 400, \
        vars(counting)


@needs_c
@pytest.mark.parametrize("pairing", ["matched", "last_request"])
def test_an_echo_request_with_a_code_takes_the_c_path_as_a_non_echo_message(pairing: str) -> None:
    """An echo request with a code other than 0 (RFC 792 and 4443 define 0 only: the code is data), four from each
    spoofed source, some answered with the code copied (Linux's icmp_echo): Detector._on_other remembers it for its
    reply (matched pairing, its key the sequence number and code: echo_key) and asks unexplained_bytes, which judges
    the code and the payload; the C path does the same, and leaves the coded replies to Python. nmap's IE probe (code
    9, 120 zero bytes) is explained, and so is a ping's own payload (iputils', its clock the capture's) but for the
    code. The notices and state are the reference's after every packet."""
    rng = random.Random(23)
    packets = []
    for i in range(200):
        source = f"100.71.{i // 4 // 250}.{i // 4 % 250 + 1}"
        code, payload = (9, bytes(120)) if i % 10 == 7 else (rng.randrange(1, 256), iputils(T0 + i * 1e-3)) \
            if i % 10 == 3 else (rng.randrange(1, 256), rng.randbytes(rng.randint(0, 300)))
        request = dataclasses.replace(corpus.echo(T0 + i * 1e-3, source, "10.1.0.81", True, 7, i % 4 + 1, payload),
                                      icmp_code=code)
        packets.append(request)
        if i % 3 == 0:
            packets.append(dataclasses.replace(corpus.kernel_reply(request), ts=request.ts + 5e-4))
    counting = run_both(packets, dataclasses.replace(DetectionConfig(), reply_pairing=pairing))
    requests = [p for p in packets if p.icmp_type == 8]
    assert all(counting.answers[id(p)] != "declined" for p in requests), counting.answers


@needs_c
def test_a_non_echo_flood_runs_under_a_few_python_lines_a_packet(tmp_path: Path) -> None:
    """Replayed through the pipeline (evidence on), host unreachables quoting random bytes from spoofed sources, four
    each, run in C but for nonecho.unexplained_bytes (~17 lines): what 3,000 more add is under 30 Python lines a packet
    (the Python detector's: ~137; ~40 while the flows' evaluations raising NonEchoPayload were Python's)."""
    more = (lines_replayed(tmp_path, other_flood(6_000, (3, 1), seed=21), "6000")
            - lines_replayed(tmp_path, other_flood(3_000, (3, 1), seed=21), "3000"))
    assert more < 90_000, more


def tool_flood(count: int, seq: int = 1, per_source: int = 1, ipv6: bool = False, seed: int = 24) -> list[IcmpPacket]:
    """Echo requests each carrying a whole IPv4 packet (a raw-IP tunnel's layout: icmptx's with sequence number 0,
    icmptunnel's otherwise; an inner ICMP, UDP or TCP packet of random bytes) from spoofed sources, `per_source` each
    (over IPv6: ICMPv6 echo requests)."""
    rng = random.Random(seed)
    packets = []
    for i in range(count):
        source = i // per_source
        proto = (1, 17, 6)[i % 3]
        inner = craft.ipv4(f"192.168.{i % 200}.{i % 250 + 1}", "198.51.100.7", proto,
                           rng.randbytes(rng.randint(8, 200)), ip_id=rng.randrange(0x10000))
        pkt = corpus.echo(T0 + i * 1e-3, f"100.72.{source // 250}.{source % 250 + 1}", "10.1.0.81", True, 5,
                          seq + i % per_source, inner)
        if ipv6:
            pkt = dataclasses.replace(pkt, src=V6[0][:12] + pkt.src, dst=V6[1], ipv6=True, icmp_type=128)
        packets.append(pkt)
    return packets


@needs_c
@pytest.mark.parametrize("shape", ["icmptx", "icmptunnel", "four each", "ipv6"])
def test_a_tools_request_is_finished_in_c(shape: str) -> None:
    """A request the tool tracker answers for (a raw-IP tunnel's packet from a spoofed source: each recognised at
    its first packet): the tracker's answer finished by its own finish (Python's, asked from C as
    FastToolTracker.observe asks it), the flow's tool and evidence set, then the rest of the request in C
    (remembered for its reply, its novel bytes) and the flow's evaluation, whose Tunnel and DataExfil are raised in
    C. The notices and state are the reference's after every packet; no evaluation is left to Python."""
    packets = tool_flood(200, seq=0 if shape == "icmptx" else 1, per_source=4 if shape == "four each" else 1,
                         ipv6=shape == "ipv6")
    counting = run_both(packets)
    assert counting.finished == 0 and counting.evaluated == 0 and counting.declined == 0, vars(counting)


@needs_c
def test_a_tool_found_on_a_request_with_nothing_novel_has_its_flow_evaluated_in_c() -> None:
    """Detector._request_done evaluates the flow where the tool tracker found a tool, even on a request that added no
    novel bytes (a payload its sender sent lately to another peer: SpreadMemory.seen): the C path too, the Tunnel
    raised there; with Tunnel off, nothing is due and the request is handled, not novel (no bytes for the evidence
    recorder to weigh). The notices and state are the reference's after every packet."""
    rng = random.Random(28)
    inner = craft.ipv4("192.168.5.5", "198.51.100.7", 17, rng.randbytes(120))
    packets = [corpus.echo(T0, "10.4.0.1", "10.4.0.3", True, 5, 1, inner),  # the tunnel's packet, to another peer
               corpus.echo(T0 + 0.1, "10.4.0.1", "10.4.0.2", True, 5, 1, rng.randbytes(120)),
               corpus.echo(T0 + 0.2, "10.4.0.1", "10.4.0.2", True, 5, 2, inner)]  # sent lately: nothing novel
    reference = Detector(DetectionConfig(), AllowlistConfig(), accelerated=False)
    notes = [[n.note for n in reference.process(p)] for p in packets]
    assert "ICMP::ICMP_Tunnel" in notes[2] and reference.last_novel == 0, notes
    counting = run_both(packets)
    assert counting.answers[id(packets[2])] == "handed out", counting.answers
    quiet = dataclasses.replace(DetectionConfig(), notices=NoticeSwitches(tunnel=False))
    counting = run_both(packets, quiet)
    assert counting.answers[id(packets[2])] == "handled", counting.answers


@needs_c
@pytest.mark.parametrize("case", ["non-echo", "timestamps", "changed requests", "non-echo and exfil"])
def test_a_flows_evaluation_raises_every_note_due_in_c(case: str) -> None:
    """Detector._evaluate in C wherever it raises what it finds due without reading the pair's memory (SlowExfil
    alone reads it): each note in _evaluate's order (DataExfil, AsymPayload, AsymPayloadFlow, Tunnel, NonEchoPayload),
    its bit, the pair's reported_until where it reports the pair, the notice. Non-echo floods (NonEchoPayload), a flow
    whose changed requests pass changed_requests_threshold (AsymPayloadFlow after DataExfil), a flow of non-echo
    bytes and echo payloads (both notes at once). The notices and state are the reference's after every packet."""
    if case == "non-echo":
        packets = other_flood(200, (3, 1))
    elif case == "timestamps":
        packets = other_flood(200, (13, 0), per_source=1)
    elif case == "changed requests":
        rng = random.Random(25)
        packets = [corpus.echo(T0 + i * 0.01, "10.3.0.1", "10.3.0.2", True, 7, i + 1, rng.randbytes(40))
                   for i in range(30)]
    else:
        rng = random.Random(26)
        packets = [dataclasses.replace(pkt, icmp_type=3, icmp_code=1) if i % 2 else pkt
                   for i, pkt in enumerate(corpus.echo(T0 + i * 0.01, "10.3.0.1", "10.3.0.2", True, 7, i + 1,
                                                       rng.randbytes(100)) for i in range(12))]
    counting = run_both(packets)
    assert counting.evaluated == 0, vars(counting)


@needs_c
def test_a_tool_flood_runs_under_a_few_python_lines_a_packet(tmp_path: Path) -> None:
    """Replayed through the pipeline (evidence on), raw-IP tunnels' packets from spoofed sources, each recognised at
    once, run in C but for the tool tracker's finish (its recognition, Python's): what 3,000 more add is under 40
    Python lines a packet (the Python detector's: ~190)."""
    more = (lines_replayed(tmp_path, tool_flood(6_000, seed=27), "6000")
            - lines_replayed(tmp_path, tool_flood(3_000, seed=27), "3000"))
    assert more < 120_000, more


MS_PER_DAY = 86_400_000
PATH = Detector(DetectionConfig(), AllowlistConfig())._fast if standard._fastflows is not None else None


def day_ms(ts: float) -> int:
    """The capture time `ts` as milliseconds since midnight UT, as nonecho._time_of_day reads it."""
    return int(ts % 86_400 * 1000)


@st.composite
def timestamp_bodies(draw: st.DrawFn) -> tuple[bytes, float]:
    """A timestamp message's payload and the capture time: identifier and sequence number, then up to five 32-bit
    fields each 0, the capture's time of day (a few seconds off, either byte order), RFC 792's high-bit value,
    random, the field before repeated, or a second on from it; a few bytes cut or added."""
    ts = draw(st.sampled_from([1_800_000_000.0, 1_800_000_000.5, 1_799_999_999.9996, 1_800_043_199.25,
                               1_800_000_000.0 + draw(st.floats(0, 86_400, allow_nan=False))]))
    fields: list[int] = []
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["zero", "now", "swapped", "high", "random", "again", "second on", "late"]))
        now = (day_ms(ts) + draw(st.integers(-400_000, 400_000))) % MS_PER_DAY
        value = {"zero": 0, "now": now, "swapped": int.from_bytes(now.to_bytes(4, "little"), "big"),
                 "high": 0x8000_0000 | now, "random": draw(st.integers(0, 0xFFFF_FFFF)),
                 "again": fields[-1] if fields else 0,
                 "second on": (fields[-1] + draw(st.integers(-2, 1002))) % 2**32 if fields else now,
                 "late": MS_PER_DAY + draw(st.integers(0, 1000))}[kind]
        fields.append(value)
    payload = bytes(draw(st.binary(min_size=4, max_size=4))) + b"".join(v.to_bytes(4, "big") for v in fields)
    cut = draw(st.integers(-3, 3))
    payload = payload[:len(payload) + cut] if cut < 0 else payload + bytes(draw(st.binary(min_size=cut,
                                                                                         max_size=cut)))
    return payload, ts


@needs_c
@settings(max_examples=examples(3000), deadline=None)
@given(body=timestamp_bodies(), request=st.booleans(), tolerance=st.sampled_from([0.0, 0.5, 2.0, 300.0, 86_400.0]))
def test_a_timestamp_messages_bytes_are_counted_in_c_as_the_reference_counts_them(
        body: tuple[bytes, float], request: bool, tolerance: float) -> None:
    """FastPath.timestamp_bytes (other_message's judge of an IPv4 timestamp message) against
    nonecho.unexplained_bytes, its reference (_v4's fixed body, _timestamp_fields, _time_of_day, _replier_time,
    _soon_after): the fields' unexplained bytes and those beyond the body, on generated bodies around every rule's
    edge (times of day at the tolerance's edge and across midnight, byte orders, repeats, a second on, bodies cut)."""
    payload, ts = body
    pkt = IcmpPacket(ts, corpus.packed("10.0.0.1"), corpus.packed("10.0.0.2"), False, 13 if request else 14, 0, -1,
                     -1, payload, 42 + len(payload))
    fields, beyond = PATH.timestamp_bytes(payload, request, ts, tolerance)
    assert beyond == max(0, len(payload) - 16)
    assert (fields + beyond) == nonecho.unexplained_bytes(pkt, tolerance)[0] if payload else fields + beyond == 0


def timestamp_flood(count: int, seed: int = 29, per_source: int = 4) -> list[IcmpPacket]:
    """Timestamp messages from spoofed sources, `per_source` each: nmap -PP's requests (originate 0), hping3
    --icmp-ts's (the time of day), replies as Linux and routers with other clocks send them, and random bodies,
    some with bytes beyond the body."""
    rng = random.Random(seed)
    packets = []
    for i in range(count):
        source = i // per_source
        ts = T0 + i * 1e-3
        now = day_ms(ts)
        kind = i % 5
        fields = [(0, 0, 0), (now, 0, 0), (now, now + 3, now + 3), (now, 0x8000_1234, 0x8000_1234),
                  tuple(rng.getrandbits(32) for _ in range(3))][kind]
        payload = rng.randbytes(4) + b"".join(v.to_bytes(4, "big") for v in fields)
        if i % 7 == 0:
            payload += rng.randbytes(rng.randint(1, 40))
        packets.append(IcmpPacket(ts, corpus.packed(f"100.73.{source // 250}.{source % 250 + 1}"),
                                  corpus.packed("10.1.0.81"), False, 14 if kind in (2, 3) else 13, 0, -1, -1, payload,
                                  42 + len(payload)))
    return packets


@needs_c
def test_a_timestamp_flood_is_judged_in_c() -> None:
    """Timestamp messages of every kind a scanner or a replier sends, and random ones, from spoofed sources:
    other_message judges them itself (timestamp_bytes; nonecho.unexplained_bytes is not asked), the flows and their
    non-echo bytes and reasons (the body's fields, or the bytes beyond it) the reference's after every packet."""
    packets = timestamp_flood(400)
    counting = run_both(packets)
    assert counting.declined == 0, vars(counting)


@needs_c
def test_timestamp_and_coded_echo_floods_run_under_a_few_python_lines_a_packet(tmp_path: Path) -> None:
    """Replayed through the pipeline (evidence on), timestamp requests with random bodies and echo requests with a
    code from spoofed sources, four each, are judged in C (the reference's nonecho.unexplained_bytes not asked; a
    coded request's payload through explain only where a template's first tests pass): what 3,000 more add is under
    10 Python lines a packet (the Python detector's: ~178 and ~160; 61 and ~50 while unexplained_bytes was asked)."""
    timestamps = (lines_replayed(tmp_path, other_flood(6_000, (13, 0), seed=30), "t6000")
                  - lines_replayed(tmp_path, other_flood(3_000, (13, 0), seed=30), "t3000"))
    rng = random.Random(31)
    coded = [dataclasses.replace(corpus.echo(T0 + i * 1e-3, f"100.74.{i // 4 // 250}.{i // 4 % 250 + 1}", "10.1.0.81",
                                             True, 7, i % 4 + 1, rng.randbytes(rng.randint(16, 64))), icmp_code=1)
             for i in range(6_000)]
    codes = lines_replayed(tmp_path, coded, "c6000") - lines_replayed(tmp_path, coded[:3_000], "c3000")
    assert timestamps < 30_000 and codes < 30_000, (timestamps, codes)


@needs_c
def test_a_ping_with_no_payload_takes_the_c_path() -> None:
    """Empty echo requests (ping -s 0, keepalives): the tool tracker remembers each for icmpsh's reply and follows
    the flow in C, so the request does not come back to Python (the tracker's finish) once its flow is known."""
    requests = [corpus.echo(T0 + 0.05 * i, "10.0.0.1", "10.0.0.2", True, 7, i + 1, b"") for i in range(10)]
    counting = run_both(corpus.with_replies(requests))
    assert [counting.answers[id(p)] for p in requests[1:]] == ["handled"] * 9, counting.answers


@needs_c
@pytest.mark.parametrize("size", [64, 65, 100, 1400])
def test_a_payload_that_changes_only_at_its_end_goes_to_python(size: int) -> None:
    """The sketch's rest (past its first 64 bytes) is compared by hash, its length too: a last byte changed or a byte
    added is a changed payload, counted as novel by the Python detector."""
    payload = bytes(range(256)) * 6
    sent = [payload[:size], payload[:size], payload[:size - 1] + b"!", payload[:size - 1] + b"!",
            payload[:size - 1] + b"!!", payload[:size - 1] + b"!!"]
    requests = [corpus.echo(1e9 + 0.1 * i, "10.0.0.1", "10.0.0.2", True, 7, i + 1, p) for i, p in enumerate(sent)]
    counting = run_both(requests)
    # the first payload, BSD ping's fill from byte 0 (a template's), and its repeat taken; each changed payload (its
    # novel bytes: Python's, or taken by C up to the flow's evaluation), then its repeat
    assert fingerprints.explain(sent[0], requests[0].ts) is not None
    assert [counting.answers[id(r)] == "handled" for r in requests] == [True, True, False, True, False, True], \
        counting.answers


T0 = 1e9 + 0.25


def timed_ping(layout: str, count: int, size: int) -> list[IcmpPacket]:
    """iputils' or BSD ping's requests, one every 0.2 s, each carrying its send time (13 ms before capture)."""
    return [corpus.echo(T0 + 0.2 * i, "10.0.0.1", "10.0.0.2", True, 7, i + 1,
                        LAYOUTS[layout](T0 + 0.2 * i - 0.013, size)) for i in range(count)]


@needs_c
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("size", [24, 56, 64, 65, 1472])
def test_a_timed_pings_requests_take_the_c_path(layout: str, size: int) -> None:
    """iputils, BSD ping, pro-bing and BusyBox: each request's clock is new, its fill the default; the C path takes
    every request after the run's first two (the first makes the flow, the second sets the clock's offset and
    pro-bing's tracker or BusyBox's fill byte) and the replies."""
    counting = run_both(corpus.with_replies(timed_ping(layout, 12, size)))
    assert counting.handled >= 19, vars(counting)  # 10 requests and 11 replies, less those that cross a second


@needs_c
@pytest.mark.parametrize("layout", ["iputils", "bsd", "busybox", "cisco"])
@pytest.mark.parametrize("size", [15, 16, 17, 23])
def test_a_timed_ping_of_16_bytes_or_more_takes_the_c_path(layout: str, size: int) -> None:
    """iputils -s 16 sends its struct timeval alone; with 16 to 23 bytes no template explain tries first (check_icmp
    and pro-bing need 24) takes a timed layout, which the C path reads itself. Below 16, explain's _untimed tries
    patterns from byte 0 first: the C path asks explain (run_template), and takes a request as the run's next
    where explain explains it as the reference does."""
    requests = [dataclasses.replace(r, payload=r.payload[:size]) for r in timed_ping(layout, 4, max(size, 16))]
    counting = run_both(corpus.with_replies(requests))
    taken = [counting.answers[id(r)] == "handled" for r in requests[2:]]
    explained = [size >= 16 or fingerprints.explain(r.payload, r.ts) is not None for r in requests[2:]]
    assert taken == explained, counting.answers
    assert any(taken) != (size < 16 and layout == "iputils")  # 15 bytes of iputils' timeval: no template's


@needs_c
@pytest.mark.parametrize("layout", [*sorted(LAYOUTS), "repeated"])
def test_a_request_that_moves_the_clock_to_a_sweep_is_swept_then_taken_by_the_c_path(layout: str) -> None:
    """The C path leaves the sweep to Python: Detector._finish sweeps (another pair's idle exfiltration flow ends
    there, with its notices) and offers the packet again, which the C path then takes; the same notices and state
    as the reference's, which sweeps first in process()."""
    make = LAYOUTS.get(layout, lambda sent, size: POOL[1][:size])
    requests = [corpus.echo(T0 + 0.2 * i, "10.0.0.1", "10.0.0.2", True, 7, i + 1, make(T0 + 0.2 * i - 0.013, 56))
                for i in range(16)]
    exfil = [corpus.echo(T0 - 0.5 + 0.01 * i, HOSTS[0], HOSTS[2], True, 9, i, bytes([i]) * 64 + b"secret" * 40)
             for i in range(8)]
    packets = sorted([*corpus.with_replies(requests), *exfil], key=lambda p: p.ts)
    detection = dataclasses.replace(DetectionConfig(), idle_timeout=1.0)
    counting = run_both(packets, detection)
    crossing = [r for r in requests if int(r.ts) > int(r.ts - 0.2)]  # the requests that move the clock to a sweep
    assert len(crossing) == 3
    assert all(counting.answers[id(r)] == "handled" for r in crossing[1:]), counting.answers
    assert all(counting.answers[id(r)] == "handled" for r in requests[2:]), counting.answers


@needs_c
@pytest.mark.parametrize("usec", [0x00000100, 0x000F4200, 999_999, 1_000_000])
def test_a_bsd_ping_whose_microseconds_end_in_a_zero_byte_is_the_python_detectors(usec: int) -> None:
    """Byte 7 zero: explain tries the iputils layouts on it first; the C path's own reader leaves it, and asks explain
    (run_template), which finds BSD ping's layout after all; out-of-range microseconds no template explains."""
    requests = timed_ping("bsd", 6, 56)
    detection = dataclasses.replace(DetectionConfig(), clock_jitter=1.0)  # the sub-second part is the test's
    baseline = run_both(requests, detection)
    requests.append(corpus.echo(T0 + 1.2, "10.0.0.1", "10.0.0.2", True, 7, 7, bsd(T0 + 1.187, usec=usec)))
    counting = run_both(requests, detection)
    assert counting.handled == baseline.handled + (usec < 1_000_000), vars(counting)


@needs_c
def test_pro_bings_clock_is_its_nanoseconds_divided_as_python_divides_them() -> None:
    """fingerprints._pro_bing divides the int64 by 10**9 exactly rounded; a double's division of this value (past
    2**53) rounds differently in the last bit, which the flow's clock offset would keep."""
    ns = 1_000_000_001_437_000_096
    assert float(ns) / 1e9 != ns / 10**9
    requests = timed_ping("pro-bing", 6, 56)
    last = corpus.echo(T0 + 1.2, "10.0.0.1", "10.0.0.2", True, 7, 7, struct.pack(">q", ns) + pro_bing(0.0, 56)[8:])
    counting = run_both([*requests, last])
    assert counting.answers[id(last)] == "handled", counting.answers


@needs_c
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("size", [24, 100])
@pytest.mark.parametrize(("case", "sent", "fill", "ident", "jitter"), [
    ("the clock went back 3 s (clock_jitter 10 s)", -3.0, None, 7, 10.0),
    ("the offset jumped 3 s (clock_jitter 1 s)", +3.0, None, 7, 1.0),
    ("the clock is 400 s off (timestamp_tolerance 300 s)", +400.0, None, 7, 1000.0),
    ("a new identifier: a new run", 0.0, None, 8, 1.0),
    ("the first timed request of a run that sent a fixed payload so far", 0.0, "after-fixed", 7, 1.0),
    ("ping -p ab", 0.0, "pattern", 7, 1.0),
    ("one byte of data at the fill's end", 0.0, "data", 7, 1.0),
    ("one byte of data at the fill's start", 0.0, "data-start", 7, 1.0),
    ("microseconds out of range (pro-bing: a clock before 1970, BusyBox: a counter of 0, Cisco: its last byte 0)",
     0.0, "usec", 7, 1.0),
    ("pro-bing's tracker changed within the run (others: a byte of the clock)", 0.0, "tracker", 7, 1.0),
])
def test_a_timed_ping_whose_clock_or_fill_says_more_goes_to_python(
        layout: str, size: int, case: str, sent: float, fill: str | None, ident: int, jitter: float) -> None:
    """After a run the C path follows, one request that is not the layout's default with a clock its run
    explains (BusyBox's and Cisco's wrapping counters: two of the wall clocks' cases are their next request)."""
    make = LAYOUTS[layout]
    start = FILL_START[layout]
    requests = timed_ping(layout, 6, size)
    if fill == "after-fixed":  # the same header fields, a payload no template explains (no run's clock yet)
        requests = [dataclasses.replace(r, payload=(b"not-a-template:" * 100)[:size]) for r in requests]
    ts = T0 + 0.2 * 6
    payload = make(ts - 0.013 + sent, size)
    if fill == "pattern" and layout == "pro-bing":  # no -p: 0xab after the clock is no UUID
        payload = payload[:8] + b"\xab" * (size - 8)
    elif fill == "pattern":
        payload = make(ts - 0.013, size, b"\xab" * size)
    elif fill == "data":
        payload = payload[:-1] + b"!"
    elif fill == "data-start":
        payload = payload[:start] + b"!" + payload[start + 1 :]
    elif fill == "usec" and layout == "pro-bing":
        payload = struct.pack(">q", -1) + payload[8:]
    elif fill == "usec" and layout == "busybox":  # a counter of 0: Cisco's layout first
        payload = bytes(4) + payload[4:]
    elif fill == "usec" and layout == "cisco":  # the counter's last byte 0: the iputils layouts are tried first
        payload = payload[:7] + b"\0" + payload[8:]
    elif fill == "usec":
        usec = struct.pack("<Q", 1_000_000) if layout == "iputils" else struct.pack(">I", 1_000_001)
        payload = payload[: start // 2] + usec + payload[start:]
    elif fill == "tracker":
        payload = payload[:12] + bytes([payload[12] ^ 0x20]) + payload[13:]
    detection = dataclasses.replace(DetectionConfig(), clock_jitter=jitter)
    baseline = run_both(requests, detection)
    counting = run_both([*requests, corpus.echo(ts, "10.0.0.1", "10.0.0.2", True, ident, 7, payload)], detection)
    # BusyBox's and Cisco's counters wrap and count from boot: back 3 s or 400 s away, within clock_jitter, is the
    # reference's next request too (it charges and refuses nothing), and the C path's
    taken = layout not in WALL_CLOCKS and ("went back" in case or "400 s" in case)
    # BusyBox's counter of 0 makes its payload zeros (_untimed: zero-fill), Cisco's last counter byte 0 is still
    # Cisco's once the iputils layouts fail: another template, which the reference takes as the run's next as is
    taken = taken or (fill == "usec" and layout in ("busybox", "cisco"))
    # a new run (within the run budget: no charge) is started over as _consistent starts it (templated_request)
    taken = taken or ident != 7
    assert baseline.handled >= 4 and counting.handled == baseline.handled + taken, case
    # not taken as the run's next ping: Python's, or its novel bytes taken by C up to the flow's evaluation
    assert not_as_a_ping(counting) == not_as_a_ping(baseline) + (not taken), case


def busybox_run(counters: list[int], fill: int = 0, size: int = 56, step: float = 0.15) -> list[IcmpPacket]:
    """BusyBox ping's requests (identifier 7, one every `step` s: five within a second, no sweep) carrying
    `counters` and the -p byte `fill`."""
    return [corpus.echo(T0 + step * i, "10.0.0.1", "10.0.0.2", True, 7, i + 1,
                        struct.pack("<I", counter % 2**32) + bytes([fill]) * (size - 4))
            for i, counter in enumerate(counters)]


@needs_c
@pytest.mark.parametrize(("case", "last", "fill", "size", "answer"), [
    ("the next microseconds", 50_450_000, 0, 56, "handled"),
    ("the counter's bytes all the fill: one repeated byte (_untimed: zero-fill, untimed)", 0, 0, 56, "handled"),
    ("the counter's bytes all the fill: one repeated byte (_untimed: mtr, the same session)", 0x41414141, 0x41, 56,
     "handled"),
    ("a counter of 0: Cisco's layout (four zeros)", 0, 0x55, 56, "declined"),
    ("zeros after a counter that reads as the capture time: iputils -p 00", int(T0 + 0.45), 0, 56, "declined"),
    ("... as the capture time 299 s on", int(T0 + 0.45) + 299, 0, 56, "declined"),
    ("... 301 s on (timestamp_tolerance 300 s; BusyBox's, which explain says)", int(T0 + 0.45) + 301, 0, 56,
     "handled"),
    ("... 302 s on: BusyBox's", int(T0 + 0.45) + 302, 0, 56, "handled"),
    ("the same counter after a fill of 0x55: BusyBox's (no iputils without zeros)", int(T0 + 0.45), 0x55, 56,
     "handled"),
    ("15 bytes: _untimed's patterns from byte 0 are tried first, then BusyBox's", 50_450_000, 0, 15, "handled"),
    ("16 bytes", 50_450_000, 0, 16, "handled"),
    ("the fill changed at its end", -1, 0, 56, "declined"),
])
def test_busybox_requests_take_the_c_path_where_explain_says_busybox_first(
        case: str, last: int, fill: int, size: int, answer: str) -> None:
    """fingerprints.explain tries _untimed, check_icmp, pro-bing, iputils and Cisco before _busybox: the C path reads
    BusyBox's layout itself only where none of them can, and asks explain elsewhere (run_template), taking what it
    explains as the run's next ping; the run's earlier counters are BusyBox's 150 ms apart."""
    counters = [50_000_000 + 150_000 * i for i in range(3)]
    if last >= 2**31:  # a counter read as a clock: the run moves with it (the clock's offset stays)
        counters = [last - 450_000 + 150_000 * i for i in range(3)]
    requests = busybox_run([*counters, last if last >= 0 else counters[-1] + 150_000], fill, size)
    if last < 0:
        requests[-1] = dataclasses.replace(requests[-1], payload=requests[-1].payload[:-1] + b"!")
    detection = dataclasses.replace(DetectionConfig(), clock_jitter=2**33 / 1e6)  # no offset is charged here
    counting = run_both(requests, detection)
    assert counting.answers[id(requests[-1])] == answer, (case, counting.answers)


@needs_c
@pytest.mark.parametrize(("moved", "answer"), [
    (0.0, "handled"), (0.999, "handled"), (-0.999, "handled"), (1.001, "declined"), (-1.001, "declined"),
    (-3.0, "declined"), (2**32 / 1e6 - 0.5, "handled"), (2**32 / 1e6 / 2 - 0.0001, "declined"),
])
@pytest.mark.parametrize("start", [50_000_000, 2**32 - 310_000])  # the second wraps within the run (not to 0)
def test_busybox_counters_wrap_and_their_offset_is_the_references(moved: float, answer: str, start: int) -> None:
    """The counter wraps every 2**32 us: an offset moved by `moved` s is read modulo that (Python's float %), and
    charged past clock_jitter (1 s); each run's last request alone moves its offset."""
    counters = [start + 150_000 * i for i in range(4)]
    counters.append(counters[-1] + 150_000 + round(moved * 1e6))
    requests = busybox_run(counters)
    detection = dataclasses.replace(DetectionConfig(), clock_jitter=1.0)
    counting = run_both(requests, detection)
    assert counting.answers[id(requests[-1])] == answer, counting.answers
    assert [counting.answers[id(r)] for r in requests[2:-1]] == ["handled"] * 2, counting.answers


def cisco_run(counters: list[int], pattern: bytes = b"\xab\xcd", size: int = 72) -> list[IcmpPacket]:
    """Cisco IOS ping's requests (identifier 7, one every 0.15 s) carrying `counters` and the 16-bit `pattern`."""
    return [corpus.echo(T0 + 0.15 * i, "10.0.0.1", "10.0.0.2", True, 7, i + 1,
                        (bytes(4) + struct.pack(">I", counter % 2**32) + pattern * size)[:size])
            for i, counter in enumerate(counters)]


@needs_c
@pytest.mark.parametrize(("case", "last", "pattern", "answer"), [
    ("the next milliseconds", 5_000_451, b"\xab\xcd", "handled"),
    ("the counter's last byte 0: iputils' layouts are tried first (and fail)", 5_000_448 + 256, b"\xab\xcd",
     "handled"),
    ("a pattern check_icmp's byte 16 would read (10, 0), the counter's last byte not 0", 5_000_451, b"\x0a\x00",
     "handled"),
    ("a pattern of zeros", 5_000_451, b"\0\0", "handled"),
    ("a pattern pro-bing's bytes 14 and 16 would read (0x4., 0b10......): one byte cannot be both", 5_000_451,
     b"\x45\x80", "handled"),
    ("a counter of 0 and a pattern of zeros: one repeated byte (zero-fill, untimed)", 0, b"\0\0", "handled"),
    ("another pattern: a new session within the run", 5_000_451, b"\xab\xce", "declined"),
    ("the pattern from byte 10 on another one", 5_000_451, b"\xab\xcd", "declined"),
    ("milliseconds that a multiplication by 0.001 rounds otherwise", next(
        c for c in range(5_000_452, 5_001_000) if c * 0.001 != c / 1000 and c & 0xFF), b"\xab\xcd", "handled"),
])
def test_cisco_requests_take_the_c_path_where_explain_says_cisco_first(case: str, last: int, pattern: bytes,
                                                                       answer: str) -> None:
    """fingerprints.explain tries _untimed, check_icmp, pro-bing and iputils before _cisco: the C path reads Cisco's
    layout itself only where none of them can, and asks explain elsewhere (run_template); the run's earlier counters
    are Cisco's 150 ms apart, with the last's pattern (but the new session's case)."""
    counters = [5_000_001 + 150 * i for i in range(3)]
    first = pattern if "new session" not in case else b"\xab\xcd"
    requests = [*cisco_run(counters, first)[:3], cisco_run([*counters, last], pattern)[3]]
    if "byte 10" in case:  # bytes 8 and 9 the run's pattern, the rest repeating another
        payload = requests[-1].payload
        requests[-1] = dataclasses.replace(requests[-1], payload=payload[:10] + (b"\xac\xcd" * 40)[: len(payload) - 10])
    counting = run_both(requests, dataclasses.replace(DetectionConfig(), clock_jitter=2.0))
    got = counting.answers[id(requests[-1])]
    # declined: not taken as Cisco's next ping (Python's, or novel bytes C takes)
    assert got == answer or (answer == "declined" and got in ("evaluated", "novel")), (case, counting.answers)


@needs_c
@settings(max_examples=examples(300), deadline=None)
@given(counters=st.lists(st.one_of(st.integers(0, 2**32 - 1), st.sampled_from([0, int(T0), int(T0) + 300,
                                                                                int(T0) - 301, 0x01010101])),
                         min_size=2, max_size=12),
       fill=st.sampled_from([0, 0, 1, 0x0A, 0x40, 0x80, 0xFF]), size=st.sampled_from([8, 15, 16, 24, 56, 100]),
       steps=st.lists(st.sampled_from([0.0, 0.2, 1.0, 7.0, -0.5]), min_size=12, max_size=12))
def test_both_agree_on_generated_busybox_counters(counters: list[int], fill: int, size: int,
                                                  steps: list[float]) -> None:
    """Counters anywhere (0, read as the capture time, the fill's own bytes, wrapping), every fill explain's other
    templates test a byte for, sizes about 16."""
    requests = busybox_run(counters, fill, size)
    requests = [dataclasses.replace(r, ts=T0 + sum(steps[:i])) for i, r in enumerate(requests)]
    run_both(corpus.with_replies(requests))


# (and two addresses no collector has: what a host sends there explains nothing elsewhere, novelty.lends_payloads)
HOSTS = ["198.51.100.1", "198.51.100.2", "203.0.113.9", "224.0.0.251", "127.0.0.1"]
V6 = (b"\x20\x01\x0d\xb8" + bytes(11) + b"\x01", b"\x20\x01\x0d\xb8" + bytes(11) + b"\x02")
POOL = [b"abcdefghijklmnopqrstuvwabcdefghi", bytes(range(56)), bytes(100), bytes(range(100)), b"", b"x" * 64,
        b"y" * 65]
PATTERNS = [None, None, b"\xaa", b"\x5a\xa5", b"0123456789:;<=>?"]  # ping -p's (None: the default fill)
# Payloads the tool tracker recognises at once (ptunnel, icmptunnel's raw IP packet, hans, pingtunnel, icmpsh,
# icmpdoor): the generated traffic carries them too, so the tracker's answers are finished in C (tool_seen) amid
# everything else.
TOOL_PAYLOADS = [session()[0].payload for session in (corpus.ptunnel_session, corpus.icmptunnel_session,
                                                       corpus.hans_session, corpus.pingtunnel_session,
                                                       corpus.icmpsh_session, corpus.icmpdoor_session)]


def timestamp_body(draw: st.DrawFn, ts: float) -> bytes:
    """A timestamp message's payload around the capture time `ts`: zeros, the time of day (either byte order, a few
    seconds off), RFC 792's high bit, a second on, random; sometimes cut or longer."""
    now = day_ms(ts)
    swapped = int.from_bytes(now.to_bytes(4, "little"), "big")
    fields = [draw(st.sampled_from([0, now, (now + 5_000) % MS_PER_DAY, swapped, 0x8000_0000 | now, now + 999,
                                    now + 1001, draw(st.integers(0, 2**32 - 1))])) for _ in range(3)]
    body = bytes(4) + b"".join(v.to_bytes(4, "big") for v in fields)
    return body[:draw(st.integers(5, 16))] if not draw(st.integers(0, 3)) else body + draw(st.binary(max_size=8))


@st.composite
def traffic(draw: st.DrawFn) -> list[IcmpPacket]:
    """Pings between a few hosts (IPv4 and IPv6) that mostly repeat themselves, with every way out of the C path:
    a changed payload (in its first 64 bytes or past them), a new id or a sequence number out of step, a reply to
    nothing, to a forgotten request or with another payload, non-zero codes, IP options, other ICMP types, partial
    messages, times that jump a sweep or go back; sequence numbers that jump (after a pause: a new run, free or
    charged) or step back."""
    ts = 1e9
    out: list[IcmpPacket] = []
    sent: list[IcmpPacket] = []
    seqs: dict[tuple[bytes, bytes, int], int] = {}
    for _ in range(draw(st.integers(1, 80))):
        ts += draw(st.sampled_from([0.0, 0.001, 0.01, 0.4, 0.7, 1.0, 2.5, -0.3, 5.0]))
        action = draw(st.sampled_from(["request"] * 4 + ["reply"] * 3 + ["other", "partial"]))
        if action == "reply" and sent:
            request = draw(st.sampled_from(sent[-6:]))
            pattern = draw(st.sampled_from(PATTERNS))  # or a ping's own payload, a -p pattern's or not
            payload = request.payload if draw(st.integers(0, 4)) else draw(st.sampled_from(
                [*POOL, iputils(ts - 0.01, 56, pattern and pattern * 100)]))
            out.append(IcmpPacket(ts, request.dst, request.src, request.ipv6, 129 if request.ipv6 else 0,
                                  request.icmp_code if draw(st.integers(0, 5)) else 3, request.ident,
                                  request.seq if draw(st.integers(0, 5)) else request.seq ^ 1, payload,
                                  42 + len(payload)))
            continue
        if draw(st.integers(0, 5)):
            src, dst = (corpus.packed(h) for h in draw(st.permutations(HOSTS))[:2])
            ipv6 = False
        else:
            src, dst = V6 if draw(st.booleans()) else V6[::-1]
            ipv6 = True
        if action == "other":
            kind = draw(st.sampled_from([3, 11, 13, 14, 1]))
            timed = kind in (13, 14) and draw(st.booleans())
            payload = timestamp_body(draw, ts) if timed else draw(st.sampled_from(POOL))
            out.append(IcmpPacket(ts, src, dst, ipv6, kind, 0, -1, -1, payload, 42 + len(payload)))
            continue
        ident = draw(st.sampled_from([7, 7, 7, 9]))
        key = (src, dst, ident)
        step = draw(st.sampled_from([1, 1, 1, 1, 0, 2, 0x100, -1, 37, 0x9000]))
        seq = (seqs.get(key, draw(st.integers(0, 0xFFFF))) + step) & 0xFFFF
        seqs[key] = seq
        previous = next((p.payload for p in reversed(sent) if (p.src, p.dst) == (src, dst)), POOL[0])
        clock = ts + draw(st.sampled_from([-0.01, -0.01, -0.01, -0.5, -1.6, 2.0, -400.0]))
        layout = draw(st.sampled_from([iputils, bsd, pro_bing, busybox, cisco]))
        pattern = draw(st.sampled_from(PATTERNS)) if layout in (iputils, bsd) else None  # ping -p
        linux = layout(clock, draw(st.sampled_from([len(previous), 24, 56, 100])) if len(previous) >= 16 else 56,
                       pattern and pattern * 100)
        payload = previous if not draw(st.integers(0, 3)) else linux if draw(st.integers(0, 2)) else draw(st.one_of(
            st.sampled_from(POOL), st.sampled_from(TOOL_PAYLOADS), st.binary(max_size=90),
            st.just(previous[:64] + b"!" + previous[65:]), st.just(b"!" + previous[1:]),
            st.just(linux[:-1] + b"!"), st.just(linux[:7] + b"\x01" + linux[8:])))
        options = RR if not draw(st.integers(0, 15)) else b""
        code = 0 if draw(st.integers(0, 9)) else 2
        pkt = IcmpPacket(ts, src, dst, ipv6, 128 if ipv6 else 8, code, ident, seq, payload, 42 + len(payload),
                         options)
        if action == "partial":
            pkt = PartialPacket.of(pkt, ts - 0.5)
        sent.append(pkt)
        out.append(pkt)
    return out


@needs_c
@settings(max_examples=examples(800), deadline=None)
@given(packets=traffic(), max_flows=st.sampled_from([1, 2, 3, 1000]), max_pending=st.sampled_from([1, 2, 1000]),
       pairing=st.sampled_from(["matched", "last_request"]), idle=st.sampled_from([1.0, 3.0, 300.0]),
       ignored=st.sampled_from([(), (POOL[0],), (POOL[0], POOL[3])]),
       notes=st.sampled_from([(256, 128, 2), (40, 16, 2), (100, 0, 1), (1000, 30, 3), (30, 30, 1)]))
def test_both_agree_on_generated_traffic(packets: list[IcmpPacket], max_flows: int, max_pending: int, pairing: str,
                                         idle: float, ignored: tuple[bytes, ...], notes: tuple[int, int, int]) -> None:
    """`notes`: novel_bytes_threshold, small_secret_bytes and small_secret_payloads, low enough that the flows' notes
    fall due in a few packets (the C path leaves a flow's evaluation out only where it would raise nothing)."""
    threshold, secret, payloads = notes
    detection = dataclasses.replace(DetectionConfig(), max_flows=max_flows, max_pending_requests=max_pending,
                                    reply_pairing=pairing, idle_timeout=idle, novel_bytes_threshold=threshold,
                                    small_secret_bytes=secret, small_secret_payloads=payloads)
    run_both(packets, detection, AllowlistConfig(payloads=ignored))


@needs_c
@pytest.mark.parametrize("options", [b"", b"\x07\x03\x04"])
def test_an_empty_request_after_a_patterns_reply_is_charged_as_the_reference_charges_it(options: bytes) -> None:
    """A flow whose last sketch is a `ping -p x` reply's (paired by last_request pairing: its run's session the
    pattern), then an empty request in step: the reference asks no template about an empty payload (nothing novel,
    nothing ignored, no clock); the C path took it as the pattern run's next payload and counted it ignored. Found by
    test_both_agree_on_generated_traffic under the CI profile (seen on the session's start too)."""
    a, b = corpus.packed("203.0.113.9"), corpus.packed("224.0.0.251")
    packets = [IcmpPacket(T0, a, b, False, 8, 0, 7, 9799, b"", 42, options),
               IcmpPacket(T0, b, a, False, 0, 0, 7, 9798, b"", 42),
               IcmpPacket(T0, a, b, False, 0, 0, 7, 0, b"x" * 64, 106),
               IcmpPacket(T0, a, b, False, 8, 0, 7, 9800, b"", 42)]
    run_both(packets, dataclasses.replace(DetectionConfig(), reply_pairing="last_request"))


@needs_c
def test_samples_of_pings_reach_the_c_path_and_leave_it() -> None:
    """Repeating pings with replies, a changed payload and a forgotten request: packets the C path handles and
    ones it declines, the two detectors equal throughout."""
    runs = [run_both(_sample(seed)) for seed in range(40)]
    handled, declined = sum(c.handled for c in runs), sum(c.declined for c in runs)
    assert handled > 50 and declined > 10, (handled, declined)


def _sample(seed: int) -> list[IcmpPacket]:
    """A repeating ping with replies, one payload change and one forgotten request, deterministic per seed."""
    payload = POOL[seed % 4]
    requests = [corpus.echo(1e9 + i * 0.3, HOSTS[0], HOSTS[seed % 2 + 1], True, 7, seed + i, payload)
                for i in range(10)]
    requests[5] = corpus.echo(requests[5].ts, HOSTS[0], HOSTS[seed % 2 + 1], True, 7, seed + 5, payload[::-1])
    replies = [corpus.kernel_reply(r) for r in requests if r.seq != seed + 7]
    return sorted([*requests, *replies], key=lambda p: p.ts)


@needs_c
def test_reconfigure_rebuilds_the_c_path_with_the_new_limits() -> None:
    detector = Detector(DetectionConfig(), AllowlistConfig())
    before = detector._fast
    detector.reconfigure(dataclasses.replace(DetectionConfig(), max_pending_requests=1), AllowlistConfig())
    assert detector._fast is not None and detector._fast is not before
    payload = POOL[0]
    for i in range(3):
        detector.process(corpus.echo(1e9 + i, HOSTS[0], HOSTS[1], True, 7, i, payload))
    assert len(detector._pending) == 1 and detector.stats.pending_evicted == 2


WINDOWS_PAYLOAD = b"abcdefghijklmnopqrstuvwabcdefghi"  # ping.exe's default 32 bytes


def with_clock_moving(packets: list[IcmpPacket]) -> list[IcmpPacket]:
    """`packets` with another pair's repeating ping every 0.25 s over their span: the capture clock reaches every
    whole second before their next packet does (else that packet is the one that sweeps, which the C path leaves to
    Python)."""
    start, end = packets[0].ts, packets[-1].ts
    busy = [corpus.echo(start - 0.01 + 0.25 * i, HOSTS[1], HOSTS[2], True, 9, i + 1, POOL[1])
            for i in range(int((end - start) / 0.25) + 1)]
    return sorted([*packets, *busy], key=lambda p: p.ts)


def windows_runs(runs: int, per_run: int, pause: float, jump: int, first_seq: int = 100) -> list[IcmpPacket]:
    """ping.exe run again and again on one host: identifier 1, the machine's one sequence counter moved on by
    `jump` between runs (the other hosts' runs), runs `pause` s apart, the same payload every time."""
    out, ts, seq = [], T0, first_seq
    for _ in range(runs):
        for _ in range(per_run):
            seq += 1
            out.append(corpus.echo(ts, "10.0.0.1", "10.0.0.2", True, 1, seq, WINDOWS_PAYLOAD))
            ts += 0.5
        ts += pause - 0.5
        seq += jump
    return out


@needs_c
@pytest.mark.parametrize("jump", [3, 40, 1000, 30_000])
def test_a_new_run_after_a_pause_with_the_same_payload_takes_the_c_path(jump: int) -> None:
    """Windows ping.exe's counter: a request whose sequence number jumped after a pause of RUN_PAUSE or more, same
    identifier, size and payload, is a new run the run budget pays for (capacity.request_header), with no novel
    bytes: the C path takes it once the flow has its capacity state (from the second run on)."""
    assert capacity.RUN_PAUSE == 5.0  # the pauses below are about it
    requests = windows_runs(runs=8, per_run=3, pause=6.0, jump=jump)
    counting = run_both(with_clock_moving(corpus.with_replies(requests)))
    jumps = [requests[3 * run] for run in range(2, 8)]  # the first request of every run from the third on
    assert [counting.answers[id(p)] for p in jumps] == ["handled"] * len(jumps), counting.answers


def out_of_step_flow(ident_changes: int = 0) -> list[IcmpPacket]:
    """A flow's requests: `ident_changes` new identifiers 10 ms apart (runs side by side: each takes a run
    token), then three requests of one more run, the second out of step (the flow's capacity state is made)."""
    sent = [corpus.echo(T0 + 0.01 * i, "10.0.0.1", "10.0.0.2", True, 1 + i, 100 + i, WINDOWS_PAYLOAD)
            for i in range(ident_changes)]
    ident = 1 + ident_changes
    sent += [corpus.echo(T0 + 0.3 + 0.5 * i, "10.0.0.1", "10.0.0.2", True, ident, 200 + i + (7 if i else 0),
                         WINDOWS_PAYLOAD) for i in range(3)]
    return sent


@needs_c
@pytest.mark.parametrize(("pause", "jump", "answer"), [
    (2.0, 40, "charged"),  # no pause: the sequence number is charged
    (6.0, -40, "handled"),  # a jump back after the pause is a new run too (another machine's counter behind a NAT)
    (6.0, 40_000, "handled"),  # so is one past half the 16-bit circle (it reads as going back)
    (4.9, 40, "charged"),  # a pause just short of RUN_PAUSE
    (6.0, 40, "handled"),  # a new run, free
    (5.0, 40, "handled"),  # a pause of RUN_PAUSE exactly
    (2.0, 2, "handled"),  # a lost request or two: within SEQ_FREE of the stride, free, no token
    (0.5, -1, "handled"),  # the last request again (a retry): one back from the stride is free too
])
def test_a_sequence_number_out_of_step_takes_the_c_path_only_when_it_is_free(pause: float, jump: int,
                                                                             answer: str) -> None:
    """A request whose sequence number is not one stride on, with the flow's identifier, size and payload: the C
    path takes it as a ping's next where capacity.request_header charges nothing for it, and charges it as the
    reference does where it would (repeated_request)."""
    sent = out_of_step_flow()
    jumped = dataclasses.replace(sent[-1], ts=sent[-1].ts + pause, seq=sent[-1].seq + 1 + jump)
    packets = with_clock_moving([*sent, jumped])
    counting = run_both(packets)
    assert charged_at(packets, jumped) == (answer == "charged")
    assert counting.answers[id(jumped)] == "handled" or answer == "charged", counting.answers
    assert counting.answers[id(jumped)] != "declined", counting.answers


@needs_c
@pytest.mark.parametrize(("ident_changes", "out_of_order", "answer"), [
    (20, True, "charged"),  # the budget spent
    (8, False, "handled"),  # partly spent: the token comes from a bucket due later than now
    (0, True, "handled"),  # not spent
])
def test_a_new_run_with_the_run_budget_spent_is_charged(ident_changes: int, out_of_order: bool, answer: str) -> None:
    """The run budget (capacity.take_token) spent by `ident_changes` new identifiers at once. A pause counts from
    the flow's last request, the budget from the packets' times: after a request stamped 10 s before the new
    identifiers (`out_of_order`), a jump RUN_PAUSE later finds the budget spent, its sequence number is charged, in C
    as in the reference (repeated_request)."""
    sent = out_of_step_flow(ident_changes)
    if out_of_order:
        sent.append(dataclasses.replace(sent[-1], ts=T0 - 10.0, seq=sent[-1].seq + 1))
    jumped = dataclasses.replace(sent[-1], ts=sent[-1].ts + 6.0, seq=sent[-1].seq + 41)
    packets = [*sent, jumped] if out_of_order else with_clock_moving([*sent, jumped])
    counting = run_both(packets)
    assert charged_at(packets, jumped) == (answer == "charged")
    assert counting.answers[id(jumped)] == "handled" or answer == "charged", counting.answers
    assert counting.answers[id(jumped)] != "declined", counting.answers


@needs_c
def test_the_request_after_a_charged_new_identifier_takes_the_c_path_and_ends_the_charged_run() -> None:
    """A new identifier with the run budget spent is charged by Python, which leaves _run_free False; the run's next
    request, in step with the same payload, is the C path's, and sets it True as the reference's _on_request does."""
    sent = out_of_step_flow(20)[:21]
    following = dataclasses.replace(sent[-1], ts=sent[-1].ts + 0.3, seq=sent[-1].seq + 1)  # before the sweep
    reference = Detector(DetectionConfig(), AllowlistConfig(), accelerated=False)
    for pkt in sent:
        reference.process(pkt)
    assert reference._run_free is False
    counting = run_both([*sent, following])
    assert counting.answers[id(following)] == "handled", counting.answers


@needs_c
@pytest.mark.parametrize(("seqs", "answer"), [
    ([1, 2, 10, 15, 20, 26], "handled"),  # a stride of 5 (fping -l counts all its targets), then 6: within SEQ_FREE
    ([1, 2, 10, 15, 20, 29], "charged"),  # ... then 9: charged
    ([1, 2, 10, 11, 0x010B], "handled"),  # one up in host byte order (hping3 on a little-endian host)
    ([1, 2, 10, 11, 0x050B], "charged"),  # five up in host byte order: charged
])
def test_a_step_a_ping_explains_takes_the_c_path(seqs: list[int], answer: str) -> None:
    """capacity.request_header's free steps besides +1: the flow's stride, and +1 in the other byte order; the last
    request's answer (within one second of capture time: no sweep): taken as a ping's next, or charged (in C as in
    the reference)."""
    sent = [corpus.echo(T0 + 0.1 * i, "10.0.0.1", "10.0.0.2", True, 1, seq, WINDOWS_PAYLOAD)
            for i, seq in enumerate(seqs)]
    counting = run_both(sent)
    assert charged_at(sent, sent[-1]) == (answer == "charged")
    assert counting.answers[id(sent[-1])] == "handled" or answer == "charged", counting.answers
    assert counting.answers[id(sent[-1])] != "declined", counting.answers


# -- ICMP errors ------------------------------------------------------------------------------------------------

ROUTER = {False: "192.0.2.1", True: "2001:db8::1"}  # sends the error
PROBER = {False: "198.51.100.7", True: "2001:db8::7"}  # sent the quoted datagram, receives the error
TARGET = {False: "203.0.113.50", True: "2001:db8::50"}


def probe(v6: bool, proto: int = 17, data: bytes = b"traceroute probe", udp_length: int | None = None,
          src: str | None = None) -> bytes:
    """A datagram the prober sent (a traceroute probe: UDP, or `proto` with `data` as its transport bytes)."""
    src = src or PROBER[v6]
    inner = benign_corpus.udp_datagram(src, TARGET[v6], 33434, 33435, data) if proto == 17 else data
    if udp_length is not None:
        inner = inner[:4] + struct.pack("!H", udp_length) + inner[6:]
    if v6:
        return benign_corpus.ipv6_header(src, TARGET[v6], proto, len(inner), hop_limit=1) + inner
    return benign_corpus.ipv4_header(src, TARGET[v6], proto, len(inner), ttl=1, ident=0x1234) + inner


def icmp_error(icmp_type: int, code: int, quoted: bytes, rest: bytes = bytes(4), v6: bool = False) -> IcmpPacket:
    return benign_corpus.error_packet(ROUTER[v6], PROBER[v6], icmp_type, code, rest, quoted, T0 + 0.5)


def after_a_ping(pkt: IcmpPacket) -> list[IcmpPacket]:
    """`pkt` after another pair's request in the same second (so that `pkt` is not the packet that sweeps)."""
    return [corpus.echo(pkt.ts - 0.1, HOSTS[1], HOSTS[2], True, 9, 1, POOL[1]), pkt]


def answer_for(pkt: IcmpPacket) -> str:
    """What the C path made of `pkt` (the two detectors agreeing throughout), checked against the reference:
    "handled" (counted: nonecho.unexplained_bytes finds nothing in it), "unexplained" (taken with the bytes it finds:
    other_message) or "declined" (the Python detector's)."""
    counting = run_both(after_a_ping(pkt))
    answer = counting.answers[id(pkt)]
    unexplained = nonecho.unexplained_bytes(pkt)[0]
    assert answer == "declined" or (answer == "handled") == (unexplained == 0), (pkt, answer, unexplained)
    return answer if answer in ("handled", "declined") else "unexplained"


def _corrupted(datagram: bytes, at: int) -> bytes:
    return datagram[:at] + bytes([datagram[at] ^ 0x40]) + datagram[at + 1 :]


def _with_extension(quote: bytes, version: int = 2) -> bytes:
    """RFC 4884: the quote padded (or cut) to 128 bytes, then an extension structure (version 2, no checksum) with
    an MPLS label stack object."""
    return quote[:128].ljust(128, b"\0") + bytes([version << 4, 0, 0, 0]) + struct.pack("!HBB", 8, 1, 1) + bytes(4)


def _short_header(datagram: bytes) -> bytes:
    """The datagram with IHL 4 (a 16-byte header), its checksum made right over those 16 bytes, TCP."""
    header = bytes([0x44]) + datagram[1:9] + bytes([6]) + b"\0\0" + datagram[12:16]
    return header[:10] + struct.pack("!H", benign_corpus.checksum(header)) + header[12:] + datagram[16:]


ERRORS = {  # name -> (the error, what the C path does with it: "handled" where unexplained_bytes finds nothing)
    "time exceeded, RFC 792 quote": (icmp_error(11, 0, benign_corpus.quote4(probe(False), "rfc792")), "handled"),
    "port unreachable, Linux quote": (icmp_error(3, 3, benign_corpus.quote4(probe(False), "linux")), "handled"),
    "fragmentation needed, MTU 1400": (
        icmp_error(3, 4, benign_corpus.quote4(probe(False, data=bytes(1472)), "rfc792"), b"\0\0\x05\x78"),
        "handled"),
    "fragmentation needed, an old router's MTU 0": (
        icmp_error(3, 4, benign_corpus.quote4(probe(False, data=bytes(1472)), "rfc792")), "handled"),
    "an unreachable of its 4-byte header alone": (icmp_error(3, 1, b"", b""), "handled"),
    "an unreachable cut after its unused bytes": (icmp_error(3, 1, b""), "unexplained"),
    "ICMPv6 time exceeded": (icmp_error(3, 0, benign_corpus.quote6(probe(True)), v6=True), "handled"),
    "ICMPv6 unreachable": (icmp_error(1, 4, benign_corpus.quote6(probe(True)), v6=True), "handled"),
    "ICMPv6 packet too big": (
        icmp_error(2, 0, benign_corpus.quote6(probe(True, data=bytes(1400))), b"\0\0\x05\x00", v6=True), "handled"),
    "ICMPv6 parameter problem": (icmp_error(4, 0, benign_corpus.quote6(probe(True)), bytes(4), v6=True), "handled"),
    # what unexplained_bytes charges (most of them the whole payload), or finds nothing in without a right quote:
    # other_message's
    "a quoted header with a wrong checksum": (icmp_error(11, 0, _corrupted(probe(False), 8)), "unexplained"),
    "a quote the receiver did not send": (icmp_error(11, 0, probe(False, src=TARGET[False])), "unexplained"),
    "an ICMPv6 quote the receiver did not send": (
        icmp_error(3, 0, probe(True, src=TARGET[True]), v6=True), "unexplained"),
    "unused header bytes not zero": (icmp_error(11, 0, probe(False), b"\0\0\0\x01"), "unexplained"),
    "an MTU not below the datagram's length": (
        icmp_error(3, 4, benign_corpus.quote4(probe(False, data=bytes(1472)), "rfc792"), b"\0\0\x05\xdc"),
        "unexplained"),
    "an RFC 4884 extension structure": (
        icmp_error(11, 0, _with_extension(probe(False)), b"\0\x20\0\0"), "handled"),
    "an RFC 4884 length past the message's end": (
        icmp_error(11, 0, probe(False), b"\0\x20\0\0"), "handled"),
    "an extension structure after a long datagram's quote": (
        icmp_error(11, 0, _with_extension(probe(False, data=bytes(1400))), b"\0\x20\0\0"), "handled"),
    "a broken extension structure after a long datagram's quote": (
        icmp_error(11, 0, _with_extension(probe(False, data=bytes(1400)), version=3), b"\0\x20\0\0"), "unexplained"),
    "an IPv4 header of 16 bytes": (icmp_error(11, 0, _short_header(probe(False))), "unexplained"),
    # byte 0 is no RFC 4884 length in a parameter problem, and a pointer past 2^24 is beyond any packet
    "ICMPv6 parameter problem pointing past 2^24, past its packet": (
        icmp_error(4, 0, benign_corpus.quote6(probe(True)), b"\x01\0\0\x28", v6=True), "unexplained"),
    "ICMPv6 parameter problem pointing within its packet": (
        icmp_error(4, 0, benign_corpus.quote6(probe(True)), b"\0\0\0\x28", v6=True), "handled"),
    "an ICMPv6 extension structure": (
        icmp_error(3, 0, _with_extension(probe(True)), b"\x10\0\0\0", v6=True), "handled"),
    "a quoted UDP length that is not its datagram's": (icmp_error(3, 3, probe(False, udp_length=9)), "unexplained"),
    "a quoted protocol no host sends": (icmp_error(3, 2, probe(False, proto=200, data=bytes(8))), "unexplained"),
    "a quote too short for an IPv4 header": (icmp_error(11, 0, probe(False)[:19]), "unexplained"),
    "a quote longer than its datagram": (icmp_error(11, 0, probe(False) + b"more"), "unexplained"),
    "an ICMPv6 quote longer than its packet": (icmp_error(3, 0, probe(True) + b"more", v6=True), "unexplained"),
    "not IPv4": (icmp_error(11, 0, b"\x65" + probe(False)[1:]), "unexplained"),
    "a parameter problem (type 12)": (icmp_error(12, 0, probe(False)), "handled"),
    "a source quench (type 4)": (icmp_error(4, 0, probe(False)), "handled"),
    "a timestamp request (type 13)": (icmp_error(13, 0, bytes(16)), "unexplained"),
}


@needs_c
@pytest.mark.parametrize("case", sorted(ERRORS))
def test_an_icmp_error_whose_quote_is_right_takes_the_c_path(case: str) -> None:
    """A router's error (unreachable, time exceeded; ICMPv6's four) that quotes a datagram its receiver sent, with
    nothing wrong in the quote or the unused header bytes, keeps no state: the C path counts it (benign_error).
    Anything else (a checksum, a sender, an extension structure, a length, a protocol; the other types) is asked of
    nonecho.unexplained_bytes in C (other_message): counted where it finds nothing, else taken with what it finds,
    as Detector._on_other does."""
    pkt, answer = ERRORS[case]
    assert answer_for(pkt) == answer


@st.composite
def icmp_errors(draw: st.DrawFn) -> IcmpPacket:
    """Errors quoting a probe, with every field a quote check reads drawn right or wrong: the types and codes, the
    quoted protocol, the UDP length, the quote's sender and length, the RFC 4884 length, the unused bytes, and one
    byte anywhere flipped."""
    v6 = draw(st.booleans())
    proto = draw(st.sampled_from([17, 17, 6, 1, 58, 200]))
    data = draw(st.binary(max_size=40))
    datagram = probe(v6, proto, data, udp_length=draw(st.sampled_from([None, None, 8, 9 + len(data)])),
                     src=draw(st.sampled_from([PROBER[v6], PROBER[v6], TARGET[v6]])))
    quoted = datagram[: draw(st.integers(0, len(datagram) + 4))] + draw(st.sampled_from([b"", b"", bytes(8), b"x"]))
    if draw(st.booleans()) and quoted:
        at = draw(st.integers(0, len(quoted) - 1))
        quoted = _corrupted(quoted, at)
    kinds = [(1, 4), (3, 0), (2, 0), (4, 0), (1, 0)] if v6 else [(3, 3), (11, 0), (3, 4), (3, 13), (12, 0), (5, 1)]
    icmp_type, code = draw(st.sampled_from(kinds))
    rest = bytes([draw(st.sampled_from([0, 0, 0, 1, 16, 32])), draw(st.sampled_from([0, 0, 0, 2, 32])),
                  *draw(st.sampled_from([b"\0\0", b"\0\0", b"\x05\x78", b"\x00\x44", b"\x00\x01"]))])
    return icmp_error(icmp_type, code, quoted, rest, v6)


@needs_c
@settings(max_examples=examples(600), deadline=None)
@given(pkt=icmp_errors())
def test_both_agree_on_generated_icmp_errors(pkt: IcmpPacket) -> None:
    answer_for(pkt)


# -- many packets at once (Detector.process_many: FastPath.run) ----------------------------------------------------


def drive_many(det: Detector, packets: list[IcmpPacket | None],
               watched: set[tuple[bytes, bytes]]) -> list[tuple[int, list[tuple[object, ...]], int]]:
    """process_many over the list as the pipeline drives it: each packet it stops at (index, notices, last_novel)."""
    stops, index = [], 0
    while True:
        index, notices = det.process_many(packets, index, watched)
        if index == len(packets):
            assert notices is None
            return stops
        assert notices is not None
        stops.append((index, notice_values(notices), det.last_novel))
        index += 1


@needs_c
@pytest.mark.parametrize("watch", [False, True])
def test_process_many_stops_only_where_the_caller_has_something_to_do(watch: bool) -> None:
    """The C path takes a batch's packets in one call (FastPath.run) and stops at each packet with notices, novel
    bytes or a watched pair; the packets it went past had none of those. The same notices, novel bytes and state
    as one packet at a time through the Python detector; None items (frames without a message) skipped."""
    packets: list[IcmpPacket | None] = []
    for pkt in [*_sample(1), *_sample(2), *corpus.EXFIL_CASES["nping-data"](), *timed_ping("iputils", 30, 56)]:
        packets += [pkt, None] if len(packets) % 7 == 3 else [pkt]
    packets.sort(key=lambda p: -1.0 if p is None else p.ts)
    watched = {pair_key(corpus.packed(HOSTS[0]), corpus.packed(HOSTS[2]))} if watch else set()
    reference = Detector(DetectionConfig(), AllowlistConfig(), accelerated=False)
    expected = []
    for index, pkt in enumerate(packets):
        if pkt is None:
            continue
        notices = notice_values(reference.process(pkt))
        if notices or reference.last_novel or pair_key(pkt.src, pkt.dst) in watched:
            expected.append((index, notices, reference.last_novel))
    fast = Detector(DetectionConfig(), AllowlistConfig())
    stops = drive_many(fast, packets, watched)
    assert [stop for stop in stops
            if stop[1] or stop[2] or pair_key(packets[stop[0]].src, packets[stop[0]].dst) in watched] == expected
    assert state(fast) == state(reference)
    assert len(stops) < 0.5 * len(packets), "the C path must go past most of a ping's packets"
    assert any(pair_key(p.src, p.dst) in watched for p in packets if p is not None) == watch
    assert drive_many(Detector(DetectionConfig(), AllowlistConfig()), [None, None], watched) == []


@needs_c
def test_process_many_lists_the_watched_pairs_packets_it_went_past() -> None:
    """Given a list for them, the C path goes past the packets of a watched pair that leave nothing else to do
    (the evidence recorder's, a recorded flow's hundreds of packets: one call each was most of their cost) and lists
    their indexes, in order, before the packet it stops at. What it stopped at and listed is what it stopped at
    without the list."""
    packets: list[IcmpPacket | None] = []
    for pkt in [*_sample(1), *_sample(2), *corpus.EXFIL_CASES["nping-data"](), *timed_ping("iputils", 30, 56)]:
        packets += [pkt, None] if len(packets) % 7 == 3 else [pkt]
    packets.sort(key=lambda p: -1.0 if p is None else p.ts)
    watched = {pair_key(corpus.packed(HOSTS[0]), corpus.packed(HOSTS[2]))}
    stopping = drive_many(Detector(DetectionConfig(), AllowlistConfig()), packets, watched)
    fast = Detector(DetectionConfig(), AllowlistConfig())
    stops, listed, index = [], [], 0
    while True:
        observed: list[int] = []
        index, notices = fast.process_many(packets, index, watched, observed)
        assert all(i < index for i in observed) and observed == sorted(observed)
        listed += observed
        if index == len(packets):
            break
        stops.append((index, notice_values(notices), fast.last_novel))
        index += 1
    assert listed, "the watched pair's packets the C path handles are listed, not stopped at"
    assert all(pair_key(packets[i].src, packets[i].dst) in watched for i in listed)  # type: ignore[union-attr]
    # a listed packet: one stopped at without the list, with no notices (its novel bytes, if any, are not told: the
    # pair's ring or recording takes its packets alike)
    assert stops == [stop for stop in stopping if stop[0] not in listed]
    assert sorted(listed) == [i for i, notices, _ in stopping if i in listed and not notices]
    reference = Detector(DetectionConfig(), AllowlistConfig(), accelerated=False)
    for pkt in packets:
        if pkt is not None:
            reference.process(pkt)
    assert state(fast) == state(reference)


def novel_flood(sources: int, seed: int) -> list[IcmpPacket | None]:
    """A novel-payload flood (three requests of 16-64 random bytes from each source to one target, interleaved: the
    third raises DataExfil on most), an exfiltration's chunks, pings; None items between."""
    rng = random.Random(seed)
    flood = [corpus.echo(T0 + 0.5 * k + 0.001 * s, f"10.7.{s // 200}.{s % 200 + 1}", "10.1.0.80", True, 9, k + 1,
                         rng.randbytes(rng.randint(16, 64))) for k in range(3) for s in range(sources)]
    exfil = [corpus.echo(T0 + 0.01 * i, "10.0.0.1", "10.0.0.2", True, 7, i + 1, p)
             for i, p in enumerate(chunks(30, 200))]
    # two sources' bursts (a new chunk, then it again: nothing novel), each request 3 ms after the last
    bursts, payloads = [], [b"", b""]
    for k in range(32):
        if k % 4 < 2:
            payloads[k % 2] = rng.randbytes(rng.randint(16, 64))
        bursts.append(corpus.echo(T0 + 0.3 + 0.003 * k, f"10.9.0.{k % 2 + 1}", "10.1.0.80", True, 5, k // 2 + 1,
                                  payloads[k % 2]))
    packets: list[IcmpPacket | None] = []
    for pkt in sorted([*flood, *exfil, *bursts, *_sample(1), *_sample(2)], key=lambda p: p.ts):
        packets += [pkt, None] if len(packets) % 9 == 4 else [pkt]
    return packets


@needs_c
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_process_many_lists_the_requests_with_novel_bytes_it_went_past(seed: int) -> None:
    """Given `folds` too (whether a flow's notices are folded: Pipeline passes the aggregator's), the C path also
    goes past a request with novel bytes of a pair not watched (a novel-payload flood's every request was a call
    and a stop of its own): it lists it as ~index, for the evidence recorder, but for one of a flow whose notices
    are folded (the recorder is never shown those: nothing listed), and lists the pair's later packets in the same
    call as a watched pair's (the first may have started the pair's ring). A listed packet is listed as what it is:
    ~index with novel bytes, whatever its pair (a watched pair's ring may be evicted by the rings the call's listed
    packets start: then the recorder starts the pair's again, as it would with each packet a stop), its index
    without (or with those of a folded flow). The same stops, notices, novel bytes and state as one packet at a time
    through the Python detector, with the listing that model gives."""
    packets = novel_flood(120, seed)
    watched = {pair_key(corpus.packed("198.51.100.1"), corpus.packed("198.51.100.2")),
               pair_key(corpus.packed("10.9.0.2"), corpus.packed("10.1.0.80"))}
    folded_sources = {corpus.packed(f"10.7.0.{s}") for s in range(1, 200, 3)} | {corpus.packed("10.0.0.1")}

    def folds_in(det: Detector) -> Callable[[str], bool]:
        def folds(uid: str) -> bool:
            return bool(uid) and any(flow.uid == uid and flow.src in folded_sources for flow in det._flows.values())
        return folds

    fast = Detector(DetectionConfig(), AllowlistConfig())
    reference = Detector(DetectionConfig(), AllowlistConfig(), accelerated=False)
    fast_folds, reference_folds = folds_in(fast), folds_in(reference)
    kinds, index = collections.Counter(), 0
    while index < len(packets):
        observed: list[int] = []
        start = index
        index, notices = fast.process_many(packets, index, watched, observed, fast_folds)
        expected, taken_as_watched = [], set(watched)
        for i in range(start, index):
            pkt = packets[i]
            if pkt is None:
                continue
            assert not reference.process(pkt)  # gone past: nothing raised
            pair = pair_key(pkt.src, pkt.dst)  # the recorder watches a ring's pair, both directions
            taken = pair in taken_as_watched
            if reference.last_novel and not reference_folds(reference.flow_uid(pkt.src, pkt.dst)):
                expected.append(~i)
                taken_as_watched.add(pair)
                kinds["novel, " + ("watched" if pair in watched else "after novel" if taken else "first")] += 1
            elif taken:
                expected.append(i)
                kinds["watched" if pair in watched else "after novel"] += 1
            elif reference.last_novel:
                kinds["folded"] += 1
        assert observed == expected
        if index < len(packets):
            assert notices is not None
            assert notice_values(notices) == notice_values(reference.process(packets[index]))  # type: ignore[arg-type]
            assert fast.last_novel == reference.last_novel
            index += 1
        assert state(fast) == state(reference)
    assert min(kinds.values()) > 0 and len(kinds) == 6, kinds
    assert kinds["novel, first"] > 200, "a flood's requests are listed, not stopped at"


@needs_c
@pytest.mark.parametrize(("seed", "max_notices", "max_flows"), [(1, 3, 100_000), (2, 3, 100_000), (3, 1000, 100_000),
                                                               (4, 3, 40)])
def test_process_many_goes_past_a_packet_whose_notices_are_all_folded(seed: int, max_notices: int,
                                                                      max_flows: int) -> None:
    """Given `kept` too (what of a packet's notices to write now: the pipeline passes NoticeAggregator.filter), the
    C path hands the notices it raised to it and goes past a packet it keeps none of (a storm's, folded into an
    aggregate), listing it for the evidence recorder as a packet without notices; it stops where it keeps some and
    returns those. Where Python finishes a packet, process_many returns what `kept` keeps of its notices. A novel-
    payload flood whose DataExfil notices the aggregator folds past its quota (and one whose quota is never
    reached): the same stops, notices kept, listing, folds, aggregates and state as one packet at a time through the
    Python detector and aggregator. With a small flow table, after a storm, a flood's new flow's first request evicts a
    storm flow whose summary is folded: the request's own novel bytes are still listed."""
    packets = novel_flood(150, seed)
    if max_flows < 100:
        packets = [*storm(80), *[p and dataclasses.replace(p, ts=p.ts + 1.0) for p in packets]]
    watched = {pair_key(corpus.packed("198.51.100.1"), corpus.packed("198.51.100.2")),
               pair_key(corpus.packed("10.9.0.2"), corpus.packed("10.1.0.80"))}
    detection = dataclasses.replace(DetectionConfig(), max_flows=max_flows)
    fast = Detector(detection, AllowlistConfig())
    reference = Detector(detection, AllowlistConfig(), accelerated=False)
    folding = NoticeAggregator(60.0, max_notices, 5)
    reference_folding = NoticeAggregator(60.0, max_notices, 5, accelerated=False)
    kinds = check_listing(fast, reference, packets, watched, folding, reference_folding)
    assert notice_values(folding.flush()) == notice_values(reference_folding.flush())
    assert kinds["novel"] > 100 and kinds["stop with notices"] > 0, kinds
    assert (kinds["folded"] > 50) == (max_notices == 3), kinds
    assert (kinds["novel, notices folded"] > 0) == (max_flows == 40), kinds
    # a DataExfil the aggregator folds (past its quota) is folded before it is made
    assert (kinds["unmade"] > 50) == (max_notices == 3), kinds


@needs_c
@settings(max_examples=examples(300), deadline=None)
@given(packets=traffic(), cuts=st.lists(st.integers(0, 80), max_size=6), max_pending=st.sampled_from([1, 2, 1000]),
       idle=st.sampled_from([1.0, 300.0]))
def test_both_agree_on_generated_traffic_a_batch_at_a_time(packets: list[IcmpPacket], cuts: list[int],
                                                           max_pending: int, idle: float) -> None:
    """FastPath.run keeps the detector's clock, flags and counters while it goes past packets and writes them back
    when it returns: generated traffic (times out of order, sweeps) cut into batches, through process_many, gives
    what the Python detector gives one packet at a time, batch after batch."""
    detection = dataclasses.replace(DetectionConfig(), max_pending_requests=max_pending, idle_timeout=idle)
    reference = Detector(detection, AllowlistConfig(), accelerated=False)
    fast = Detector(detection, AllowlistConfig())
    bounds = sorted({0, len(packets), *(cut for cut in cuts if cut < len(packets))})
    for start, end in itertools.pairwise(bounds):
        batch: list[IcmpPacket | None] = list(packets[start:end])
        want = [(i, notices, reference.last_novel) for i, pkt in enumerate(batch)
                if (notices := notice_values(reference.process(pkt))) or reference.last_novel]  # type: ignore[arg-type]
        got = [stop for stop in drive_many(fast, batch, set()) if stop[1] or stop[2]]
        assert got == want
        assert state(fast) == state(reference)


def check_listing(fast: Detector, reference: Detector, batch: list[IcmpPacket | None],
                  watched: set[tuple[bytes, bytes]], folding: NoticeAggregator,
                  reference_folding: NoticeAggregator) -> collections.Counter[str]:
    """process_many with `observed`, `folds` and `kept` over a batch against the reference one packet at a time and
    a model of what the pipeline would have done at each packet had it stopped there (the listing of
    test_process_many_lists_the_requests_with_novel_bytes_it_went_past): the same stops, notices kept, listing,
    folds and state after every call. What it saw, counted."""
    kinds: collections.Counter[str] = collections.Counter()
    index = 0
    folds, kept = folding.stop_hooks()  # the pipeline's: C functions, the filter one whose try_fold the C path asks
    unmade = fast._fast.unmade  # type: ignore[attr-defined]
    while index < len(batch):
        observed: list[int] = []
        start = index
        index, notices = fast.process_many(batch, index, watched, observed, folds, kept)
        expected, taken_as_watched = [], set(watched)
        for i in range(start, index):
            pkt = batch[i]
            if pkt is None:
                continue
            raised = reference.process(pkt)
            assert not (raised and reference_folding.filter(raised)), i  # gone past: nothing to write
            kinds["folded"] += bool(raised)
            pair = pair_key(pkt.src, pkt.dst)  # the recorder watches a ring's pair, both directions
            if reference.last_novel and not reference_folding.folds(reference.flow_uid(pkt.src, pkt.dst)):
                expected.append(~i)
                taken_as_watched.add(pair)
                kinds["novel"] += 1
                kinds["novel, notices folded"] += bool(raised)
            elif pair in taken_as_watched:
                expected.append(i)
                kinds["watched"] += 1
        assert observed == expected
        if index < len(batch):
            raised = reference.process(batch[index])  # type: ignore[arg-type]
            assert notice_values(notices) == notice_values(reference_folding.filter(raised) if raised else [])
            assert fast.last_novel == reference.last_novel
            kinds["stop"] += 1
            kinds["stop with notices"] += bool(notices)
            index += 1
        assert state(fast) == state(reference)
        assert folding.folded == reference_folding.folded
    kinds["unmade"] = fast._fast.unmade - unmade  # type: ignore[attr-defined]
    return kinds


def check_batches(packets: list[IcmpPacket], cuts: list[int], detection: DetectionConfig, max_notices: int,
                  watch: set[int]) -> None:
    """check_listing over the packets cut into batches at `cuts`, the pairs `watch` picks watched (of the packets'
    pairs in order), both aggregators with a quota of `max_notices`; what they tell at the end the same too."""
    reference = Detector(detection, AllowlistConfig(), accelerated=False)
    fast = Detector(detection, AllowlistConfig())
    folding = NoticeAggregator(60.0, max_notices, 2)
    reference_folding = NoticeAggregator(60.0, max_notices, 2, accelerated=False)
    pairs = sorted({pair_key(p.src, p.dst) for p in packets})
    watched = {pairs[k] for k in watch if k < len(pairs)}
    bounds = sorted({0, len(packets), *(cut for cut in cuts if cut < len(packets))})
    for start, end in itertools.pairwise(bounds):
        check_listing(fast, reference, list(packets[start:end]), watched, folding, reference_folding)
    assert notice_values(folding.flush()) == notice_values(reference_folding.flush())


@needs_c
@settings(max_examples=examples(300), deadline=None)
@given(packets=traffic(), cuts=st.lists(st.integers(0, 80), max_size=6), max_notices=st.integers(1, 3),
       watch=st.sets(st.integers(0, 5), max_size=3), threshold=st.sampled_from([0, 40, 256]))
def test_both_agree_on_generated_traffic_listed_and_folded(packets: list[IcmpPacket], cuts: list[int],
                                                          max_notices: int, watch: set[int], threshold: int) -> None:
    """Generated traffic (every way out of the C path, times that go back, sweeps) cut into batches, with watched
    pairs, notices that fall due within a few packets and an aggregator whose quota folds most of them: where the C
    path lists and folds (FastPath.run with observed, folds and kept; rarely in such traffic, most of whose packets
    Python takes: the flood tests above are where it does so most) it is what the pipeline would have done at each
    packet, and the detector and aggregator are the reference's after every call."""
    detection = dataclasses.replace(DetectionConfig(), novel_bytes_threshold=threshold,
                                    small_secret_bytes=threshold // 2, changed_requests_threshold=2)
    check_batches(packets, cuts, detection, max_notices, watch)


@st.composite
def floods(draw: st.DrawFn) -> list[IcmpPacket]:
    """Requests with novel bytes from many sources to a few targets, interleaved (a storm's, a flood's, an
    exfiltration's chunks): random payloads of random sizes, some sent again, some answered (by the kernel, or with
    other bytes), a few IPv6; times that mostly step forward, sometimes by a sweep or more."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    sources = draw(st.integers(2, 40))
    targets = ["10.1.0.80", "10.1.0.81", "2001:db8::80"][: draw(st.integers(1, 3))]
    ts, out, last = T0, [], {}
    for _ in range(draw(st.integers(1, 120))):
        ts += rng.choice([0.0, 0.001, 0.01, 0.3, 1.2])
        target = rng.choice(targets)
        src = f"10.7.0.{rng.randrange(sources) + 1}" if ":" not in target else f"2001:db8::{rng.randrange(sources) + 1}"
        seq = last.get((src, target), 0) + 1
        last[(src, target)] = seq
        payload = rng.randbytes(rng.randrange(0, 80)) if rng.random() < 0.8 else b"again" * 8
        request = corpus.echo(ts, src, target, True, 9, seq, payload) if ":" not in target else \
            IcmpPacket(ts, corpus.packed(src), corpus.packed(target), True, 128, 0, 9, seq, payload, 62 + len(payload))
        out.append(request)
        if rng.random() < 0.2:
            reply = corpus.kernel_reply(request) if ":" not in target else None
            if reply is not None:
                out.append(reply if rng.random() < 0.7 else dataclasses.replace(reply, payload=rng.randbytes(20)))
    return out


@needs_c
@settings(max_examples=examples(300), deadline=None)
@given(packets=floods(), cuts=st.lists(st.integers(0, 140), max_size=6), max_notices=st.integers(1, 3),
       max_flows=st.sampled_from([4, 100_000]), watch=st.sets(st.integers(0, 8), max_size=3))
def test_both_agree_on_generated_floods_listed_and_folded(packets: list[IcmpPacket], cuts: list[int],
                                                         max_notices: int, max_flows: int, watch: set[int]) -> None:
    """Generated floods (novel bytes from many sources, repeats, replies, IPv6, sweeps) cut into batches, with
    watched pairs, a small flow table or not and an aggregator whose quota folds most notices: the C path's listing
    and folding is what the pipeline would have done at each packet, and the detector and aggregator are the
    reference's after every call."""
    detection = dataclasses.replace(DetectionConfig(), max_flows=max_flows, max_pairs=max(max_flows, 8))
    check_batches(packets, cuts, detection, max_notices, watch)


@needs_c
def test_a_batch_whose_times_go_back_leaves_the_clock_at_its_latest() -> None:
    """The clock FastPath.run keeps moves only forward: a request stamped before the batch's latest packet (capture
    order is not time order on a SPAN port) leaves it there, and the counters count each packet once."""
    requests = [corpus.echo(T0 + 0.1 * i, HOSTS[0], HOSTS[1], True, 7, i + 1, POOL[1]) for i in range(6)]
    requests[5] = dataclasses.replace(requests[5], ts=T0 + 0.05)  # in step, the last, stamped before four others
    reference = Detector(DetectionConfig(), AllowlistConfig(), accelerated=False)
    for pkt in requests:
        reference.process(pkt)
    fast = Detector(DetectionConfig(), AllowlistConfig())
    stops = drive_many(fast, list(requests), set())
    assert [index for index, _, _ in stops] == [0], "the flow's first request is Python's, then one run"
    assert fast.now == reference.now == T0 + 0.4
    assert state(fast) == state(reference)


@needs_c
def test_the_c_path_leaves_every_packet_to_python_when_the_detectors_state_is_not_its_own() -> None:
    """A clock that is not a float (or tables that are not dicts): FastPath reads the detector's state once a call,
    and then declines the call's first packet, changing nothing."""
    packets = [*timed_ping("iputils", 4, 56)]
    fast = Detector(DetectionConfig(), AllowlistConfig())
    drive_many(fast, packets[:3], set())
    fast._next_sweep = int(fast._next_sweep)  # type: ignore[assignment]
    before = state(fast)
    assert fast._fast.run([None, packets[3]], 0, set()) == (1, False)  # type: ignore[union-attr]
    assert fast._fast.handle(packets[3]) is False  # type: ignore[union-attr]
    assert state(fast) == before


@needs_c
def test_fastpath_run_checks_its_arguments() -> None:
    fast = Detector(DetectionConfig(), AllowlistConfig())._fast
    for args in [((), 0, set()), ([], "0", set()), ([], 0, []), ([], 0)]:
        with pytest.raises(TypeError):
            fast.run(*args)  # type: ignore[attr-defined]
    assert fast.run([None, None], 5, set()) == (2, None)  # type: ignore[attr-defined]
    assert fast.run([None], -3, frozenset()) == (1, None)  # type: ignore[attr-defined]
    for accelerated in (True, False):  # the Python reference the same
        detector = Detector(DetectionConfig(), AllowlistConfig(), accelerated=accelerated)
        assert detector.process_many([None, None], 5, set()) == (2, None)
        assert detector.process_many([None], -3, set()) == (1, None)


# -- the pipeline's loop with the detector's C path, against it without -------------------------------------------


def replay_with(path: Path, log_dir: Path, accelerated: bool,
                evidence: bool = True) -> tuple[list[Notice], list[bytes], dict, object]:
    """The capture through the product's replay with evidence on; `accelerated` False takes the detector's C path
    away (Detector.process_many then hands the pipeline one packet at a time, each processed in Python). The
    notices (without uid and evidence path), the evidence files' contents, the evidence counters and the detector's
    counters."""
    cfg = Config()
    cfg.output.log_dir = str(log_dir)
    cfg.output.evidence.enabled = evidence
    cfg.detection = dataclasses.replace(cfg.detection, max_flows=200, max_pairs=100)  # evictions under load
    sink = ListSink()
    pipeline = Pipeline(cfg, [sink])  # type: ignore[list-item]
    pipeline.detector = Detector(cfg.detection, cfg.allowlist, accelerated=accelerated)
    replay_pipeline(pipeline, [str(path)])
    pipeline.close()
    evidence = sorted(p.read_bytes() for p in log_dir.rglob("*") if p.is_file() and p.suffix in (".pcap", ".bin"))
    stats = pipeline.stats()
    return [n.replace(uid="", evidence="") for n in sink.notices], evidence, stats["evidence"], pipeline.detector.stats  # type: ignore[return-value]


@needs_c
@pytest.mark.parametrize("kind", ["mix", "novel_mix", "storm", "novel_flood", "jumbo_fragments", "tiny_fragments"])
def test_the_pipeline_gives_the_same_with_the_detectors_c_path_and_without(kind: str, tmp_path: Path) -> None:
    """The pipeline hands the detector a batch's packets at once (Detector.process_many: the C path goes on until
    a packet needs more than counting, or is of a pair the evidence recorder watches): the same notices, evidence
    files and counters as one packet at a time through the Python detector; fragments' messages too."""
    path = tmp_path / "capture.pcap"
    synthmix.generate(path, packets=20_000, seed=11, kind=kind)
    runs = []
    for accelerated in (True, False):
        (tmp_path / str(accelerated)).mkdir()
        runs.append(replay_with(path, tmp_path / str(accelerated), accelerated))
    (notices, evidence, evidence_stats, stats), want = runs[0], runs[1]
    # the tiny-fragment flood raises nothing: it is here for its abandoned datagrams' messages, which the
    # pipeline detects out of frame order (Decoder.due)
    assert (notices and evidence) or kind == "tiny_fragments", "the capture must make notices and evidence"
    assert (notices, evidence, evidence_stats, stats) == want


@needs_c
@pytest.mark.parametrize("before", [0, 3], ids=["novel from the first request", "after three pings"])
def test_the_reply_after_the_request_that_starts_a_pairs_ring_is_in_its_evidence(before: int, tmp_path: Path) -> None:
    """The evidence recorder's ring for a pair starts at its first request with novel bytes and takes both
    directions from then on: the reply after it, which the C path takes in the same call (a reply that repeats its
    request, on a flow the table has or a new one; other pairs' packets between them), is listed for the recorder
    too, as the reference shows it; the evidence files are the same with the C path and without."""
    packets: list[tuple[float, bytes]] = []
    for i in range(6):  # interleaved pairs, as a sensor sees them
        src, dst, start = f"192.0.2.{i + 1}", f"198.51.100.{i + 1}", 1000.0 + i * 0.013
        for k in range(before):  # a health check's pings first: both flows made
            ping = b"health-check 0123456789abcdefghij"
            packets += [(start + 0.1 * k, craft.icmp4(src, dst, craft.ECHO_REQUEST, 0, 9, k, ping)),
                        (start + 0.1 * k + 0.01, craft.icmp4(dst, src, craft.ECHO_REPLY, 0, 9, k, ping))]
        packets += [(ts, ip) for ts, ip in cli.exfil_packets(src, dst, count=8, start=start + 0.1 * before)]
    path = tmp_path / "exchanges.pcap"
    craft.write_pcap(path, [(ts, craft.ether(ip)) for ts, ip in sorted(packets)])
    runs = []
    for accelerated in (True, False):
        (tmp_path / str(accelerated)).mkdir()
        runs.append(replay_with(path, tmp_path / str(accelerated), accelerated))
    (notices, evidence, evidence_stats, _), (want, want_evidence, want_stats, _) = runs
    assert want and want_evidence and want_stats["packets"] >= 6 * 16  # type: ignore[index]
    assert (notices, evidence, evidence_stats) == (want, want_evidence, want_stats)


CHANNEL_NAMES = ["length", "seq", "ident", "clock", "pattern", "options", standard.PAYLOAD_CHANNEL,
                 standard.NONECHO_CHANNEL, "a", "b"]


@needs_c
@given(st.data())
@settings(max_examples=examples(400), deadline=None)
def test_the_channels_a_notice_made_in_c_names_are_channel_bytes(data: st.DataObject) -> None:
    """_fastflows.channel_tags, the channels the C path's notices name as having carried a flow's novel bytes,
    against Detector._tags (its reference: channel_bytes, and the names it joins): random flows whose bytes were
    charged to header fields (ties in bytes, zero, more than the flow's novel bytes, a field named as the payload's or
    the non-echo messages' channel), came in non-echo messages, or neither; None (the notices Python's) where a field
    is not the reference's type."""
    charged = st.one_of(st.none(), st.dictionaries(st.sampled_from(CHANNEL_NAMES),
                                                   st.one_of(st.integers(0, 4), st.integers(-5, 2**70)), max_size=6))
    state = data.draw(st.one_of(st.none(), st.builds(capacity.FlowChannels, charged=charged)))
    flow = Flow(corpus.packed("10.0.0.1"), corpus.packed("10.0.0.2"), T0, T0, False,
                novel_bytes=data.draw(st.one_of(st.integers(-3, 40), st.integers(-10, 2**70))),
                nonecho_novel=data.draw(st.one_of(st.just(0), st.integers(0, 2**40))), channels=state)
    carried, _, names = Detector(DetectionConfig(), AllowlistConfig())._tags(flow)
    tags = standard._fastflows.channel_tags
    assert tags(flow, standard.PAYLOAD_CHANNEL, standard.NONECHO_CHANNEL) == (carried, names)
    if state is not None:
        state.charged = {"length": 1.5}
        assert tags(flow, standard.PAYLOAD_CHANNEL, standard.NONECHO_CHANNEL) is None
    flow.channels, flow.tool = None, None  # type: ignore[assignment]
    assert tags(flow, standard.PAYLOAD_CHANNEL, standard.NONECHO_CHANNEL) is None


@needs_c
@pytest.mark.parametrize("kind", ["storm", "novel_flood", "novel_mix"])
def test_the_pipeline_gives_the_same_with_the_detectors_c_path_and_without_evidence_off(kind: str,
                                                                                         tmp_path: Path) -> None:
    """The same with evidence off (the C path lists for nobody what it goes past, and folds as it raises)."""
    path = tmp_path / "capture.pcap"
    synthmix.generate(path, packets=20_000, seed=12, kind=kind)
    runs = []
    for accelerated in (True, False):
        (tmp_path / str(accelerated)).mkdir()
        runs.append(replay_with(path, tmp_path / str(accelerated), accelerated, evidence=False))
    (notices, evidence, _, stats), (want, _, _, want_stats) = runs
    assert notices and not evidence and (notices, stats) == (want, want_stats)


ADDRESSES = [craft.addr(text) for text in ("192.0.2.1", "0.0.0.0", "255.255.255.255", "10.9.8.7", "2001:db8::1",
                                           "::ffff:192.0.2.7", "::192.0.2.8", "fe80::1:2", "::")]


@needs_c
@given(st.data())
@settings(max_examples=examples(300), deadline=None)
def test_a_notice_made_in_c_is_the_one_python_makes(data: st.DataObject) -> None:
    """detect/_fastflows.c flow_notice against the Notice statement of FlowDetector._notice (its reference): every
    field, the rendered msg and sub, and the deferred text's snapshot, for random flows of both profiles (the
    original's notices carry no novel bytes), IPv4 and IPv6 addresses (the IPv4-mapped and -compatible ones Python
    writes apart from inet_ntop), any note and template with its fields."""
    ints = st.integers(min_value=0, max_value=2**40)
    # any IPv4 address too: the C path keeps the last one's text (a storm's notices name one target)
    address = st.one_of(st.sampled_from(ADDRESSES), st.binary(min_size=4, max_size=4))
    flow = Flow(data.draw(address), data.draw(address),
                data.draw(st.floats(1e9, 2e9)), data.draw(st.floats(1e9, 2e9)), data.draw(st.booleans()),
                n=data.draw(ints), orig_bytes=data.draw(ints), resp_bytes=data.draw(ints), other_bytes=data.draw(ints),
                received_bytes=data.draw(ints), changed_requests=data.draw(ints), reply_differs=data.draw(ints),
                novel_bytes=data.draw(ints), nonecho_novel=data.draw(st.integers(0, 100)),
                tool=data.draw(st.sampled_from(["", "ptunnel", "icmptunnel"])), tool_evidence="magic 0xd5200880",
                nonecho_reason=data.draw(st.sampled_from(["", "timestamp reply's times"])),
                icmp_type=data.draw(st.integers(-1, 255)), icmp_code=data.draw(st.integers(-1, 255)))
    note, msg, fields = data.draw(st.sampled_from([
        ("ICMP::ICMP_DataExfil", standard.EXFIL_MSG, None),
        ("ICMP::ICMP_ExfilSummary", standard.SUMMARY_MSG, None),
        ("ICMP::ICMP_Tunnel", standard.TUNNEL_MSG, None),
        ("ICMP::ICMP_NonEchoPayload", standard.NONECHO_MSG, None),
        ("ICMP::ICMP_SlowExfil", standard.SLOW_MSG, {"total": "1.00 MB", "hours": 24.0}),
    ]))
    ts = data.draw(st.floats(1e9, 2e9))
    detectors = [Detector(DetectionConfig(), AllowlistConfig()), Detector(DetectionConfig(), AllowlistConfig(),
                                                                           accelerated=False)]
    if data.draw(st.booleans()):
        detectors = [Original(DetectionConfig(), AllowlistConfig()), Original(DetectionConfig(), AllowlistConfig())]
        detectors[1]._fast_notice = None
    fast, reference = detectors
    assert fast._fast_notice is not None and reference._fast_notice is None
    got = fast._notice(flow, ts, note, msg, fields)
    flow_after = dataclasses.replace(flow)
    want = reference._notice(flow, ts, note, msg, fields)
    assert flow == flow_after  # the uid was made by the first
    assert got._text.values == want._text.values and got._text.fields == want._text.fields  # type: ignore[union-attr]
    assert got.values() == want.values() and got.msg == want.msg and got.sub == want.sub
    assert fast.stats.notices == reference.stats.notices == 1


@needs_c
def test_each_notice_names_its_own_addresses_in_turn() -> None:
    """The C path keeps the last IPv4 address's text: notices in turn whose addresses differ in one byte (each
    place), or repeat, each name theirs as addr_text writes it."""
    base = bytes((198, 51, 100, 7))
    variants = [base] + [base[:i] + bytes(((base[i] + 1) % 256,)) + base[i + 1:] for i in range(4)]
    sequence = [*variants, base, base[:3] + bytes(1), base, *reversed(variants), bytes(4), b"\xff" * 4, bytes(4)]
    detector = Detector(DetectionConfig(), AllowlistConfig())
    assert detector._fast_notice is not None
    for src, dst in itertools.pairwise(sequence):
        notice = detector._notice(Flow(src, dst, T0, T0, False), T0, "ICMP::ICMP_DataExfil", standard.EXFIL_MSG)
        assert (notice.src, notice.dst) == (addr_text(src), addr_text(dst))


@functools.cache
def explained_payloads() -> dict[str, list[tuple[bytes, float]]]:
    """Payloads explain explains, by template, each with a time it explains it at: the benign corpus's echo payloads
    at their packets' times; the timed layouts above at sizes around their bounds, in 2001 and in 2026 (a clock's
    high word is past MAX_UPTIME now: pro-bing's nanoseconds no longer read as FreeBSD's seconds since boot); iputils
    -p patterns shorter than a timestamp, of bytes that read as no clock; FreeBSD's seconds since boot near
    fingerprints.MAX_UPTIME."""
    cases = {(p.payload, p.ts) for make in benign_corpus.BENIGN_CASES.values() for p in make() if p.ident >= 0}
    for make in LAYOUTS.values():
        for when in (T0, 1_780_000_000.25):
            cases.update((make(when - 0.013, size), when) for size in (8, 15, 16, 23, 24, 56, 100))
    for pattern in (b"\xf1\xf2\xf3", b"\xe1\xe2\xe3\xe4\xe5", b"\xd0\xd1"):
        cases.update(((pattern * 8)[:size], T0) for size in range(8, 16))
    for nanoseconds in range(1_780_000_000_123_456_701, 1_780_000_000_123_456_709):  # Go's clock: any low byte
        cases.update((struct.pack(">q", nanoseconds) + TRACKER + b"\x01" * (size - 24), 1_780_000_000.2)
                     for size in (24, 56))
    uptime = fingerprints.MAX_UPTIME
    cases.update((struct.pack(">II", sec, 500) + bytes(range(8, 56)), T0) for sec in (0, 1, uptime - 1, uptime))
    # -p patterns of 1 to MAX_PATTERN bytes after each clock (iputils lays its pattern from byte 0, BSD ping from
    # byte 8), a 32-bit iputils' timeval, BusyBox's -p byte, and payloads just long enough for a pattern twice
    rng = random.Random(17)
    for length in (1, 2, 3, 7, fingerprints.MAX_PATTERN):
        pattern = rng.randbytes(length)
        for size in (17, 24, 8 + 2 * length, 16 + 2 * length, 56, 100):
            laid = (pattern * 200)[:size]
            sec, usec = int(T0 - 0.013), round((T0 - 0.013) % 1 * 1e6)
            cases.update([(iputils(T0 - 0.013, size, laid[16:]), T0), (bsd(T0 - 0.013, size, laid[:size - 8]), T0),
                          (struct.pack("<II", sec, usec) + laid[8:], T0),
                          (struct.pack(">II", 1000, 5000) + laid[:size - 8], T0)])
    cases.update((busybox(T0, size, bytes([fill]) * size), T0) for fill in (0x7E, 0xFF) for size in (16, 56))
    cases.update((struct.pack("<II", int(T0), 250_000) + bytes(range(8, size)), T0) for size in (16, 56))
    by_template: dict[str, list[tuple[bytes, float]]] = {}
    for payload, ts in sorted(cases):
        benign = fingerprints.explain(payload, ts)
        if benign is not None:
            by_template.setdefault(benign.template, []).append((payload, ts))
    return by_template


GATE = (fingerprints.MAX_UPTIME, fingerprints.MAX_PATTERN)  # explain_may_match's bounds: explain's


@needs_c
def test_explain_is_only_left_out_where_no_template_can_take_the_payload() -> None:
    """The C path calls fingerprints.explain for a reported chunk only where one of its templates' first tests
    passes (_fastflows.explain_may_match): wherever explain finds a template, the gate lets it through — every
    template's payloads (all of them that the corpus and the layouts above hold)."""
    by_template = explained_payloads()
    assert len(by_template) >= 12, sorted(by_template)  # each template explain knows, or nearly
    for template, cases in by_template.items():
        missed = [payload for payload, _ in cases
                  if not standard._fastflows.explain_may_match(payload, *GATE)]
        assert not missed, (template, missed[:3])


@needs_c
@settings(max_examples=examples(600), deadline=None)
@given(case=st.integers(0, 10**6), at=st.integers(0, 199), byte=st.integers(0, 255), offset=st.floats(-400.0, 400.0),
       random_payload=st.binary(max_size=200))
def test_explain_is_only_left_out_where_no_template_can_take_a_changed_payload(case: int, at: int, byte: int,
                                                                              offset: float,
                                                                              random_payload: bytes) -> None:
    """The same on a template's payload with a byte changed, at another time, and on random payloads."""
    exemplars = [cases[case % len(cases)] for cases in explained_payloads().values()]
    payload, ts = exemplars[case % len(exemplars)]
    changed = payload[:at] + bytes([byte]) + payload[at + 1 :]
    for candidate, when in ((changed, ts), (changed, ts + offset), (random_payload, T0 + offset)):
        if fingerprints.explain(candidate, when) is not None:
            assert standard._fastflows.explain_may_match(candidate, *GATE), candidate


@needs_c
def test_explain_is_not_shown_random_bytes() -> None:
    """Random payloads (a storm's, a flood's: 16 to 1,500 bytes) pass the gate almost never: each template's test
    of its fill after the clock (the default fill or a -p pattern, one byte repeated, pro-bing's 0x01), not only
    its first bytes, is the gate's."""
    rng = random.Random(9)
    payloads = [rng.randbytes(rng.randrange(16, 1501)) for _ in range(20_000)]
    passed = [p for p in payloads if standard._fastflows.explain_may_match(p, *GATE)]
    assert len(passed) <= 4, len(passed)


ALNUM = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@needs_c
@settings(max_examples=examples(600), deadline=None)
@given(text=st.binary(max_size=80).map(lambda raw: bytes(ALNUM[b % len(ALNUM)] for b in raw)),
       upper=st.booleans(), at=st.integers(0, 79), byte=st.integers(0, 255), seq=st.sampled_from([0, 1, 5, 63, 256]),
       random_payload=st.binary(max_size=80))
def test_random_padding_is_only_left_out_where_no_layout_can_take_the_payload(text: bytes, upper: bool, at: int,
                                                                              byte: int, seq: int,
                                                                              random_payload: bytes) -> None:
    """The C path calls capacity.random_padding only where _fastflows.padding_may_match lets the payload through:
    wherever random_padding finds icmplib's or pythonping's layout, the gate does — on letters and digits (of both
    layouts' sizes and others; pythonping's capitals and digits), with a byte changed, and on random payloads. And
    it stops a payload of any other byte."""
    text = text.upper() if upper else text
    changed = text[:at] + bytes([byte]) + text[at + 1 :]
    for candidate in (text, text[:56], (text * 2)[:56], changed, random_payload):
        if capacity.random_padding(candidate, seq):
            assert standard._fastflows.padding_may_match(candidate), candidate
    assert standard._fastflows.padding_may_match(text) == bool(text)
    assert not standard._fastflows.padding_may_match(changed) or byte in ALNUM or at >= len(text)


@needs_c
def test_random_padding_is_not_called_for_a_floods_random_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A novel-payload flood's requests (random bytes) are not shown to capacity.random_padding; icmplib's requests
    are (each a call), and their novel bytes and notices are the reference's."""
    flood = [p for p in novel_flood(60, 4) if p is not None and p.src.startswith(corpus.packed("10.7.0.0")[:2])]
    rng = random.Random(8)
    icmplib = [corpus.echo(T0 + 10 + 0.1 * i, "10.0.0.1", "10.0.0.2", True, 7, i % 5,
                           bytes(rng.choice(ALNUM) for _ in range(56))) for i in range(40)]
    reference = Detector(DetectionConfig(), AllowlistConfig(), accelerated=False)
    want = [notice_values(reference.process(p)) for p in [*flood, *icmplib]]
    calls: list[bytes] = []
    real = capacity.random_padding

    def counted(payload: bytes, seq: int) -> bool:
        calls.append(payload)
        return real(payload, seq)

    monkeypatch.setattr(capacity, "random_padding", counted)
    fast = Detector(DetectionConfig(), AllowlistConfig())
    got = [notice_values(fast.process(p)) for p in flood]
    assert len(flood) == 180 and fast.stats.novel_bytes > 0 and not calls, calls[:3]
    got += [notice_values(fast.process(p)) for p in icmplib]
    assert len(calls) >= 40 and got == want and state(fast) == state(reference)


def explain_calls(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The payloads fingerprints.explain is called with from now on (it still answers)."""
    calls: list[bytes] = []
    real = fingerprints.explain

    def counted(payload: bytes, *args: object, **kwargs: object) -> object:
        calls.append(payload)
        return real(payload, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(fingerprints, "explain", counted)
    return calls


@needs_c
def test_a_reported_chunk_that_no_template_can_take_is_not_shown_to_explain(monkeypatch: pytest.MonkeyPatch) -> None:
    """Random chunks: explain is called for the few a template's first tests let through, not for each."""
    calls = explain_calls(monkeypatch)
    payloads = chunks(200, 512)
    requests = [corpus.echo(T0 + 0.001 * i, "10.0.0.1", "10.0.0.2", True, 7, i + 1, p) for i, p in enumerate(payloads)]
    detector = Detector(DetectionConfig(), AllowlistConfig())
    for request in requests:
        detector.process(request)
    taken = payloads[20:]  # the reported flow's chunks, which the C path takes
    shown = [p for p in taken if p in calls]
    assert len(shown) == sum(1 for p in taken if standard._fastflows.explain_may_match(p, *GATE))
    assert len(shown) < len(taken) // 5, len(shown)


@needs_c
def test_a_new_flows_random_payload_is_not_shown_to_explain(monkeypatch: pytest.MonkeyPatch) -> None:
    """A notice storm's flows, one random request from each of 300 sources, which the Python path takes (a new
    flow): it too calls explain only where the gate lets the payload through (the reference, accelerated=False,
    calls it for each)."""
    calls = explain_calls(monkeypatch)
    payloads = chunks(300, 500)
    requests = [corpus.echo(T0 + 0.001 * i, f"10.1.{i // 200}.{i % 200 + 1}", "10.0.0.2", True, 7, 1, p)
                for i, p in enumerate(payloads)]
    detector = Detector(DetectionConfig(), AllowlistConfig())
    for request in requests:
        detector.process(request)
    assert len(calls) == sum(1 for p in payloads if standard._fastflows.explain_may_match(p, *GATE))
    assert len(calls) < len(payloads) // 5, len(calls)
    calls.clear()
    reference = Detector(DetectionConfig(), AllowlistConfig(), accelerated=False)
    for request in requests:
        reference.process(request)
    assert len(calls) == len(payloads)


# -- a new flow made in C --------------------------------------------------------------------------------------


@needs_c
@settings(max_examples=examples(300), deadline=None)
@given(src=st.binary(min_size=4, max_size=16), dst=st.binary(min_size=4, max_size=16),
       ts=st.floats(allow_nan=False, allow_infinity=False), allowlisted=st.booleans(),
       icmp_type=st.integers(-1, 255), icmp_code=st.integers(-1, 255))
def test_a_new_flow_made_in_c_is_the_one_flow_makes(src: bytes, dst: bytes, ts: float, allowlisted: bool,
                                                     icmp_type: int, icmp_code: int) -> None:
    """_fastflows.new_flow (a storm makes one per packet): a Flow whose fields are the dataclass __init__'s, the
    given ones and every default (the reference: Flow(...)), the template left as it was."""
    from icmpsensor.detect import flows

    made = flows._fastflows.new_flow(flows.NEW_FLOW, src, dst, ts, allowlisted, icmp_type, icmp_code)
    want = Flow(src, dst, ts, ts, allowlisted, icmp_type=icmp_type, icmp_code=icmp_code)
    assert type(made) is Flow
    assert [getattr(made, f.name) for f in dataclasses.fields(Flow)] == \
        [getattr(want, f.name) for f in dataclasses.fields(Flow)]
    made.n += 1
    made.tool = "x"
    assert Flow(b"", b"", 0.0, 0.0, False) == flows.NEW_FLOW
    with pytest.raises(TypeError):
        flows._fastflows.new_flow(object(), src, dst, ts, allowlisted, icmp_type, icmp_code)


@needs_c
def test_the_detector_makes_its_new_flows_in_c(monkeypatch: pytest.MonkeyPatch) -> None:
    """The flow of a new pair is made by _fastflows.new_flow, not the dataclass __init__ (which the reference,
    accelerated=False, runs)."""
    from icmpsensor.detect import flows

    made: list[object] = []
    real = flows.Flow

    def counted(*args: object, **kwargs: object) -> object:
        made.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(flows, "Flow", counted)
    requests = [corpus.echo(T0 + i, f"10.2.0.{i + 1}", "10.0.0.2", True, 7, 1, bytes([i]) * 64) for i in range(5)]
    detector = Detector(DetectionConfig(), AllowlistConfig())
    for request in requests:
        detector.process(request)
    assert len(detector._flows) == 5 and made == []
    reference = Detector(DetectionConfig(), AllowlistConfig(), accelerated=False)
    for request in requests:
        reference.process(request)
    assert len(made) == 5


def size_changing(shape: str, sources: int = 30, rounds: int = 6, seed: int = 12) -> list[IcmpPacket]:
    """Each of `sources` senders sends `rounds` requests in step (one identifier, sequence one up) to one target,
    the senders interleaved 1 ms apart, each payload of a size the flow did not send last:
    random   random bytes of a random size (16-64: the bench's novel-payload flood)
    creep    one byte longer each time (1 bit of length a request: the flow's carried bits make a byte every 8)
    swing    two sizes in turn (a path MTU probe's: the size before the last is free)
    jump     sizes far apart (up to 16 bits a request)
    resent   a payload the sender sent to the target before, at another size in between (its bytes not novel:
             only what the length carried)
    big      2,000 random bytes and more (the flow passes novel_bytes_threshold, and its evaluation is quiet)"""
    rng = random.Random(seed)
    size_of = {
        "random": lambda k, i: rng.randint(16, 64),
        "creep": lambda k, i: 40 + i,
        "swing": lambda k, i: 500 if i % 2 else 1400,
        "jump": lambda k, i: [8, 60000, 20, 30000, 100, 9000][i % 6],
        "resent": lambda k, i: [100, 200, 300][i % 3],
        "big": lambda k, i: 2000 + 37 * i,
    }[shape]
    kept: dict[tuple[int, int], bytes] = {}
    packets = []
    for i in range(rounds):
        for k in range(sources):
            size = size_of(k, i)
            payload = kept.get((k, size)) if shape == "resent" and i >= 2 else None
            payload = payload or rng.randbytes(size)
            kept[(k, size)] = payload
            packets.append(corpus.echo(T0 + (i * sources + k) * 1e-3, f"100.64.2.{k + 1}", "10.1.0.90", True,
                                       500 + k, 1 + i, payload))
    return packets


@needs_c
@pytest.mark.parametrize("shape", ["random", "creep", "swing", "jump", "resent", "big"])
def test_a_request_whose_size_changes_in_step_takes_the_c_path(shape: str) -> None:
    """A request in step whose size changes (a novel-payload flood's: capacity.request_header charges the length) is
    taken by the C path: its flow's capacity state (made if new), the size before the last, the length's bits with
    the flow's carried bits, the whole bytes charged and added (with their share of the hosts' memories) before the
    payload's; the same notices and state after every packet as the reference's."""
    packets = size_changing(shape)
    counting = run_both(packets)
    later = [counting.answers[id(p)] for p in packets[30:]]
    assert later.count("declined") == 0, later


@needs_c
@pytest.mark.parametrize(("note", "bytes_at"), [("ICMP::ICMP_DataExfil", k) for k in range(599, 609)]
                         + [("ICMP::ICMP_ExfilSpread", k) for k in range(1801, 1823, 3)])
def test_what_a_new_size_alone_carries_is_evaluated_and_shared(note: str, bytes_at: int) -> None:
    """A sender that sends a payload again at another size (three sizes in turn: none is the size before the last):
    no novel bytes in the payload (the sender's recent payloads), but its length charged. The bytes the size alone
    carried are evaluated (DataExfil, past a novel_bytes_threshold the flow crosses on such a request, raised in C
    with its two channels, the length's and the payload's) and given their share of the hosts' memories (ExfilSpread,
    past a spread_min_bytes crossed on such a request, the flow's own evaluation quiet); each note raised by the same
    packet as the reference's."""
    if note == "ICMP::ICMP_DataExfil":
        detection = dataclasses.replace(DetectionConfig(), novel_bytes_threshold=bytes_at, small_secret_bytes=0)
    else:
        quiet = dataclasses.replace(DetectionConfig().notices, data_exfil=False, slow_exfil=False,
                                    asym_payload_flow=False, asym_payload=False)
        detection = dataclasses.replace(DetectionConfig(), notices=quiet, novel_bytes_threshold=100_000,
                                        spread_min_peers=2, spread_min_bytes=bytes_at)
    packets = size_changing("resent", sources=3, rounds=12)
    reference = Detector(detection, AllowlistConfig(), accelerated=False)
    by_size_alone = []
    for i, pkt in enumerate(packets):
        flow = reference._flows.get((pkt.src, pkt.dst))
        before = (flow.changed_requests, flow.novel_bytes) if flow else (0, 0)
        raised = note in [n.note for n in reference.process(pkt)]
        flow = reference._flows[(pkt.src, pkt.dst)]
        if raised and flow.changed_requests == before[0] and flow.novel_bytes > before[1]:
            by_size_alone.append(i)
    assert by_size_alone, "the case must raise the note on a request whose size alone carried bytes"
    counting = run_both(packets, detection)
    # DataExfil due alone, raised in C (its channels the length's and the payload's); ExfilSpread raised by the
    # share, the flow's evaluation quiet: both handed out
    assert [counting.answers[id(packets[i])] for i in by_size_alone] == ["handed out"] * len(by_size_alone)


@needs_c
@pytest.mark.parametrize("limit", ["none", "full table", "pair memory"])
def test_a_flows_evaluation_that_would_raise_nothing_is_left_out(limit: str) -> None:
    """A novel-payload flood's flows (four requests of 16-64 random bytes from each spoofed source): a request after
    which the flow's evaluation would raise nothing (DataExfil's threshold and its small secret not reached, no other
    note due, no pair memory for SlowExfil to read) is the C path's alone ("novel"), the first request of a new flow
    too, also with a full flow table (the eviction after it made in C); one after which DataExfil is due alone has it
    raised in C ("handed out", the length's channel beside the payload's). With the pairs' memories (each flow ended,
    idle, and its pair back) a request whose flow's SlowExfil is due is evaluated."""
    detection = DetectionConfig()
    packets = size_changing("random", sources=40, rounds=4)
    if limit == "full table":
        detection = dataclasses.replace(detection, max_flows=10)
    elif limit == "pair memory":
        detection = dataclasses.replace(detection, idle_timeout=0.02, small_secret_bytes=0, slow_exfil_min_bytes=150)
        packets = [dataclasses.replace(p, ts=p.ts + 0.5 * (i // 40)) for i, p in enumerate(packets)]
    reference = Detector(detection, AllowlistConfig(), accelerated=False)
    notes = [[n.note for n in reference.process(p)] for p in packets]
    counting = run_both(packets, detection)
    taken = [counting.answers[id(p)] for p in packets]
    if limit != "pair memory":  # a first request handed out where its share raised ExfilSpread (the 24th source's)
        assert taken[:40] == ["handed out" if notes[i] else "novel" for i in range(40)], taken
        exfil = [i for i in range(40, len(packets)) if notes[i] == ["ICMP::ICMP_DataExfil"]]
        assert exfil and {taken[i] for i in exfil} == {"handed out"} and "novel" in taken[40:], taken
    else:
        slow = [i for i in range(120, 160) if "ICMP::ICMP_SlowExfil" in notes[i]]
        assert slow and {taken[i] for i in slow} == {"evaluated"}, (slow, taken)


@needs_c
def test_a_small_secret_whose_second_part_is_a_size_is_raised() -> None:
    """DataExfil's small secret counts the bytes charged to a header field as a second payload (_not_one_payload):
    a sender's 2,000-byte request to the target (one payload, past small_secret_bytes), then in step a payload it sent
    to another host lately (no novel bytes) of 8 bytes (the size's 11 bits: one byte charged to the length). The
    second request raises DataExfil, as the reference's (in C: its channels the payload's and the length's)."""
    detection = dataclasses.replace(DetectionConfig(), novel_bytes_threshold=100_000, small_secret_payloads=3)
    rng = random.Random(21)
    first, again = rng.randbytes(2000), rng.randbytes(8)
    packets = [corpus.echo(T0, "10.0.0.1", "10.0.0.9", True, 7, 1, again),
               corpus.echo(T0 + 0.1, "10.0.0.1", "10.0.0.2", True, 7, 1, first),
               corpus.echo(T0 + 0.2, "10.0.0.1", "10.0.0.2", True, 7, 2, again)]
    reference = Detector(detection, AllowlistConfig(), accelerated=False)
    notes = [[n.note for n in reference.process(p)] for p in packets]
    assert notes[1:] == [[], ["ICMP::ICMP_DataExfil"]], notes
    assert reference._flows[(packets[2].src, packets[2].dst)].changed_requests == 1
    counting = run_both(packets, detection)
    assert counting.answers[id(packets[2])] == "handed out", counting.answers


@needs_c
@pytest.mark.parametrize("case", ["storm", "chunks", "with another note", "charged", "non-echo", "allowlisted",
                                  "off"])
def test_a_dataexfil_due_is_raised_in_c(case: str) -> None:
    """Where the flow's evaluation would raise DataExfil (its bytes past novel_bytes_threshold), the C path raises it
    as _raise does (the flow's alerted bit, reported_until, its uid, the notice made by flow_notice with
    channel_bytes' channels, the detector's notices counted), and any other note due with it, and Detector._finish
    only hands them out: a storm's first requests, a file's chunk that crosses the threshold, AsymPayloadFlow due with
    it (after the first changed request), chunks whose sizes carried bytes too or after a non-echo message's
    (channel_bytes names two channels). Where the flow is allowlisted or DataExfil is off, nothing is raised. The same
    notices and state after every packet as the reference's."""
    detection, allowlist = DetectionConfig(), AllowlistConfig()
    packets = storm(60)
    if case == "chunks":
        packets = [corpus.echo(T0 + 0.01 * i, "10.0.0.1", "10.0.0.2", True, 7, i + 1, p)
                   for i, p in enumerate(chunks(12, 100))]
    elif case == "with another note":
        detection = dataclasses.replace(detection, changed_requests_threshold=0)
    elif case == "non-echo":  # a timestamp request's 40 bytes first (NonEchoPayload), then the chunks
        other = IcmpPacket(T0 - 1, corpus.packed("10.0.0.1"), corpus.packed("10.0.0.2"), False, 13, 0, -1, -1,
                           random.Random(3).randbytes(40), 82)
        packets = [other, *[corpus.echo(T0 + 0.01 * i, "10.0.0.1", "10.0.0.2", True, 7, i + 1, p)
                            for i, p in enumerate(chunks(6, 100))]]
    elif case == "charged":  # sizes that carry a byte each: the flow crosses the threshold with two channels
        detection = dataclasses.replace(detection, small_secret_bytes=0)
        packets = size_changing("jump", sources=5, rounds=6)
    elif case == "allowlisted":
        allowlist = AllowlistConfig(hosts=(ipaddress.ip_network("100.64.0.0/24"),))
    elif case == "off":
        detection = dataclasses.replace(detection, notices=dataclasses.replace(detection.notices, data_exfil=False))
    reference = Detector(detection, allowlist, accelerated=False)
    notes = [[n.note for n in reference.process(p)] for p in packets]
    counting = run_both(packets, detection, allowlist)
    taken = [counting.answers[id(p)] for p in packets]
    exfil = [i for i, names in enumerate(notes) if "ICMP::ICMP_DataExfil" in names]
    if case in ("storm", "chunks", "with another note", "charged", "non-echo"):
        assert exfil and {taken[i] for i in exfil} == {"handed out"}, (exfil, taken)
    else:
        assert {taken[i] for i in exfil} <= {"evaluated", "declined"}, (exfil, taken)
        assert case in ("allowlisted", "off") or exfil, notes


@needs_c
@pytest.mark.parametrize("case", ["storm", "swept", "pairs full", "allowlisted", "charged", "not realtime", "off"])
def test_a_flows_end_is_made_in_c_where_it_is_the_references(case: str) -> None:
    """A flow's end (Detector._flow_ended: flush, an idle sweep, an eviction) in the C path (flow_ended): its novel
    bytes and reported_until into its pair's memory (made, or moved to the end; the least interesting pair evicted
    first by the detector's own _evict_pair when the table is full: PairMemory.add's buckets as Python's floats make
    them), and its ExfilSummary where it raised a note, with channel_bytes' channels (bytes charged to a field too:
    two). Where alerting is not realtime (the flow is evaluated at its end), Python ends it. The same notices and
    state as the reference's."""
    detection, allowlist = DetectionConfig(), AllowlistConfig()
    packets = storm(60)
    if case == "swept":  # each flow idle for idle_timeout before the storm ends: ended by the sweeps
        detection = dataclasses.replace(detection, idle_timeout=0.01)
        packets = [dataclasses.replace(p, ts=p.ts + 0.5 * i) for i, p in enumerate(packets)]
    elif case == "pairs full":  # 9 sources in turn, each flow ended before the next: pairs remembered, moved, evicted
        detection = dataclasses.replace(detection, max_pairs=8, idle_timeout=0.01)
        packets = [dataclasses.replace(p, src=packets[(i * 5) % 9].src, ts=p.ts + 0.5 * i)
                   for i, p in enumerate(packets)]
    elif case == "allowlisted":
        allowlist = AllowlistConfig(hosts=(ipaddress.ip_network("100.64.0.0/26"),))
    elif case == "charged":
        detection = dataclasses.replace(detection, small_secret_bytes=0)
        packets = size_changing("jump", sources=5, rounds=6)
    elif case == "not realtime":
        detection = dataclasses.replace(detection, alerting="flow_end")
    elif case == "off":
        detection = dataclasses.replace(detection, notices=dataclasses.replace(detection.notices,
                                                                               exfil_summary=False))
    counting = run_both(packets, detection, allowlist)
    if case == "not realtime":
        assert counting.ends and not any(counting.ends), counting.ends
    else:
        assert len(counting.ends) >= 5 and all(counting.ends), counting.ends


@needs_c
@pytest.mark.parametrize("left", [17 * 40, 17 * 5 + 3])
def test_a_flows_uid_made_in_c_is_the_pools_next(left: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The uid of a flow whose first notice the C path makes (a storm's every flow) is taken from flows.UID_POOL as
    new_uid takes it (a 'C', then the pool's next 17 characters), in C; where fewer than 17 are left, new_uid refills
    the pool (os.urandom) and hands out the uid. The same uids in the same order as the Python detector's from the
    same pool, and the pool left as it leaves it."""
    rng = random.Random(5)
    known = "".join(rng.choice("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") for _ in range(left))
    calls: list[Flow] = []
    ensure_uid = Flow.ensure_uid

    def counted(flow: Flow) -> str:
        calls.append(flow)
        return ensure_uid(flow)

    monkeypatch.setattr(Flow, "ensure_uid", counted)

    def uids(accelerated: bool) -> tuple[list[str], int, bool, int, int]:
        monkeypatch.setattr(flows.UID_POOL, "chars", known)
        monkeypatch.setattr(flows.UID_POOL, "used", 0)
        calls.clear()
        det = Detector(DetectionConfig(), AllowlistConfig(), accelerated=accelerated)
        notices = [n for p in storm(40) for n in det.process(p)] + det.flush()
        made = list(dict.fromkeys(n.uid for n in notices if n.uid))
        spread = sum(n.note == "ICMP::ICMP_ExfilSpread" for n in notices)  # made by Python (_spread_notice)
        return made, flows.UID_POOL.used, flows.UID_POOL.chars == known, len(calls), spread

    (got, used, same_pool, c_calls, spread), (want, want_used, want_same, _, _) = uids(True), uids(False)
    from_known = min(40, left // 17)
    assert got[:from_known] == want[:from_known] == ["C" + known[17 * k : 17 * k + 17] for k in range(from_known)]
    assert len(got) == len(set(got)) == 40 and all(len(uid) == 18 and uid.isalnum() for uid in got)
    assert (used, same_pool) == (want_used, want_same) == (17 * (40 - from_known) if from_known < 40 else 17 * 40,
                                                            from_known == 40)
    # ensure_uid called by Python's own notices, and by the C path only to refill the pool
    assert spread == 1 and c_calls == spread + (0 if from_known == 40 else 1)


@needs_c
@pytest.mark.parametrize("max_pairs", [100_000, 20])
def test_a_new_hosts_and_a_new_pairs_memory_are_made_in_c(max_pairs: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A storm's every source is a new host to the senders' table and, as its flow ends, a new pair to the pairs'
    memory: the C path makes each (HostTable.touch's SpreadMemory(ts), Detector._pair's PairMemory(), a list of its
    own for its buckets) without their Python __init__; where the hosts' table is full, HostTable.touch itself sheds
    the oldest eighth first. So is a flow's capacity state (FlowChannels()) where a request's size carried bytes.
    The same notices and state after every packet as the reference's."""
    detection = dataclasses.replace(DetectionConfig(), max_pairs=max_pairs)
    packets = storm(60)
    reference = Detector(detection, AllowlistConfig(), accelerated=False)
    want = [notice_values(reference.process(p)) for p in packets]
    want.append(notice_values(reference.flush()))
    made: collections.Counter[str] = collections.Counter()
    for cls, method in ((standard.HostTable, "touch"), (standard.SpreadMemory, "__init__"),
                        (standard.PairMemory, "__init__"), (capacity.FlowChannels, "__init__")):
        real = getattr(cls, method)

        def counted(*args: object, real: Callable[..., object] = real, name: str = f"{cls.__name__}.{method}",
                    **kwargs: object) -> object:
            made[name] += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(cls, method, counted)
    fast = Detector(detection, AllowlistConfig())
    made.clear()
    got = [notice_values(fast.process(p)) for p in packets]
    hosts = list(fast._senders.hosts.values())
    got.append(notice_values(fast.flush()))
    assert got == want and state(fast) == state(reference)
    assert len({id(m.buckets) for m in fast._pairs.values()}) == len(fast._pairs) >= min(60, max_pairs)
    assert hosts and all(type(m) is standard.SpreadMemory for m in hosts)
    if max_pairs == 20:  # the table full: touch sheds, and makes the new host's memory itself
        assert 0 < made["HostTable.touch"] == made["SpreadMemory.__init__"] < 60, made
    else:
        assert not made["HostTable.touch"] and not made["SpreadMemory.__init__"], made
    assert not made["PairMemory.__init__"], made
    sized = [*packets, *[dataclasses.replace(p, ts=p.ts + 1) for p in size_changing("jump", sources=30, rounds=6)]]
    for pkt in sized[len(packets):]:
        reference.process(pkt)
    made.clear()
    for pkt in sized[len(packets):]:
        fast.process(pkt)
    assert state(fast) == state(reference) and not made["FlowChannels.__init__"], made
    assert sum(flow.channels is not None for flow in fast._flows.values()) >= 30


def mixed_interest(count: int, seed: int = 14) -> list[IcmpPacket]:
    """New flows of every interest to eviction in turn, each from a source of its own, 1 ms apart: a storm's (500
    random bytes: DataExfil raised, kept above all), a few random bytes (10-90: novel bytes under the threshold, as
    many as they are), a ping's (a template explains it: none)."""
    rng = random.Random(seed)
    packets = []
    for i in range(count):
        ts, src = T0 + i * 1e-3, f"100.65.{i // 250}.{i % 250 + 1}"
        kind = rng.choice(("storm", "few", "ping"))
        payload = (rng.randbytes(500) if kind == "storm" else rng.randbytes(rng.randrange(10, 90)) if kind == "few"
                   else iputils(ts))
        packets.append(corpus.echo(ts, src, "10.1.0.81", True, rng.randrange(1, 0xFFFF), 1, payload))
    return packets


def differing_replies(count: int, seed: int = 15) -> list[IcmpPacket]:
    """A request of 40 random bytes from each of `count` sources in turn, every other one answered by a reply of
    other random bytes: flows of the same novel bytes, half with a differing reply to their interest."""
    rng = random.Random(seed)
    packets = []
    for i in range(count):
        ts, src, ident = T0 + i * 1e-3, f"100.66.{i // 250}.{i % 250 + 1}", rng.randrange(1, 0xFFFF)
        packets.append(corpus.echo(ts, src, "10.1.0.81", True, ident, 1, rng.randbytes(40)))
        if i % 2:
            packets.append(corpus.echo(ts + 1e-4, "10.1.0.81", src, False, ident, 1, rng.randbytes(40)))
    return packets


@needs_c
@pytest.mark.parametrize("case", ["storm", "pairs full", "mixed interest", "differing replies", "tool", "one flow",
                                  "not realtime"])
def test_a_full_tables_eviction_after_a_new_flow_is_made_in_c(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new flow the C path made past max_flows: the least interesting of the EVICTION_SCAN least recently active
    flows evicted (FlowDetector._evict_one, the reference), counted and ended by flow_ended, in C, with the pair's
    memory made and, when max_pairs is reached, the pair with the fewest novel bytes of the EVICTION_SCAN least
    recently active forgotten (Detector._evict_pair) in C too: a storm longer than the table never stops for Python's
    eviction. Where the victim's end is not flow_ended's (alerting at a flow's end), Python evicts. The same notices
    and state after every packet as the reference's."""
    python: dict[str, int] = {"flows": 0, "pairs": 0}

    def counted(name: str, kind: str) -> None:
        original = getattr(Detector, name)

        def wrapper(self: Detector, *args: object) -> object:
            python[kind] += self._fast is not None  # the accelerated detector's, not the reference's
            return original(self, *args)
        monkeypatch.setattr(Detector, name, wrapper)

    counted("_evict_one", "flows")
    counted("_evict_pair", "pairs")
    detection = dataclasses.replace(DetectionConfig(), max_flows=8)
    packets = storm(80)
    if case == "pairs full":
        detection = dataclasses.replace(detection, max_pairs=5)
    elif case == "mixed interest":
        packets = mixed_interest(150)
    elif case == "differing replies":
        packets = differing_replies(120)
    elif case == "tool":  # a ptunnel flow not alerted (its notes off) kept above all, its few novel bytes whatever
        notes = dataclasses.replace(detection.notices, data_exfil=False, tunnel=False, exfil_summary=False)
        detection = dataclasses.replace(detection, notices=notes)
        packets = [dataclasses.replace(corpus.EXFIL_CASES["ptunnel"]()[0], ts=T0 - 1), *storm(80)]
    elif case == "one flow":
        detection = dataclasses.replace(detection, max_flows=1, max_pairs=1)
    elif case == "not realtime":
        detection = dataclasses.replace(detection, alerting="flow_end")
    reference = Detector(detection, AllowlistConfig(), accelerated=False)
    for pkt in packets:
        reference.process(pkt)
    evicted = reference.stats.flows_evicted
    counting = run_both(packets, detection)
    assert evicted >= len(packets) // 2, evicted
    if case == "not realtime":
        assert python["flows"] == evicted, python
        return
    if case in ("mixed interest", "differing replies"):  # after a ping's flow, or a reply's, made by Python, it evicts
        made_by_python = sum(1 for p in packets if p.payload == iputils(p.ts) or p.icmp_type == 0)
        assert python["flows"] <= made_by_python and evicted - python["flows"] >= 50, (python, evicted)
        assert counting.novel > 0, vars(counting)  # a few random bytes' new flow: one left nothing to hand out
    else:
        assert python == {"flows": 0, "pairs": 0}, python
    if case in ("pairs full", "one flow"):
        assert reference.stats.pairs_evicted >= len(packets) // 2, reference.stats


@needs_c
def test_the_tuples_a_storm_leaves_in_the_tables_are_not_tracked_by_the_collector() -> None:
    """A storm's flows each leave tuples in the detector's tables (the flow's key, the pending request's key and
    entry, the payload's sketch, the pair's key, the tool tracker's key): made in C, they are untracked at once, as
    the collector would untrack them the first time a collection walked them (only atomic items), so that young
    collections do not walk a storm's every tuple; the reference's own are still the collector's."""
    detection = dataclasses.replace(DetectionConfig(), max_flows=40, idle_timeout=0.02)
    fast = Detector(detection, AllowlistConfig())
    reference = Detector(detection, AllowlistConfig(), accelerated=False)
    for pkt in storm(120):
        fast.process(pkt)
        reference.process(pkt)

    def tuples(det: Detector) -> list[tuple[object, ...]]:
        found = [*det._flows, *(flow.last_sketch for flow in det._flows.values()), *det._pending,
                 *det._pending.values(), *det._pairs]
        return [t for t in found if isinstance(t, tuple)]

    made = tuples(fast)
    assert len(made) > 150 and not any(gc.is_tracked(t) for t in made)
    assert not any(gc.is_tracked(key) for key in fast._tools._c.flows)  # type: ignore[attr-defined]
    assert any(gc.is_tracked(t) for t in tuples(reference))


def records(det: Detector) -> list[object]:
    """The records a detector's tables hold: its flows, the senders' and receivers' memories, the pairs'."""
    return [*det._flows.values(), *det._senders.hosts.values(), *det._receivers.hosts.values(), *det._pairs.values()]


@needs_c
def test_the_records_a_storm_leaves_in_the_tables_are_not_tracked_by_the_collector() -> None:
    """A storm's flows and their hosts' and pairs' memories, made in C (new_flow, HostTable.touch's SpreadMemory,
    Detector._pair's PairMemory), are left untracked by the cyclic collector, so that young collections do not walk
    a storm's every record: none can be part of a cycle (their fields are numbers, bytes, str, and tuples, sets, lists,
    dicts and FlowChannels of those). The reference's own are the collector's. Nothing is left behind when a detector
    is gone (no cycle runs through them): three storms in turn, each through a detector dropped after it, hold no
    more memory than one."""
    detection = dataclasses.replace(DetectionConfig(), max_flows=40, idle_timeout=0.02)
    packets = [*storm(120), *[dataclasses.replace(p, ts=p.ts + 1) for p in size_changing("jump", sources=30, rounds=6)]]
    fast = Detector(detection, AllowlistConfig())
    reference = Detector(detection, AllowlistConfig(), accelerated=False)
    for pkt in packets:
        fast.process(pkt)
        reference.process(pkt)
    made = records(fast)
    assert len(made) > 150 and not any(gc.is_tracked(r) for r in made)
    assert any(flow.channels is not None for flow in fast._flows.values())
    assert all(gc.is_tracked(r) for r in records(reference))

    def one_storm() -> None:
        det = Detector(DetectionConfig(), AllowlistConfig())
        for pkt in big:
            det.process(pkt)
        det.flush()

    big = [*storm(3000), *[dataclasses.replace(p, ts=p.ts + 4) for p in size_changing("jump", sources=200, rounds=6)]]
    assert held_after_more(one_storm) < 200_000


def held_after_more(run: Callable[[], None]) -> int:
    """The memory three more calls of `run` leave held after one (traced, after a collection each time): what a leak
    of what it makes would grow."""
    import tracemalloc
    tracemalloc.start()
    try:
        run()
        gc.collect()
        after_one = tracemalloc.get_traced_memory()[0]
        for _ in range(3):
            run()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - after_one
    finally:
        tracemalloc.stop()


@needs_c
def test_the_buckets_of_a_pairs_memory_made_in_c_are_not_tracked_by_the_collector() -> None:
    """A pair's memory made in C at its flow's end (PairMemory: a storm leaves one a flow, alive after the flush)
    holds its buckets in a list of numbers only (PairMemory.add's start times and byte counts): the list is left
    untracked, as the collector cannot untrack a list itself (a storm's 20,000 were all that a young collection
    walked), and stays so as buckets are added. The reference's lists are the collector's; the buckets are equal."""
    detection = dataclasses.replace(DetectionConfig(), idle_timeout=0.5)
    packets = [dataclasses.replace(p, ts=p.ts + 0.7 * (i // 40)) for i, p in enumerate(storm(40) * 3)]
    reference, fast = detectors_after(packets, detection)
    for det in (reference, fast):
        det.flush()
    assert state(fast) == state(reference)
    lists = [memory.buckets for memory in fast._pairs.values()]
    assert len(lists) == 40 and all(len(buckets) == 2 for buckets in lists), lists[:2]
    assert not any(gc.is_tracked(buckets) for buckets in lists)
    assert all(gc.is_tracked(memory.buckets) for memory in reference._pairs.values())


@needs_c
def test_a_notices_snapshot_and_channels_made_in_c_are_untracked_where_they_can_hold_no_container() -> None:
    """A notice made in C keeps a snapshot of its flow (the text is made from it only if the notice is written) and
    its channels: a storm makes two notices a flow, most folded and dropped, but a young collection walks those alive.
    The snapshot is made untracked where no field may hold a container the collector tracks (a flow without a
    capacity state: numbers, bytes, str, None, bools, untracked tuples), as the collector's first walk would untrack
    it; a flow's FlowChannels keeps it tracked. The (channel, bytes) pairs are untracked too, and so is their list (the
    collector never untracks a list, and nothing is added to it after)."""
    fast = Detector(DetectionConfig(), AllowlistConfig())
    made = [n for p in storm(30) for n in fast.process(p)]
    sized = [n for p in size_changing("jump", sources=20, rounds=6) for n in fast.process(p)]
    made += fast.flush()
    plain = [n for n in made if n.note in ("ICMP::ICMP_DataExfil", "ICMP::ICMP_ExfilSummary")
             and n.src.startswith("100.64.0.")]  # the storm's flows
    assert len(plain) >= 60 and not any(gc.is_tracked(n._text.values) for n in plain)  # type: ignore[union-attr]
    assert not any(gc.is_tracked(pair) for n in plain for pair in n._text.extra)  # type: ignore[union-attr]
    assert not any(gc.is_tracked(n._text.extra) for n in plain)  # type: ignore[union-attr]
    charged = [n for n in [*sized, *made] if n.note in ("ICMP::ICMP_DataExfil", "ICMP::ICMP_ExfilSummary")
               and not n.src.startswith("100.64.0.")]
    assert charged and all(gc.is_tracked(n._text.values) for n in charged)  # type: ignore[union-attr]


@needs_c
def test_a_notice_made_in_c_and_its_text_are_not_tracked_by_the_collector() -> None:
    """A notice made in C (flow_notice) and its deferred text are left untracked, as the records the C path makes:
    nothing a notice holds can hold it (numbers, str, its text; the text's snapshot of the flow, its fields, its
    channels), so no cycle runs through one, and the young collection that a storm's notices alive at once (a flush's
    summaries before they are folded) made walk is gone. The reference's notices are the collector's. Notices dropped
    leave nothing behind."""
    fast = Detector(DetectionConfig(), AllowlistConfig())
    made = [n for p in [*storm(30), *size_changing("jump", sources=20, rounds=6)] for n in fast.process(p)]
    made += fast.flush()
    assert len(made) >= 80 and all(n._text is not None for n in made)  # type: ignore[union-attr]
    assert not any(gc.is_tracked(n) or gc.is_tracked(n._text) for n in made)  # type: ignore[union-attr]
    reference = Detector(DetectionConfig(), AllowlistConfig(), accelerated=False)
    theirs = [n for p in storm(30) for n in reference.process(p)]
    assert theirs and all(gc.is_tracked(n) and gc.is_tracked(n._text) for n in theirs)  # type: ignore[union-attr]

    def notices() -> None:
        det = Detector(DetectionConfig(), AllowlistConfig())
        for pkt in big:
            det.process(pkt)
        det.flush()

    big = storm(3000)
    assert held_after_more(notices) < 200_000


@needs_c
def test_an_ipv6_notices_addresses_are_written_in_c_as_addr_text_writes_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """IPv6 addresses in turn (a storm's sources, its one target again and again, zero runs of each length and
    place, all zero, all ones) are written in C (inet_ntop, the last one's text kept), as addr_text writes them,
    without a Python call each: an IPv6 storm names two addresses a notice. Those whose first 80 bits are zero
    (IPv4-mapped or -compatible: glibc writes a dotted quad, Python's ipaddress two groups) are addr_text's."""
    calls: list[bytes] = []

    def counted(packed: bytes) -> str:
        calls.append(packed)
        return addr_text(packed)

    from icmpsensor.detect import flows
    monkeypatch.setattr(flows, "addr_text", counted)
    flows.bind_notice_accelerator()
    try:
        rng = random.Random(9)
        target = ipaddress.ip_address("2001:db8::81").packed
        ordinary = [bytes.fromhex("20010db8" + "00" * 12), b"\xff" * 16, bytes.fromhex("fe80" + "00" * 13 + "01"),
                    *(ipaddress.ip_address(f"2001:db8:{i}::{i}:0:{i}").packed for i in range(1, 6)),
                    *(rng.randbytes(16) for _ in range(40)),  # and zero groups at random: runs of each length
                    *(b"".join(bytes(2) if rng.random() < 0.5 else rng.randbytes(2) for _ in range(8))
                      for _ in range(300))]
        ordinary = [a for a in ordinary if any(a[:10])]
        embeddable = [bytes(16), bytes(10) + b"\xff\xff" + bytes((192, 0, 2, 1)), bytes(12) + bytes((192, 0, 2, 1))]
        detector = Detector(DetectionConfig(), AllowlistConfig())
        for src in [*ordinary, *embeddable, *ordinary[:3]]:
            for a, b in ((src, target), (target, src)):
                notice = detector._notice(Flow(a, b, T0, T0, False), T0, "ICMP::ICMP_DataExfil", standard.EXFIL_MSG)
                assert (notice.src, notice.dst) == (addr_text(a), addr_text(b))
        assert calls and set(calls) == set(embeddable), calls
    finally:
        monkeypatch.undo()
        flows.bind_notice_accelerator()


@functools.cache
def notice_maker() -> Detector:
    return Detector(DetectionConfig(), AllowlistConfig())


@needs_c
@given(groups=st.lists(st.one_of(st.just(0), st.integers(0, 0xFFFF)), min_size=8, max_size=8))
@settings(max_examples=examples(600), deadline=None)
def test_an_ipv6_address_is_written_in_c_as_python_writes_it(groups: list[int]) -> None:
    """Any IPv6 address the C path writes itself (all but those whose first 80 bits are zero): RFC 5952's text, the
    same as addr_text's (inet_ntop) and ipaddress's, whatever its zero groups (runs of each length and place, ties
    between runs, a run of one, groups with leading zeros)."""
    packed = struct.pack("!8H", *groups)
    assume(any(packed[:10]))
    target = ipaddress.ip_address("2001:db8::81").packed
    notice = notice_maker()._notice(Flow(packed, target, T0, T0, False), T0, "ICMP::ICMP_DataExfil", standard.EXFIL_MSG)
    assert notice.src == addr_text(packed) == str(ipaddress.IPv6Address(packed))


@needs_c
@pytest.mark.parametrize("max_flows", [100_000, 30])
def test_a_storm_packets_notices_raised_in_c_are_handed_out_by_run(max_flows: int,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A storm packet whose notices the C path raised (DataExfil, and past a full table the evicted flow's
    ExfilSummary) is handed out by FastPath.run itself, as Detector._handed_out would (the due notices, the table
    within max_flows): process_many returns them without Detector._finish. The same stops, notices and state as
    one packet at a time through the Python detector."""
    finished: list[int] = []
    original = Detector._finish

    def counted(self: Detector, pkt: IcmpPacket, answer: object) -> object:
        finished.append(self._fast is not None)
        return original(self, pkt, answer)
    monkeypatch.setattr(Detector, "_finish", counted)
    detection = dataclasses.replace(DetectionConfig(), max_flows=max_flows)
    packets: list[IcmpPacket | None] = [*storm(120)]
    reference = Detector(detection, AllowlistConfig(), accelerated=False)
    expected = [(i, notice_values(n), reference.last_novel) for i, p in enumerate(packets)
                if (n := reference.process(p)) or reference.last_novel]  # type: ignore[arg-type]
    fast = Detector(detection, AllowlistConfig())
    assert drive_many(fast, packets, set()) == expected
    assert state(fast) == state(reference)
    assert len(expected) == 120 and sum(finished) <= 4, sum(finished)  # a tool tracker's answer is finished


def detectors_after(packets: list[IcmpPacket], detection: DetectionConfig) -> tuple[Detector, Detector]:
    """The Python detector and the C path's after the same packets, held equal."""
    reference = Detector(detection, AllowlistConfig(), accelerated=False)
    fast = Detector(detection, AllowlistConfig())
    for pkt in packets:
        assert notice_values(fast.process(pkt)) == notice_values(reference.process(pkt))
    assert state(fast) == state(reference)
    return reference, fast


def ended_alike(reference: Detector, fast: Detector, end: Callable[[Detector], Iterable[Notice]]) -> tuple[int, int]:
    """`end` (a flush, or the clock moved to a sweep) on both detectors: the same notices and state after; the
    notices, and the Python lines the C path's run."""
    want = notice_values(end(reference))
    got: list[Notice] = []
    lines = lines_run(lambda: got.extend(end(fast)))
    assert notice_values(got) == want
    assert state(fast) == state(reference)
    return len(want), lines


@needs_c
@pytest.mark.parametrize("end", ["flush", "sweep all", "sweep half"])
def test_a_storms_flows_are_ended_in_c_without_a_python_line_each(end: str) -> None:
    """The flows a flush or an idle sweep ends (FlowDetector._end_flows, the reference: oldest first, each at the
    clock or at its last packet + idle_timeout) are ended in one C loop (FastPath.flows_ended), and the pending
    requests a sweep forgets in another (requests_expired): a few Python lines, not a few per flow and request. A
    sweep ends the idle flows only, and forgets the requests as old only. The same notices and state as the
    reference's."""
    detection = dataclasses.replace(DetectionConfig(), idle_timeout=30.0)
    packets = [dataclasses.replace(p, ts=T0 + 0.1 * i) for i, p in enumerate(storm(400))]  # 40 s of a storm
    reference, fast = detectors_after(packets, detection)
    assert len(fast._flows) == len(fast._pending) > 60  # the storm's first flows were swept on the way
    left = len(fast._flows)
    if end == "flush":
        notices, lines = ended_alike(reference, fast, Detector.flush)
        assert notices == left and not fast._flows
    else:
        later = packets[-1].ts + (60.0 if end == "sweep all" else 15.0)
        notices, lines = ended_alike(reference, fast, lambda det: det.advance(later))
        assert (not fast._flows) == (end == "sweep all") and notices == left - len(fast._flows) > 20
        assert len(fast._pending) == len(fast._flows)
    assert lines < 100, lines  # a constant: the reference runs ~6 lines a flow


class OtherStr(str):
    """A str of another type: the C path leaves the flow that holds it to Python."""


@needs_c
@pytest.mark.parametrize("end", ["flush", "sweep", "sweep stopped"])
def test_a_flow_the_c_loop_cannot_end_is_ended_by_python_and_the_loop_goes_on(end: str) -> None:
    """A flow amid the ones a flush or a sweep ends that the C path cannot end (flow_ended would answer False: a
    field not the reference's type) is removed by the loop and handed to Detector._flow_ended, and the loop goes on;
    a flow whose clock is not a float stops the C loop, and the reference's goes on from it: it ends it where it is
    idle, and stops there where it is not. The same notices and state as the reference's, in the same order."""
    detection = dataclasses.replace(DetectionConfig(), idle_timeout=30.0)
    packets = storm(150)
    reference, fast = detectors_after(packets, detection)
    counting = Counting(fast._fast)
    fast._fast = counting
    for det in (reference, fast):
        table = list(det._flows.values())
        for k in (3, 4, 70):
            table[k].tool = OtherStr("")
        if end == "sweep":  # an int clock, idle: the C loop stops there, the reference's ends it and the rest
            table[120].last = int(table[120].last)
        elif end == "sweep stopped":  # an int clock not idle: the sweep ends the flows before it only
            table[120].last = int(packets[-1].ts + 1000)
    if end == "flush":
        notices, _ = ended_alike(reference, fast, Detector.flush)
    else:
        notices, _ = ended_alike(reference, fast, lambda det: det.advance(packets[-1].ts + 60.0))
    ended = 120 if end == "sweep stopped" else 150
    assert notices == ended and len(fast._flows) == 150 - ended
    handed = [i for i, ended in enumerate(counting.ends) if not ended]
    assert handed == [3, 4, 70] + ([120] if end == "sweep" else []), handed  # past 120: the reference's loop
    assert len(counting.ends) == ended


@needs_c
def test_a_chunk_of_the_flush_counts_the_flows_the_c_loop_hands_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """A chunk of the flush (FLUSH_CHUNK made 4 here) counts a flow the C loop hands back to Python (flow_ended would
    answer False) as it counts one it ends, at a chunk's edge too: the chunks are the reference's, flow for flow."""
    monkeypatch.setattr(flows, "FLUSH_CHUNK", 4)
    reference, fast = detectors_after(storm(30), DetectionConfig())
    for det in (reference, fast):
        table = list(det._flows.values())
        for k in (2, 3, 4, 11):
            table[k].tool = OtherStr("")
    want = [notice_values(chunk) for chunk in reference.flush_chunks()]
    got = [notice_values(chunk) for chunk in fast.flush_chunks()]
    assert got == want and [len(chunk) for chunk in got] == [4] * 7 + [2]
    assert state(fast) == state(reference) and not fast._flows


@needs_c
def test_a_flow_idle_for_exactly_the_timeout_is_swept() -> None:
    """A sweep ends a flow whose last packet + idle_timeout is the sweep's time exactly (the reference stops only at
    a flow that is still active after it), and the requests sent exactly idle_timeout before it. Packets a quarter
    of a second apart, swept on a whole second: the 21st's last packet + idle_timeout is the sweep's time."""
    detection = dataclasses.replace(DetectionConfig(), idle_timeout=30.0)
    packets = [dataclasses.replace(p, ts=1_000_000.0 + i / 4) for i, p in enumerate(storm(40))]
    reference, fast = detectors_after(packets, detection)
    notices, _ = ended_alike(reference, fast, lambda det: det.advance(1_000_000.0 + 30.0 + 5.5))
    assert notices == 21 and len(fast._flows) == len(fast._pending) == 19


@needs_c
def test_flows_ended_and_requests_expired_check_their_arguments() -> None:
    fast = Detector(DetectionConfig(), AllowlistConfig())._fast
    assert fast is not None
    with pytest.raises(TypeError):
        fast.flows_ended({}, 1.0, None, [])  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        fast.flows_ended(collections.OrderedDict(), 1.0, None, ())  # type: ignore[attr-defined]
    assert fast.flows_ended(collections.OrderedDict(), 1.0, None, []) == (0, None)  # type: ignore[attr-defined]
    table = collections.OrderedDict([(1, "not a flow")])
    assert fast.flows_ended(table, 1, None, []) == (0, None) and table  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        fast.flows_ended(table, 1.0, None, [], -2)  # type: ignore[attr-defined]
    assert fast.flows_ended(table, 1.0, None, [], 0) == (0, None) and table  # type: ignore[attr-defined]
    assert fast.flows_ended(table, 1.0, None, [], 1) == (0, "not a flow") and not table  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        standard._fastflows.requests_expired({}, 1.0)
    pending = collections.OrderedDict([(1, (None, 1.0)), (2, (None, 2)), (3, (None, 0.5))])
    assert standard._fastflows.requests_expired(pending, 1.5) == 1 and list(pending) == [2, 3]
    assert standard._fastflows.requests_expired(pending, "1.5") == 0 and list(pending) == [2, 3]


@needs_c
def test_a_storm_packets_notices_are_folded_without_a_python_line(tmp_path: Path) -> None:
    """Through the pipeline (evidence on), a notice storm's packet runs almost no Python: the C path calls the
    aggregator's fold and its uid look-up as C functions (NoticeAggregator.stop_hooks), not through their methods,
    and the flush ends the flows in C. What 3,000 more packets of a storm add (its first notices, written, and
    their evidence are the same in both) is under a line a packet (the reference's methods: over eight)."""
    def lines_for(count: int) -> int:
        cfg = Config()
        cfg.output.log_dir = str(tmp_path / str(count))
        pipeline = Pipeline(cfg, [ListSink()])  # type: ignore[list-item]
        packets = storm(count)
        lines = lines_run(lambda: (pipeline.detect(packets), pipeline.finish()))
        pipeline.close()
        assert pipeline.stats()["notices_folded"] > 2 * count - 30, pipeline.stats()
        return lines

    more = lines_for(6_000) - lines_for(3_000)
    assert more < 3_000, more


@needs_c
@pytest.mark.parametrize("layout", [*sorted(LAYOUTS), "zeros", "windows", "empty"])
def test_a_pings_first_request_and_its_reply_take_the_c_path(layout: str) -> None:
    """A monitor pinging many hosts once each (blackbox_exporter, check_icmp, a fping sweep) makes a new flow with
    every request and another with its reply: a template's first request is explained, the run's clock and session
    set, in C; the reply that repeats it makes its flow in C too."""
    make = LAYOUTS.get(layout) or {"zeros": lambda sent, size: bytes(size), "empty": lambda sent, size: b"",
                                   "windows": lambda sent, size: b"abcdefghijklmnopqrstuvw" * 2}[layout]
    requests = [corpus.echo(T0 + 0.01 * i, "10.0.0.1", f"10.0.{i // 200}.{i % 200 + 2}", True, 7, 1,
                            make(T0 + 0.01 * i - 0.013, 56)) for i in range(40)]
    counting = run_both(corpus.with_replies(requests))
    assert counting.declined <= 2, vars(counting)  # the packets that move the clock to a sweep, then taken


@needs_c
@pytest.mark.parametrize("layout", ["iputils", "bsd"])
@pytest.mark.parametrize("pattern", [b"\xff", b"\x5a\xa5", b"0123456789:;<=>?", b"\x00\x01\x02", b"\x7f" * 15 + b"1"])
def test_a_ping_with_a_pattern_takes_the_c_path(layout: str, pattern: bytes) -> None:
    """`ping -p`: the fill is the pattern from the payload's first byte (iputils) or its ninth (BSD), the clock
    before it; each request is the run's clock and its pattern (the run's session) again. The C path takes every
    request and reply, the first ones too, and agrees with the reference."""
    fill = pattern * (1500 // len(pattern))
    shift = FILL_START[layout] % len(pattern) if layout == "iputils" else 0
    requests = [corpus.echo(T0 + 0.2 * i, "10.0.0.1", "10.0.0.2", True, 7, i + 1,
                            LAYOUTS[layout](T0 + 0.2 * i - 0.013, 120, fill[shift:]))
                for i in range(12)]
    assert all(fingerprints.explain(r.payload, r.ts).session for r in requests)
    counting = run_both(corpus.with_replies(requests))
    assert counting.declined <= 1, vars(counting)  # the request that moves the clock to a sweep, then taken


@needs_c
def test_a_ping_whose_pattern_changes_within_its_run_is_the_python_detectors() -> None:
    """A pattern is the run's: another one under the same identifier is no ping's (Detector._consistent: the run's
    first pattern stays its session), and the C path leaves each such request to Python."""
    requests = [corpus.echo(T0 + 0.2 * i, "10.0.0.1", "10.0.0.2", True, 7, i + 1,
                            iputils(T0 + 0.2 * i - 0.013, 120, (b"\xaa" if i < 4 else b"\xbb") * 120))
                for i in range(8)]
    counting = run_both(requests)
    assert [counting.answers[id(r)] for r in requests[1:4]] == ["handled"] * 3, counting.answers
    assert all(counting.answers[id(r)] != "handled" for r in requests[4:]), counting.answers


@needs_c
@pytest.mark.parametrize("layout", [*sorted(LAYOUTS), "zeros", "windows", "repeated"])
def test_replies_seen_without_their_requests_take_the_c_path(layout: str) -> None:
    """Asymmetric routing: the sensor sees a monitor's replies and not its requests (each reply unpaired). A reply
    whose payload a template explains is taken in C as the reference takes it (the payload ignored, the run's
    session kept or started over), and so is one that repeats the flow's last payload; one monitor's replies, and
    several monitors' replies each the first of its flow."""
    make = LAYOUTS.get(layout) or {"zeros": lambda sent, size: bytes(size),
                                   "windows": lambda sent, size: b"abcdefghijklmnopqrstuvw" * 2,
                                   "repeated": lambda sent, size: b"custom health check, the same every time"}[layout]
    one = [corpus.kernel_reply(corpus.echo(T0 + 0.2 * i, "10.0.0.1", "10.0.0.2", True, 7, i + 1,
                                           make(T0 + 0.2 * i - 0.013, 56))) for i in range(12)]
    many = [corpus.kernel_reply(corpus.echo(T0 + 0.01 * i, f"10.0.{i // 200}.{i % 200 + 2}", "10.0.0.1", True, 9, 1,
                                            make(T0 + 0.01 * i - 0.013, 56))) for i in range(40)]
    for replies in (one, many):
        counting = run_both(replies)
        assert counting.declined <= 2, vars(counting)


@needs_c
def test_a_reply_seen_without_its_request_whose_pattern_changes_within_its_run_is_novel() -> None:
    """An unsolicited reply with another -p pattern under the run's identifier is no ping's (_consistent): its bytes
    count as novel, in C as in the reference; a new identifier starts the run over with the new pattern."""
    fills = [(b"\xaa" if i < 3 else b"\xbb") * 120 for i in range(8)]
    replies = [corpus.kernel_reply(corpus.echo(T0 + 0.2 * i, "10.0.0.1", "10.0.0.2", True, 7 if i < 6 else 8, i + 1,
                                               iputils(T0 + 0.2 * i - 0.013, 120, fills[i]))) for i in range(8)]
    counting = run_both(replies)
    assert [counting.answers[id(r)] for r in replies[3:6]] != ["handled"] * 3, counting.answers
    assert counting.answers[id(replies[7])] == "handled", counting.answers


def probes(layout: str, runs: int, per_run: int, size: int = 56, patterns: tuple[bytes | None, ...] = (None,),
           sizes: tuple[int, ...] = ()) -> list[IcmpPacket]:
    """A monitor's probes to one host: `runs` runs of `per_run` requests 0.2 s apart, each run a new identifier (a
    new pinger: pro-bing draws a new tracker too), 2 s between runs; the runs' -p patterns and sizes in turn."""
    out = []
    for run in range(runs):
        for k in range(per_run):
            ts = T0 + 2.0 * run + 0.2 * k
            pattern = patterns[run % len(patterns)]
            fill = pattern * 200 if pattern else None
            tracker = {"tracker": bytes([run]) + TRACKER[1:]} if layout == "pro-bing" else {}
            payload = LAYOUTS[layout](ts - 0.013, sizes[k % len(sizes)] if sizes else size, fill, **tracker)
            out.append(corpus.echo(ts, "10.0.0.1", "10.0.0.2", True, 100 + run, k + 1, payload))
    return out


@needs_c
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_a_monitors_new_runs_take_the_c_path(layout: str) -> None:
    """A monitor starting a new run (a new identifier; pro-bing a new tracker) every probe, with its replies: each
    run's first request is charged as the reference charges a new run (the run budget) and starts the run over as
    _consistent does, in C; every packet agrees with the reference."""
    counting = run_both(corpus.with_replies(probes(layout, 8, 3)))
    assert counting.declined == 0, vars(counting)  # those that move the clock to a sweep are offered again, taken


@needs_c
@pytest.mark.parametrize("layout", ["iputils", "bsd"])
def test_a_new_run_with_another_pattern_is_charged_in_c_past_the_budget(layout: str) -> None:
    """ping -p with a new pattern every run: free while the run and parameter budgets last, then the pattern's bytes
    charged to the "pattern" channel (capacity.pattern_bits), in C as in the reference."""
    requests = probes(layout, 24, 2, patterns=(b"\xaa", b"\xbb\xcc", b"0123456789:;<=>?"))
    counting = run_both(requests)
    assert counting.declined == 0, vars(counting)
    reference = Detector(DetectionConfig(), AllowlistConfig(), accelerated=False)
    for pkt in requests:
        reference.process(pkt)
    flow = reference._flows[(requests[0].src, requests[0].dst)]
    assert flow.channels is not None and flow.channels.charged.get("pattern", 0) > 0, flow.channels


@needs_c
@pytest.mark.parametrize("layout", ["iputils", "bsd"])
def test_a_ping_that_changes_its_size_takes_the_c_path(layout: str) -> None:
    """Path-MTU probing (ping -M do -s N, a new size every request within one run): each size change charged as the
    reference charges it, the payload the template's with the run's clock, in C."""
    counting = run_both(corpus.with_replies(probes(layout, 1, 30, sizes=(56, 120, 1000, 1472, 600))))
    assert counting.declined == 0, vars(counting)


@needs_c
@pytest.mark.parametrize("shape", ["traceroute -I", "sequence jumps", "new identifiers"])
def test_a_repeated_payload_under_a_charged_header_takes_the_c_path(shape: str) -> None:
    """The flow's last payload again under a header whose change is charged (capacity.request_header): traceroute -I
    (its fill every probe, a new identifier per run), a zero-filled ping whose sequence number jumps, a fixed payload
    under a new identifier every request; charged in C as the reference charges it, nothing novel in the payload."""
    fill = benign_corpus.traceroute_payload() if shape == "traceroute -I" else bytes(56)
    requests = []
    for i in range(40):
        ident = 7 + (i // 3 if shape == "traceroute -I" else i if shape == "new identifiers" else 0)
        seq = i + 1 if shape != "sequence jumps" else (i * 977) & 0xFFFF
        requests.append(corpus.echo(T0 + 0.1 * i, "10.0.0.1", "10.0.0.2", True, ident, seq, fill))
    counting = run_both(corpus.with_replies(requests))
    assert counting.declined <= 1, vars(counting)  # the flow's first request: its template's run started in C too


@needs_c
def test_a_resized_request_repeating_a_sketch_a_reply_left_is_charged_as_the_reference_charges_it() -> None:
    """A flow's last sketch can come from a paired reply (the other host's request echoed back) while its last size is
    its own last request's: a request then resized to that payload repeats the flow's last sketch. The reference
    charges the size and asks _novelty nothing (the payload a template's or not: nothing counted ignored, the run
    untouched); the C path takes it so (repeated_request)."""
    a, b = "10.0.0.1", "10.0.0.2"
    first = corpus.echo(T0, a, b, True, 7, 1, iputils(T0 - 0.013, 56))
    theirs = corpus.echo(T0 + 0.1, b, a, True, 9, 1, bytes(32))  # b's ping: a's kernel echoes it on a -> b
    resized = corpus.echo(T0 + 0.3, a, b, True, 7, 2, bytes(32))
    counting = run_both([first, theirs, corpus.kernel_reply(theirs), resized])
    assert counting.answers[id(resized)] != "declined", counting.answers


class LooseMemory:
    """A SpreadMemory's peers and alerted_until, without slots: shed_hosts reads those by attribute."""

    def __init__(self, peers: set[bytes] | bytes, alerted_until: float) -> None:
        self.peers, self.alerted_until = peers, alerted_until

    peer_count = standard.SpreadMemory.peer_count


host_memories = st.builds(
    lambda since, peers, alerted, loose: LooseMemory(peers, alerted) if loose else dataclasses.replace(
        standard.SpreadMemory(since), peers=peers, alerted_until=alerted),
    st.floats(0, 1000),
    st.one_of(st.just(b""), st.binary(min_size=4, max_size=4),
              st.sets(st.binary(min_size=4, max_size=4), min_size=1, max_size=6)),
    st.one_of(st.sampled_from([0.0, 500.0, 1000.0, 1500.0]), st.floats(0, 2000)),
    st.integers(0, 9).map(lambda i: i == 0),  # one in ten without slots
)


@needs_c
@settings(max_examples=examples(400), deadline=None)
@given(st.lists(host_memories, max_size=90), st.sampled_from([500.0, 1000.0, 500, 1000]))
def test_a_host_tables_shed_in_c_forgets_the_hosts_the_reference_forgets(memories: list[standard.SpreadMemory],
                                                                        now: float | int) -> None:
    """_fastflows.shed_hosts against standard._shed_hosts_py: the same memories taken out, in the same order, the
    same hosts left in the same order; an alerted_until equal to `now` (told no longer) among them, peers as
    nothing, one address or a set, a few memories without slots (read by attribute, not in place), and a clock as
    an int (compared as Python compares, not as two floats)."""
    table = {i.to_bytes(4, "big"): memory for i, memory in enumerate(memories)}
    reference, fast = dict(table), dict(table)
    taken = standard._shed_hosts_py(reference, now)
    got = standard._fastflows.shed_hosts(fast, now)
    assert [id(m) for m in got] == [id(m) for m in taken]
    assert list(fast) == list(reference)
    assert len(taken) == (len(table) // 8 + 1 if table else 0)
