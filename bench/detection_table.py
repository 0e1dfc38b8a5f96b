"""Detection table: every labelled case through the standard and the original profile, side by side.

    .venv/bin/python -m bench.detection_table [--live] [--markdown]

Cases (each with its provenance, printed in the legend):

* negatives: every testkit/benign_corpus.py BENIGN_CASES entry (crafted from real ping tools' byte layouts)
  and testkit/capacity_corpus.py CAPACITY_NEGATIVES (monitoring that changes identifiers, sizes, clocks);
* capacity positives: testkit/capacity_corpus.py CAPACITY_POSITIVES, data in every field a sender sets;
* positives: every testkit/exfil_corpus.py EXFIL_CASES entry (crafted from each tool's source), the
  reference captures in ../shared/seed (real captures; skipped with a note when absent), extra crafted
  carriers built here (IP fragments, ICMPv6, VLAN, data in echo replies, non-echo carriers,
  low-and-slow, one big base64 request), and with --live (root only) every testkit/livetools.py
  LIVE_CASES entry (real tools run between network namespaces).

Packet lists go straight to the detector; frames (built with testkit/craft.py) and captures go
through the real pipeline (Pipeline + replay_pipeline). In both, once the input ends the clock runs
on for one idle timeout, as a live sensor's would, then the remaining flows are flushed: so the
original's end-of-flow alerting shows its idle-timeout delay.

A positive case is *caught* when a notice names the expected source and destination; the delay is
the first such notice's time (ExfilSummary only if no other note fired) minus the time of the
first packet the source sent carrying payload. On a negative case every notice is a false positive.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import inspect
import ipaddress
import os
import struct
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from icmpsensor.config.schema import Config
from icmpsensor.decode.packet import IcmpPacket
from icmpsensor.detect.profile import make_detector
from icmpsensor.notice.record import Notice
from icmpsensor.notice.types import EXFIL_SUMMARY
from icmpsensor.output.sink import ListSink
from icmpsensor.runmode.pipeline import Pipeline
from icmpsensor.runmode.replay import replay_pipeline
from testkit import benign_corpus, capacity_corpus, craft, exfil_corpus
from testkit.paths import SEED_DIR

PROFILES = ("standard", "original")

# The seed captures and who exfiltrates in each (tests/replay/test_seed.py STANDARD_CASES).
SEED_SRC, SEED_DST = "10.0.2.15", "54.144.215.114"
SEED_CASES: dict[str, tuple[str, tuple[str, str]]] = {  # file: (case name, (source, destination))
    "icmp-file-transfer-sample-text-file-448-bytes.pcap": ("seed:icmp-file-transfer-448B", (SEED_SRC, SEED_DST)),
    "icmp-file-transfer-sample-text-file-2mb.pcap": ("seed:icmp-file-transfer-2MB", (SEED_SRC, SEED_DST)),
    "hping3-sample-text-file-448-bytes-5-sec-95-byte-packets.pcap": ("seed:hping3-448B", (SEED_SRC, SEED_DST)),
    "pyexfil-sample-text-file-448-bytes.pcap": ("seed:pyexfil-448B", (SEED_SRC, SEED_DST)),
    "EgressAssess-sample-text-file.pcap": ("seed:egress-assess", ("192.168.86.36", SEED_DST)),
}

Frames = list[tuple[float, bytes]]


# --------------------------------------------------------------------------- cases


@dataclass
class Case:
    ident: str  # short id used in the table and the legend
    name: str
    group: str  # benign corpus / exfil corpus / seed / extra / live
    provenance: str
    expected: tuple[str, str] | None  # (source, destination) of a positive case; None: negative
    packets: Callable[[], list[IcmpPacket]] | None = None
    frames: Callable[[], Frames] | None = None
    pcap: Callable[[Path], Path] | Path | None = None

    @property
    def positive(self) -> bool:
        return self.expected is not None


@dataclass
class Verdict:
    """What one profile did on one case."""

    notices: int = 0
    on_pair: Counter[str] = field(default_factory=Counter)  # notes naming (expected src, expected dst)
    reverse: Counter[str] = field(default_factory=Counter)  # notes naming (expected dst, expected src)
    other: Counter[str] = field(default_factory=Counter)  # notes naming any other pair (all, on negatives)
    caught: bool = False
    summary_only: bool = False
    delay: float | None = None  # seconds from the source's first payload to the first notice


@dataclass
class Row:
    case: Case
    verdicts: dict[str, Verdict]
    first_payload_seen: bool  # positive cases: a payload-carrying packet from the source was decoded
    packets: int  # decoded packets (one profile's run)


@dataclass
class Table:
    rows: list[Row]
    notes: list[str]  # skipped groups and the like
    seconds: float

    def totals(self, profile: str) -> dict[str, int]:
        pos = [r for r in self.rows if r.case.positive]
        neg = [r for r in self.rows if not r.case.positive]
        return {
            "positives": len(pos),
            "caught": sum(r.verdicts[profile].caught for r in pos),
            "negatives": len(neg),
            "fp_notices": sum(r.verdicts[profile].notices for r in neg),
            "fp_cases": sum(bool(r.verdicts[profile].notices) for r in neg),
            "reverse_on_positives": sum(sum(r.verdicts[profile].reverse.values()) for r in pos),
            "stray_on_positives": sum(sum(r.verdicts[profile].other.values()) for r in pos),
        }


# -- data for the extra crafted positives ---------------------------------------------------------

X_SRC, X_DST = "192.0.2.66", "203.0.113.66"  # the host the data leaves from, its peer
X_SRC6, X_DST6 = "2001:db8:66::5", "2001:db8:99::9"
X_START = 1_700_100_000.0
DATA = b"".join(
    f"{i:05d};customer-{i:05d};card=4{(i * 104729) % 10**15:015d};exp={1 + i % 12:02d}/{27 + i % 4}\n".encode()
    for i in range(400)
)  # about 23 kB of "customer records"
B64 = base64.b64encode(DATA)


def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def _packed(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def fragmented_echo_frames() -> Frames:
    """6 echo requests of 4,000 bytes of records, each sent in 1,480-byte IPv4 fragments; the peer's
    kernel echoes them (fragmented too)."""
    frames: Frames = []
    for k, part in enumerate(_chunks(DATA[:24_000], 4000)):
        ts = X_START + k * 0.5
        request = craft.icmp4(X_SRC, X_DST, craft.ECHO_REQUEST, ident=0x4242, seq=k, payload=part, ip_id=100 + k)
        reply = craft.icmp4(X_DST, X_SRC, craft.ECHO_REPLY, ident=0x4242, seq=k, payload=part, ip_id=900 + k)
        frames += [(ts + i * 1e-4, craft.ether(f)) for i, f in enumerate(craft.fragment4(request, 1480))]
        frames += [(ts + 0.01 + i * 1e-4, craft.ether(f)) for i, f in enumerate(craft.fragment4(reply, 1480))]
    return frames


def icmpv6_echo_frames() -> Frames:
    """30 ICMPv6 echo requests of 1,000 bytes, echoed back."""
    frames: Frames = []
    for k, part in enumerate(_chunks(DATA, 1000)[:30]):
        ts = X_START + k * 0.2
        frames.append((ts, craft.ether(craft.icmp6(X_SRC6, X_DST6, craft.ECHO_REQUEST6, ident=0x66, seq=k,
                                                    payload=part))))
        frames.append((ts + 0.01, craft.ether(craft.icmp6(X_DST6, X_SRC6, craft.ECHO_REPLY6, ident=0x66, seq=k,
                                                           payload=part))))
    return frames


def vlan_echo_frames(vlans: Sequence[int], outer_tpid: int = 0x8100) -> Callable[[], Frames]:
    def build() -> Frames:
        frames: Frames = []
        for k, part in enumerate(_chunks(DATA, 500)[:20]):
            ts = X_START + k * 0.2
            req = craft.icmp4(X_SRC, X_DST, craft.ECHO_REQUEST, ident=0x77, seq=k, payload=part, ip_id=k + 1)
            rep = craft.icmp4(X_DST, X_SRC, craft.ECHO_REPLY, ident=0x77, seq=k, payload=part, ip_id=k + 501)
            frames.append((ts, craft.ether(req, vlans, outer_tpid)))
            frames.append((ts + 0.01, craft.ether(rep, vlans, outer_tpid)))
        return frames

    return build


def _iputils_request(ts: float, src: str, dst: str, ident: int, seq: int) -> IcmpPacket:
    payload = benign_corpus.iputils_payload(56, ts - benign_corpus.SEND_LAG)
    return IcmpPacket(ts, _packed(src), _packed(dst), False, 8, 0, ident, seq, payload, 98)


def echo_reply_data() -> list[IcmpPacket]:
    """A client pings the responder with default iputils pings (one a second); the responder answers
    each with the next 56 bytes of a file instead of the echoed data (same id and seq)."""
    packets = []
    for k, part in enumerate(_chunks(DATA, 56)[:60]):
        ts = X_START + k
        packets.append(_iputils_request(ts, X_DST, X_SRC, 0x5151, k + 1))
        packets.append(IcmpPacket(ts + 0.003, _packed(X_SRC), _packed(X_DST), False, 0, 0, 0x5151, k + 1,
                                  part.ljust(56, b"\0"), 98))
    return packets


def _ms_of_day(ts: float) -> int:
    return int(ts % 86400 * 1000)


def timestamp_extra_frames() -> Frames:
    """20 timestamp requests (type 13) with valid times of day and 64 bytes of data after the 16-byte body;
    the peer answers with plain 16-byte timestamp replies."""
    frames: Frames = []
    for k, part in enumerate(_chunks(DATA, 64)[:20]):
        ts = X_START + k * 1.0
        ms = _ms_of_day(ts)
        body = struct.pack(">HHIII", 0x1313, k, ms, 0, 0)
        frames.append((ts, craft.ether(craft.icmp4(X_SRC, X_DST, craft.TIMESTAMP, payload=body + part))))
        reply = struct.pack(">HHIII", 0x1313, k, ms, ms + 3, ms + 3)
        frames.append((ts + 0.01, craft.ether(craft.icmp4(X_DST, X_SRC, 14, payload=reply))))
    return frames


def echo_code_frames() -> Frames:
    """20 echo requests with code 1 and 100 bytes of records each; the peer's kernel echoes them (code kept)."""
    frames: Frames = []
    for k, part in enumerate(_chunks(DATA, 100)[:20]):
        ts = X_START + k * 0.2
        frames.append((ts, craft.ether(craft.icmp4(X_SRC, X_DST, craft.ECHO_REQUEST, 1, 0x99, k, part))))
        frames.append((ts + 0.01, craft.ether(craft.icmp4(X_DST, X_SRC, craft.ECHO_REPLY, 1, 0x99, k, part))))
    return frames


def unassigned_type_frames() -> Frames:
    """30 messages of the unassigned ICMP type 47 carrying 64 bytes of records each."""
    return [(X_START + k * 0.2, craft.ether(craft.icmp4(X_SRC, X_DST, 47, payload=part)))
            for k, part in enumerate(_chunks(DATA, 64)[:30])]


def forged_unreachable_frames() -> Frames:
    """20 port unreachables (type 3 code 3) whose "quoted datagram" is 100 bytes of records."""
    return [(X_START + k * 0.2, craft.ether(craft.icmp4(X_SRC, X_DST, craft.UNREACHABLE, 3, payload=bytes(4) + part)))
            for k, part in enumerate(_chunks(DATA, 100)[:20])]


def low_and_slow() -> list[IcmpPacket]:
    """One echo request every 10 minutes for 24 h (144), each carrying the next 24 bytes of base64 records
    (3,456 bytes in all), each echoed back by the peer's kernel."""
    packets = []
    for k, part in enumerate(_chunks(B64, 24)[:144]):
        ts = X_START + k * 600.0
        request = IcmpPacket(ts, _packed(X_SRC), _packed(X_DST), False, 8, 0, 0x1E1E, k, part, 42 + len(part))
        packets += [request, exfil_corpus.kernel_reply(request)]
    return packets


def single_base64_request() -> list[IcmpPacket]:
    """One echo request with 1,400 bytes of base64 (1,050 bytes of records), echoed back."""
    payload = B64[:1400]
    request = IcmpPacket(X_START, _packed(X_SRC), _packed(X_DST), False, 8, 0, 0x0B64, 1, payload, 1442)
    return [request, exfil_corpus.kernel_reply(request)]


_CRAFT = "testkit/craft.py frames (RFC 791/792/4443/8200 layouts)"
EXTRA_CASES: list[tuple[str, str, Callable[[], Frames] | None, Callable[[], list[IcmpPacket]] | None,
                        tuple[str, str]]] = [
    ("ip-fragments", _CRAFT + ": 4,000-byte echo payloads in 1,480-byte IPv4 fragments", fragmented_echo_frames,
     None, (X_SRC, X_DST)),
    ("icmpv6-echo", _CRAFT + ": ICMPv6 echo requests of 1,000 bytes", icmpv6_echo_frames, None, (X_SRC6, X_DST6)),
    ("vlan-8021q", _CRAFT + ": echo exfil behind an 802.1Q tag (VLAN 100)", vlan_echo_frames((100,)), None,
     (X_SRC, X_DST)),
    ("vlan-qinq", _CRAFT + ": echo exfil behind 802.1ad + 802.1Q tags", vlan_echo_frames((200, 100), 0x88A8), None,
     (X_SRC, X_DST)),
    ("echo-reply-data", "IcmpPacket list: iputils pings (testkit/benign_corpus.py layout) answered with file chunks",
     None, echo_reply_data, (X_SRC, X_DST)),
    ("timestamp-extra", _CRAFT + ": RFC 792 timestamp request + 64 extra bytes", timestamp_extra_frames, None,
     (X_SRC, X_DST)),
    ("echo-code-1", _CRAFT + ": echo request with code 1 (RFC 792 defines code 0 only)", echo_code_frames, None,
     (X_SRC, X_DST)),
    ("unassigned-type-47", _CRAFT + ": ICMP type 47 (IANA: unassigned) with data", unassigned_type_frames, None,
     (X_SRC, X_DST)),
    ("forged-unreachable", _CRAFT + ": port unreachable quoting data, not an IPv4 header",
     forged_unreachable_frames, None, (X_SRC, X_DST)),
    ("low-and-slow", "IcmpPacket list: 24 B base64 per echo request, 10 min apart, 24 h", None, low_and_slow,
     (X_SRC, X_DST)),
    ("single-base64-1400", "IcmpPacket list: one 1,400-byte base64 echo request", None, single_base64_request,
     (X_SRC, X_DST)),
]


def collect_cases(*, live: bool, seed_dir: Path = SEED_DIR, notes: list[str] | None = None) -> list[Case]:
    notes = notes if notes is not None else []
    cases: list[Case] = []
    for k, (name, make) in enumerate(benign_corpus.BENIGN_CASES.items(), 1):
        cases.append(Case(f"B{k}", name, "benign corpus", "crafted from " + benign_corpus.PROVENANCE[name], None,
                          packets=make))
    for k, (name, make) in enumerate(exfil_corpus.EXFIL_CASES.items(), 1):
        cases.append(Case(f"X{k}", name, "exfil corpus", "crafted from " + exfil_corpus.PROVENANCE[name],
                          exfil_corpus.EXPECTED_SOURCE[name], packets=make))
    for k, (name, (make, expected)) in enumerate(capacity_corpus.CAPACITY_POSITIVES.items(), 1):
        cases.append(Case(f"K{k}", name, "capacity corpus", capacity_corpus.PROVENANCE[name], expected,
                          packets=make))
    for k, (name, make) in enumerate(capacity_corpus.CAPACITY_NEGATIVES.items(), 1):
        cases.append(Case(f"N{k}", name, "capacity corpus", capacity_corpus.PROVENANCE[name], None,
                          packets=make))
    if (seed_dir / "BEHAVIOUR.md").is_file():
        for k, (file_name, (name, expected)) in enumerate(SEED_CASES.items(), 1):
            path = seed_dir / file_name
            if not path.is_file():
                notes.append(f"seed capture {path} missing: skipped")
                continue
            cases.append(Case(f"S{k}", name, "seed",
                              f"real capture ../shared/seed/{file_name}", expected, pcap=path))
    else:
        notes.append(f"seed captures not found at {seed_dir}: the 5 real captures were skipped")
    for k, (name, provenance, frames, packets, expected) in enumerate(EXTRA_CASES, 1):
        cases.append(Case(f"C{k}", name, "extra", "crafted here (bench/detection_table.py), " + provenance,
                          expected, packets=packets, frames=frames))
    if live:
        cases += _live_cases(notes)
    return cases


def _live_cases(notes: list[str]) -> list[Case]:
    from testkit import livetools

    if os.geteuid() != 0:
        notes.append("--live: not root: live cases skipped")
        return []
    missing = livetools.missing_prerequisite()
    if missing:
        notes.append(f"--live: live cases skipped: {missing}")
        return []
    per_case = len(inspect.signature(livetools.missing_prerequisite).parameters) > 0
    cases = []
    for k, (name, run) in enumerate(livetools.LIVE_CASES.items(), 1):
        missing = livetools.missing_prerequisite(name) if per_case else None
        if missing:
            notes.append(f"--live: {name} skipped: {missing}")
            continue
        expected = livetools.LIVE_EXPECTED.get(name)
        provenance = "real tool run: " + str(livetools.LIVE_PROVENANCE.get(name, name))
        cases.append(Case(f"L{k}", name, "live", provenance, tuple(expected) if expected else None,  # type: ignore[arg-type]
                          pcap=_live_runner(run)))
    return cases


def _live_runner(run: Callable[..., object]) -> Callable[[Path], Path]:
    def runner(workdir: Path) -> Path:
        params = [p for p in inspect.signature(run).parameters.values()
                  if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        return Path(str(run(workdir / "live") if params else run()))

    return runner


# --------------------------------------------------------------------------- running


class _Watch:
    """Counts decoded packets and remembers when the expected source first sent payload."""

    def __init__(self, source: str | None) -> None:
        self.source = _packed(source) if source else None
        self.first_payload: float | None = None
        self.packets = 0

    def see(self, pkt: IcmpPacket) -> None:
        self.packets += 1
        if self.first_payload is None and pkt.payload and pkt.src == self.source:
            self.first_payload = pkt.ts


class _RunOnPipeline(Pipeline):
    """The real pipeline; at the end of input the clock runs on one idle timeout before the flush."""

    def __init__(self, cfg: Config, sink: ListSink, watch: _Watch) -> None:
        super().__init__(cfg, [sink])
        process = self.detector.process

        def watched(pkt: IcmpPacket) -> Sequence[Notice]:
            watch.see(pkt)
            return process(pkt)

        self.detector.process = watched  # type: ignore[method-assign]

    def finish(self, deadline: float | None = None) -> None:
        self.advance(self.detector.now + self.cfg.detection.idle_timeout)
        super().finish(deadline)


def profile_config(profile: str) -> Config:
    cfg = Config()
    cfg.output.evidence.enabled = False  # the table needs notices only; no files in the working directory
    return dataclasses.replace(cfg, detection=dataclasses.replace(cfg.detection, profile=profile))


def run_packets(cfg: Config, packets: list[IcmpPacket], watch: _Watch) -> list[Notice]:
    detector = make_detector(cfg.detection, cfg.allowlist)
    notices: list[Notice] = []
    for pkt in packets:
        watch.see(pkt)
        notices.extend(detector.process(pkt))
    notices.extend(detector.advance(detector.now + cfg.detection.idle_timeout))
    notices.extend(detector.flush())
    return notices


def run_pcap(cfg: Config, path: Path, watch: _Watch) -> list[Notice]:
    sink = ListSink()
    pipeline = _RunOnPipeline(cfg, sink, watch)
    try:
        replay_pipeline(pipeline, [str(path)])
    finally:
        pipeline.close()
    return sink.notices


def judge(notices: list[Notice], expected: tuple[str, str] | None, first_payload: float | None) -> Verdict:
    verdict = Verdict(notices=len(notices))
    if expected is None:
        verdict.other.update(n.note for n in notices)
        return verdict
    src = str(ipaddress.ip_address(expected[0]))
    dst = "*" if expected[1] == "*" else str(ipaddress.ip_address(expected[1]))  # "*": any destination

    def named(n: Notice) -> bool:
        return n.src == src and dst in ("*", n.dst)

    on_pair = [n for n in notices if named(n)]
    for n in notices:
        if named(n):
            verdict.on_pair[n.note] += 1
        elif (n.src, n.dst) == (dst, src):
            verdict.reverse[n.note] += 1
        else:
            verdict.other[n.note] += 1
    if on_pair:
        verdict.caught = True
        alerts = [n for n in on_pair if n.note != EXFIL_SUMMARY.name]
        verdict.summary_only = not alerts
        first = min(n.ts for n in (alerts or on_pair))
        if first_payload is not None:
            verdict.delay = first - first_payload
    return verdict


def evaluate(case: Case, workdir: Path) -> Row:
    source = case.expected[0] if case.expected else None
    packets: list[IcmpPacket] | None = None
    path: Path | None = None
    if case.packets is not None:
        packets = case.packets()
    elif case.frames is not None:
        path = workdir / f"{case.ident}-{case.name}.pcap"
        craft.write_pcap(path, case.frames())
    elif isinstance(case.pcap, Path):
        path = case.pcap
    elif case.pcap is not None:
        path = case.pcap(workdir)
    verdicts: dict[str, Verdict] = {}
    watch = _Watch(source)
    for profile in PROFILES:  # each profile gets its own detector (and, for captures, its own pipeline)
        cfg = profile_config(profile)
        watch = _Watch(source)
        notices = run_packets(cfg, packets, watch) if packets is not None else run_pcap(cfg, path, watch)  # type: ignore[arg-type]
        verdicts[profile] = judge(notices, case.expected, watch.first_payload)
    return Row(case, verdicts, watch.first_payload is not None, watch.packets)


def build_table(*, live: bool = False, seed_dir: Path = SEED_DIR,
                progress: Callable[[str], None] | None = None) -> Table:
    started = time.perf_counter()
    notes: list[str] = []
    cases = collect_cases(live=live, seed_dir=seed_dir, notes=notes)
    rows = []
    with tempfile.TemporaryDirectory(prefix="detection-table-") as tmp:
        for case in cases:
            if progress:
                progress(f"{case.ident} {case.name}")
            try:
                rows.append(evaluate(case, Path(tmp)))
            except Exception as exc:  # a live tool that failed: say so, keep the rest of the table
                if case.group != "live":
                    raise
                notes.append(f"{case.ident} {case.name}: live run failed: {type(exc).__name__}: {exc}")
    return Table(rows, notes, time.perf_counter() - started)


# --------------------------------------------------------------------------- rendering


def _short(note: str) -> str:
    return note.removeprefix("ICMP::ICMP_")


def _notes_text(counter: Counter[str], prefix: str = "") -> list[str]:
    return [f"{prefix}{_short(n)}" + (f"x{c}" if c > 1 else "") for n, c in sorted(counter.items())]


def _delay_text(delay: float | None) -> str:
    if delay is None:
        return "-"
    if delay < 60:
        return f"{delay:.2f} s"
    if delay < 3600:
        return f"{delay / 60:.1f} min"
    return f"{delay / 3600:.1f} h"


def _cells(row: Row, profile: str) -> tuple[str, str, str]:
    v = row.verdicts[profile]
    if not row.case.positive:
        result = "0 FP" if not v.notices else f"{v.notices} FP"
        return result, "", ", ".join(_notes_text(v.other))
    result = "MISSED"
    if v.caught:
        result = "caught (summary only)" if v.summary_only else "caught"
    notes = _notes_text(v.on_pair) + _notes_text(v.reverse, "rev:") + _notes_text(v.other, "other:")
    return result, _delay_text(v.delay) if v.caught else "-", ", ".join(notes)


HEADER = ("id", "case", "kind", "standard", "std delay", "standard notes", "original", "orig delay", "original notes")


def table_rows(table: Table) -> list[tuple[str, ...]]:
    out = []
    for row in table.rows:
        kind = "exfil" if row.case.positive else "benign"
        out.append((row.case.ident, row.case.name, kind, *_cells(row, "standard"), *_cells(row, "original")))
    return out


def totals_lines(table: Table) -> list[str]:
    lines = []
    for profile in PROFILES:
        t = table.totals(profile)
        lines.append(
            f"{profile}: positives caught {t['caught']}/{t['positives']}; false-positive notices on negatives "
            f"{t['fp_notices']} (in {t['fp_cases']}/{t['negatives']} cases); in positive cases, notices naming the "
            f"pair reversed {t['reverse_on_positives']}, naming other pairs {t['stray_on_positives']}"
        )
    return lines


LEGEND_TEXT = (
    "caught: a notice names the expected source -> destination; delay: first such notice (ExfilSummary only "
    "if nothing else fired) minus the source's first payload-carrying packet, in packet time, the clock running "
    "on one idle timeout (300 s) after the input ends. FP: notices on a benign case. rev: notice naming the "
    "pair reversed; other: another pair. Notes drop the ICMP::ICMP_ prefix; xN: N notices."
)


def render_text(table: Table) -> str:
    rows = [HEADER, *table_rows(table)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    lines = []
    for k, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines += ["", *totals_lines(table), "", LEGEND_TEXT, "", "Provenance:"]
    lines += [f"  {row.case.ident:4} {row.case.provenance}" for row in table.rows]
    lines += [f"Note: {n}" for n in table.notes]
    lines.append(f"({len(table.rows)} cases in {table.seconds:.1f} s)")
    return "\n".join(lines)


def _md(cell: str) -> str:
    return cell.replace("|", "\\|") or " "


def render_markdown(table: Table) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(_md(c) for c in r) + " |" for r in table_rows(table)]
    lines += ["", *(f"- {line}" for line in totals_lines(table)), "", LEGEND_TEXT, "", "Provenance:", ""]
    lines += [f"- **{row.case.ident}** {_md(row.case.provenance)}" for row in table.rows]
    if table.notes:
        lines += ["", *(f"- Note: {n}" for n in table.notes)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.detection_table", description=__doc__.split("\n\n")[0])
    parser.add_argument("--live", action="store_true", help="also run testkit/livetools.py LIVE_CASES (root)")
    parser.add_argument("--markdown", action="store_true", help="GitHub-markdown table (for README.md)")
    args = parser.parse_args(argv)
    table = build_table(live=args.live)
    print(render_markdown(table) if args.markdown else render_text(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
