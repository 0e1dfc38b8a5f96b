"""Smoke test of the throughput benchmark (bench/throughput.py; capture: testkit/synthmix.py) on a small capture.

The synthetic capture must decode without a single error or skipped frame, carry what the mix
promises (IPv6, VLAN tags, fragments, exactly the requested frame count over about an hour),
and the sensor must report every ground-truth exfiltration pair and no benign pair. Each
throughput stage runs once; nothing here asserts a speed.
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from bench import c_path_declines, hostile_shapes, throughput
from icmpsensor.config.schema import Config
from icmpsensor.decode import fast as decode
from testkit import benign_corpus as bc
from testkit import craft, synthmix
from testkit.paths import REPO
from tests import early

PACKETS = 20_000
Capture = tuple[Path, Path, dict]

# The runs that happen in other processes (the benchmark's stages, each in a fresh Python, and tshark) are jobs of the
# early lane (tests/early.py), queued once collection is over (start_early): their tests read the results.
DECODERS = "test_python_decoder_stage_gives_the_same_results"
TSHARK = "test_the_tshark_stage_runs"
ADVERSARIAL = "test_every_adversarial_stage_runs_beside_the_mix_against_both_ceilings"
STORM_FLOWS = 600


def make_capture(tmp_path_factory: pytest.TempPathFactory) -> Capture:
    """The capture, written by a process of its own (python -m bench.synth): made on the early lane's thread, its
    allocations were counted by the tests that trace this process's memory meanwhile (tracemalloc counts every
    thread's), and it held the interpreter's lock they need."""
    path = tmp_path_factory.mktemp("bench") / "synthmix.pcap"
    run = early.process([sys.executable, "-m", "bench.synth", path, "--packets", str(PACKETS), "--seed", "3"])()
    assert run.returncode == 0, run.stderr
    truth_file = synthmix.truth_path(path)
    return path, truth_file, json.loads(truth_file.read_text())


def both_decoder_stages(capture: early.Job[Capture]) -> list[dict[str, Any] | None]:
    path, truth_file, _ = capture.result()
    return [throughput.run_stage(stage, path, truth_file, 10) for stage in ("icmpsensor", "icmpsensor-py")]


def tshark_stage(capture: early.Job[Capture]) -> dict[str, object] | None:
    return throughput.stage_tshark(str(capture.result()[0]))


def adversarial_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """One small run of the benchmark (python -m bench.throughput) with every adversarial stage: (the run, its
    --json file)."""
    base = tmp_path_factory.mktemp("bench-adversarial")
    out = base / "results.json"
    argv = [sys.executable, "-m", "bench.throughput", "--packets", "3000", "--storm-flows", str(STORM_FLOWS),
            "--novel-flood-packets", "2000", "--tiny-fragment-packets", "2000", "--repeat", "1",
            "--keep", str(base / "keep"), "--jumbo-fragment-packets", "800", "--crafted-packets", "800",
            "--headless-fragment-packets", "5000",
            "--stages", "icmpsensor,storm,storm-v6,storm-pairs,novel-flood,tiny-fragments,headless-fragments,"
                        "jumbo-fragments,"
                        "crafted-messages,novel-mix",
            "--json", str(out)]
    return early.process(argv)(), out


_EARLY: dict[str, early.Job[Any]] = {}  # the jobs queued when the session's tests were known (start_early)


def start_early(selected: set[str], tmp_path_factory: pytest.TempPathFactory) -> None:
    """tests/conftest.py calls this once collection is over: the capture, then the selected runs, on the early lane."""
    if _EARLY:
        return
    _EARLY["capture"] = capture = early.LANE.queue(lambda: make_capture(tmp_path_factory))
    if DECODERS in selected:
        _EARLY[DECODERS] = early.LANE.queue(lambda: both_decoder_stages(capture))
    if TSHARK in selected:
        _EARLY[TSHARK] = early.LANE.queue(lambda: tshark_stage(capture))
    if ADVERSARIAL in selected:
        _EARLY[ADVERSARIAL] = early.LANE.queue(lambda: adversarial_run(tmp_path_factory))


def job(name: str, tmp_path_factory: pytest.TempPathFactory) -> early.Job[Any]:
    """The early job `name`, or (start_early not called) the same job made now, to be done on the test's thread."""
    if name not in _EARLY:
        capture = _EARLY.setdefault("capture", early.Job(lambda: make_capture(tmp_path_factory)))
        make = {DECODERS: lambda: both_decoder_stages(capture), TSHARK: lambda: tshark_stage(capture),
                ADVERSARIAL: lambda: adversarial_run(tmp_path_factory)}
        if name in make:
            _EARLY[name] = early.Job(make[name])
    return _EARLY[name]


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Capture:
    return job("capture", tmp_path_factory).result()


def test_fast_payloads_are_the_corpus_layouts() -> None:
    rng = random.Random(1)
    for _ in range(50):
        t = bc.START + rng.uniform(0, 3600)
        size = rng.choice((0, 8, 15, 16, 17, 56, 100, 1472))
        pattern = rng.choice((None, b"\xde\xad\xbe\xef", bytes(range(16))))
        assert synthmix.iputils_fn(size, pattern)(t) == bc.iputils_payload(size, t, pattern)
        assert synthmix.bsd_fn(size, pattern)(t) == bc.bsd_payload(size, t, pattern=pattern)
        if size >= 4:
            boot = bc.START - 86_400.5
            assert synthmix.busybox_fn(size, boot, 0x5A)(t) == bc.busybox_payload(size, int((t - boot) * 1e6), 0x5A)


def test_checksummed_frames_match_craft() -> None:
    link = synthmix.Link(synthmix.ip("192.0.2.1"), synthmix.ip("198.51.100.2"), (), ttl=64)
    frame = link.echo(8, 0, 0x1234, 7, b"hello world", ip_id=1)
    assert frame[14:] == craft.icmp4("192.0.2.1", "198.51.100.2", 8, 0, 0x1234, 7, b"hello world", ip_id=1)
    link6 = synthmix.Link(synthmix.ip("2001:db8::1"), synthmix.ip("2001:db8::2"), (), ttl=64)
    frame6 = link6.echo(128, 0, 9, 10, b"odd-length!")
    assert frame6[14:] == craft.icmp6("2001:db8::1", "2001:db8::2", 128, 0, 9, 10, b"odd-length!")


def test_capture_has_the_promised_mix(capture: Capture) -> None:
    _, truth_file, truth = capture
    assert truth == json.loads(truth_file.read_text())
    assert truth["packets"] == PACKETS
    assert truth["out_of_order"] == 0
    assert truth["last_ts"] - truth["first_ts"] > 0.8 * 3600
    assert truth["ipv6"] > 0.03 * PACKETS and truth["vlan"] > 0 and truth["fragments"] > 0
    assert set(truth["by_category"]) >= {"keepalive", "monitoring", "interactive", "flood", "path_trace", "errors",
                                         "agents", "fragments", "exfil"}
    assert len(truth["exfil_pairs"]) >= 5
    assert any(e["ipv6"] for e in truth["exfil"]) and any(e["fragmented"] and e["vlan"] for e in truth["exfil"])


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    digests = []
    for name in ("a.pcap", "b.pcap"):
        synthmix.generate(tmp_path / name, packets=3000, seed=9)
        digests.append(hashlib.sha256((tmp_path / name).read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def test_sensor_decodes_everything_and_reports_exactly_the_exfiltration(capture: Capture) -> None:
    path, truth_file, _ = capture
    result = throughput.stage_icmpsensor(str(path), str(truth_file))
    assert result["packets"] == PACKETS
    assert result["problems"] == []
    assert result["decode_errors"] == 0 and result["decode_skipped"] == 0
    assert result["exfil_missed"] == []
    assert result["exfil_reported"] == result["exfil_pairs"]
    assert result["false_positives"] == []


def test_python_decoder_stage_gives_the_same_results(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The icmpsensor-py stage runs with the C decoder off (a fresh process), and its notices and counters
    are those of the default stage: the two batch decoders agree end to end on the synthetic mix."""
    c_run, python_run = job(DECODERS, tmp_path_factory).result()
    assert c_run is not None and python_run is not None
    assert python_run["c_decoder"] is False and c_run["c_decoder"] is decode.ACCELERATED
    for key in ("packets", "notices", "exfil_reported", "false_positives", "decode_errors", "decode_skipped",
                "notice_digest", "decode"):
        assert c_run[key] == python_run[key], key


def test_the_ceiling_and_dpkt_stages_run(capture: Capture) -> None:
    path = str(capture[0])
    assert throughput.stage_ceiling(path)["packets"] == PACKETS
    assert throughput.stage_ceiling_raw(path)["packets"] == PACKETS  # frames counted from the batch metadata
    dpkt_result = throughput.stage_dpkt(path)
    assert dpkt_result["packets"] == PACKETS
    assert dpkt_result["icmp"] > 0.95 * PACKETS  # all but non-first fragments


def test_the_tshark_stage_runs(tmp_path_factory: pytest.TempPathFactory) -> None:
    tshark = job(TSHARK, tmp_path_factory).result()
    if tshark is None:
        pytest.skip("tshark is not installed (the benchmark leaves its row out)")
    assert tshark["packets"] == PACKETS


def test_the_scapy_stage_runs(capture: Capture) -> None:
    scapy = throughput.stage_scapy(str(capture[0]), sample=300)
    if scapy is None:
        pytest.skip("scapy is not importable (pip install -e '.[bench]'; the benchmark leaves its row out)")
    assert scapy["packets"] == 300 and scapy["icmp"] > 250


def test_flood_variant(tmp_path: Path) -> None:
    path = tmp_path / "flood.pcap"
    truth = synthmix.generate(path, flood_sources=3000)
    assert truth["out_of_order"] == 0
    assert truth["by_category"]["flood"] == 6000
    assert len({synthmix.spoofed_source(i) for i in range(100_000)}) == 100_000
    result = throughput.stage_icmpsensor(str(path), str(synthmix.truth_path(path)))
    assert result["decode_errors"] == 0
    assert result["exfil_missed"] == [] and result["false_positives"] == []


def test_cached_capture_is_reused(tmp_path: Path) -> None:
    first = throughput.ensure_capture(2000, tmp_path)
    second = throughput.ensure_capture(2000, tmp_path)
    assert first[0] == second[0] and second[2] == 0.0
    assert first[1]["packets"] == 2000


# -- the adversarial stages (issue 13) ------------------------------------------------------------------


def _frames(path: Path) -> list[bytes]:
    import dpkt

    with path.open("rb") as f:
        return [bytes(frame) for _ts, frame in dpkt.pcap.Reader(f)]


def test_storm_capture_is_one_novel_500_byte_request_from_each_spoofed_source(tmp_path: Path) -> None:
    import dpkt

    path = tmp_path / "storm.pcap"
    truth = synthmix.generate(path, packets=500, kind="storm")
    frames = [dpkt.ethernet.Ethernet(f).data for f in _frames(path)]
    assert truth["packets"] == len(frames) == 500 and truth["host_pairs"] == 500 and truth["kind"] == "storm"
    assert len({ip.src for ip in frames}) == 500 and {ip.dst for ip in frames} == {synthmix.ip(synthmix.STORM_TARGET)}
    assert all(ip.data.type == 8 and len(ip.data.data.data) == 500 for ip in frames)
    assert len({ip.data.data.data for ip in frames}) == 500


def test_the_storm_of_pairs_repeats_no_host(tmp_path: Path) -> None:
    import dpkt

    path = tmp_path / "pairs.pcap"
    truth = synthmix.generate(path, packets=500, kind="storm_pairs")
    frames = [dpkt.ethernet.Ethernet(f).data for f in _frames(path)]
    assert truth["packets"] == len(frames) == 500 and truth["host_pairs"] == 500 and truth["kind"] == "storm_pairs"
    assert len({ip.src for ip in frames}) == len({ip.dst for ip in frames}) == 500
    assert all(ip.data.type == 8 and len(ip.data.data.data) == 500 for ip in frames)


def test_the_ipv6_storm_is_one_novel_500_byte_icmpv6_request_from_each_spoofed_ipv6_source(tmp_path: Path) -> None:
    import dpkt

    path = tmp_path / "storm6.pcap"
    truth = synthmix.generate(path, packets=500, kind="storm_v6")
    frames = [dpkt.ethernet.Ethernet(f).data for f in _frames(path)]
    assert truth["packets"] == len(frames) == 500 and truth["host_pairs"] == 500 and truth["kind"] == "storm_v6"
    assert all(isinstance(ip6, dpkt.ip6.IP6) for ip6 in frames)
    assert len({ip6.src for ip6 in frames}) == 500
    assert {ip6.dst for ip6 in frames} == {synthmix.ip(synthmix.STORM_TARGET_V6)}
    assert all(ip6.data.type == 128 and len(ip6.data.data.data) == 500 for ip6 in frames)
    result = throughput.stage_icmpsensor(str(path))
    assert result["icmp"] == 500 and result["decode_errors"] == 0
    assert result["notices_raised"] >= 1000  # a DataExfil and an ExfilSummary per flow, as over IPv4


def test_tiny_fragment_capture_is_8_byte_fragments_and_every_fourth_datagram_incomplete(tmp_path: Path) -> None:
    import dpkt

    path = tmp_path / "tiny.pcap"
    truth = synthmix.generate(path, packets=3100, kind="tiny_fragments")
    ips = [dpkt.ethernet.Ethernet(f).data for f in _frames(path)]
    assert truth["fragments"] == len(ips) == truth["packets"]
    assert all(ip.len - 20 <= 8 for ip in ips)
    assert all(ip.mf or ip.offset for ip in ips)  # every frame a fragment
    result = throughput.stage_icmpsensor(str(path))
    datagrams = len({(ip.src, ip.id) for ip in ips})
    fragments = result["decode"]["fragments"]
    assert fragments["reassembled"] == datagrams - datagrams // 4
    # an incomplete datagram holding its offset 0 hands on its bytes up to the hole (decode/fragments.py)
    assert result["icmp"] == fragments["reassembled"] + fragments.get("partial", 0)


def test_the_headless_fragment_flood_hides_no_exfiltration(tmp_path: Path) -> None:
    """Every frame a fragment; the spoofed ones never complete, the exfiltration's datagrams are evicted before
    their data comes: every datagram is judged headless, and the exfiltration is named (its own notice, or in a
    storm aggregate's largest)."""
    import dpkt

    path = tmp_path / "headless.pcap"
    truth = synthmix.generate(path, packets=9000, kind="headless_fragments")
    ips = [dpkt.ethernet.Ethernet(f).data for f in _frames(path)]
    assert truth["packets"] == len(ips) == 2 * (synthmix.HEADLESS_GAP + 1 + 5)
    assert all(ip.mf or ip.offset for ip in ips)
    result = throughput.stage_icmpsensor(str(path))
    fragments = result["decode"]["fragments"]
    assert fragments.get("reassembled", 0) == 0 and fragments["partial"] == 2  # the two requests' headers
    assert fragments["headless"] == 2 * synthmix.HEADLESS_GAP + 2
    src, dst = synthmix.HEADLESS_EXFIL
    with tempfile.TemporaryDirectory() as logs:
        done = subprocess.run([sys.executable, "-m", "icmpsensor", "-r", str(path), "--log-dir", logs],
                              capture_output=True, timeout=120, cwd=REPO)
        assert done.returncode == 0, done.stderr
        told = [json.loads(line) for line in (Path(logs) / "notice.log").read_text().splitlines()]
    assert any((n["src"], n["dst"]) == (src, dst) or f"largest: {src} (" in n["msg"] for n in told), told


def test_the_jumbo_fragment_flood_is_60000_byte_echo_requests_in_fragments_each_source_reported(
        tmp_path: Path) -> None:
    import dpkt

    path = tmp_path / "jumbo.pcap"
    truth = synthmix.generate(path, packets=3000, kind="jumbo_fragments")
    frames = [dpkt.ethernet.Ethernet(f).data for f in _frames(path)]
    assert truth["packets"] == len(frames) <= 3000 and truth["kind"] == "jumbo_fragments"
    assert all(len(bytes(ip)) <= synthmix.MTU for ip in frames)
    v4 = [ip for ip in frames if isinstance(ip, dpkt.ip.IP)]
    assert v4 and all(ip.mf or ip.offset for ip in v4) and len(v4) < len(frames)  # fragments; a quarter IPv6
    result = throughput.stage_icmpsensor(str(path), str(synthmix.truth_path(path)))
    fragments = result["decode"]["fragments"]
    assert result["icmp"] == fragments["reassembled"] + fragments.get("partial", 0) >= len(frames) // 41 - 1
    assert result["decode"]["bad_checksum"] == fragments.get("partial", 0) and result["decode_errors"] == 0  # cut
    assert result["exfil_missed"] == [] and result["false_positives"] == []


def test_the_crafted_messages_are_each_kind_in_fragments_and_cost_no_error(tmp_path: Path) -> None:
    """Each crafted kind in turn, in MTU-sized fragments; every datagram reassembled and decoded (none an error),
    each kind's message type seen, and notices written (their walks end with the rest unexplained)."""
    import dpkt

    path = tmp_path / "crafted.pcap"
    truth = synthmix.generate(path, packets=3000, kind="crafted_messages")
    frames = [dpkt.ethernet.Ethernet(f).data for f in _frames(path)]
    assert truth["packets"] == len(frames) <= 3000 and truth["kind"] == "crafted_messages"
    assert all(len(bytes(ip)) <= synthmix.MTU for ip in frames)
    result = throughput.stage_icmpsensor(str(path), str(synthmix.truth_path(path)))
    fragments = result["decode"]["fragments"]
    partial = fragments.get("partial", 0)  # the capture ends within a datagram
    assert result["icmp"] == fragments["reassembled"] + partial
    assert fragments["reassembled"] >= len(frames) // 42 - 1 >= 2 * len(synthmix.CRAFTED_KINDS)
    assert result["decode_errors"] == 0 and result["decode"]["bad_checksum"] == partial
    assert {"v4:3", "v4:8", "v6:134", "v6:140", "v6:143"} <= set(result["decode"]["icmp_types"])
    assert result["notices"] > 0


def test_novel_mix_is_a_quarter_file_chunks_and_every_chunk_pair_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "novel.pcap"
    truth = synthmix.generate(path, packets=20_000, seed=3, kind="novel_mix")
    assert truth["packets"] == 20_000 and truth["out_of_order"] == 0
    assert 0.22 < truth["by_category"]["file_chunks"] / 20_000 <= 0.25
    result = throughput.stage_icmpsensor(str(path), str(synthmix.truth_path(path)))
    assert result["decode_errors"] == 0 and result["decode_skipped"] == 0
    assert any(e["tool"] == "file-chunks" for e in truth["exfil"])
    assert result["exfil_missed"] == [] and result["false_positives"] == []


def test_every_adversarial_stage_runs_beside_the_mix_against_both_ceilings(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """One small run of the benchmark with every adversarial stage: each capture gets both ceilings and the sensor,
    the table has both ratios for every row, and the storm's notices are written or folded, none lost."""
    run, out = job(ADVERSARIAL, tmp_path_factory).result()
    storm = STORM_FLOWS
    assert run.returncode == 0, run.stderr
    captures = {c["name"]: c for c in json.loads(out.read_text())["captures"]}
    assert set(captures) == {"mix", *throughput.ADVERSARIAL}
    for name, entry in captures.items():
        results = entry["results"]
        assert set(results) == {"ceiling-raw", "ceiling", "icmpsensor"}, name
        assert {r["packets"] for r in results.values()} == {entry["packets"]}, name
        assert all(r["pps"] > 0 and r["rss_mb"] > 0 for r in results.values()), name
    for name in ("storm", "storm-v6", "storm-pairs"):
        storm_run = captures[name]["results"]["icmpsensor"]
        assert storm_run["notices_raised"] >= 2 * storm, name  # a DataExfil and an ExfilSummary per flow
        if storm_run["notices_folded"] is not None:  # the pipeline folds storms (notice/aggregate.py)
            assert storm_run["notices"] == (storm_run["notices_raised"] - storm_run["notices_folded"]
                                            + storm_run["notices_aggregated"]), name
            # written: the host quotas' (storm), or each note's quota (storm-pairs: no host repeats), and aggregates
            assert storm_run["notices"] <= 2 * Config().detection.aggregate_max_per_note + 10, name
    mix_run = captures["mix"]["results"]["icmpsensor"]
    assert mix_run["exfil_missed"] == [] and mix_run["false_positives"] == []
    assert captures["novel-mix"]["results"]["icmpsensor"]["exfil_missed"] == []
    assert captures["jumbo-fragments"]["results"]["icmpsensor"]["exfil_missed"] == []


def test_the_table_gives_both_ratios_per_stage() -> None:
    def run(pps: float, **extra: object) -> dict:
        return {"packets": 100, "pps": pps, "rss_mb": 30.0, **extra}

    mix = throughput.CaptureSet("mix", Path("m.pcap"), {}, ["ceiling-raw", "ceiling", "icmpsensor"],
                                {"ceiling-raw": run(4e6), "ceiling": run(1e6),
                                 "icmpsensor": run(1e5, notices=3, notices_folded=0)})
    storm = throughput.CaptureSet("storm", Path("s.pcap"), {}, ["ceiling-raw", "ceiling", "icmpsensor"],
                                  {"ceiling-raw": run(2e6), "ceiling": run(5e5),
                                   "icmpsensor": run(2.5e4, notices=23, notices_folded=39_980)})
    rows = throughput.table_rows([mix, storm])
    by = {(r[0], r[1]): dict(zip(throughput.HEADER, r, strict=True)) for r in rows}
    sensor = by[("notice storm", "icmpsensor end to end")]
    assert (sensor["x raw next_batch"], sensor["x materialised"], sensor["x mix"]) == ("0.013", "0.050", "0.25")
    assert sensor["notices written / folded"] == "23 / 39,980"
    assert by[("mix", "icmpsensor end to end")]["x raw next_batch"] == "0.025"
    assert by[("mix", "libpcap read, materialised (ceiling)")]["x raw next_batch"] == "0.250"


def test_every_hostile_shape_is_written_and_read_as_it_says(tmp_path: Path) -> None:
    """bench/hostile_shapes.py: each shape's capture decodes without an error; what is not ICMP is skipped."""
    for name in hostile_shapes.SHAPES:
        result = throughput.stage_icmpsensor(str(hostile_shapes.ensure_shape(name, 400, tmp_path)))
        assert result["decode_errors"] == 0, name
        if name == "other-traffic":
            assert result["icmp"] == 0 and result["decode_skipped"] == result["packets"] == 400
        elif name == "jumbo":
            assert result["icmp"] == 400 // 41 and result["decode"]["fragments"]["reassembled"] == 400 // 41
        else:
            assert result["icmp"] == result["packets"] == 400, name


def test_the_hostile_shapes_table_gives_both_ratios_and_the_growth(tmp_path: Path) -> None:
    lines: list[str] = []
    assert hostile_shapes.main(["--packets", "300", "--shapes", "storm-v6", "--keep", str(tmp_path), "--repeat", "3"],
                               lines.append) == 0
    header, _, line = lines
    cells = dict(zip(hostile_shapes.HEADER, (cell.strip() for cell in line.strip(" |").split("|")), strict=True))
    assert header.count("|") == len(hostile_shapes.HEADER) + 1
    assert cells["shape"] == "storm-v6" and cells["packets (4N)"] == "1,200"
    assert 0 < float(cells["x raw next_batch"]) < float(cells["x materialised"]) < 1
    written, raised = (int(n) for n in cells["notices written / raised"].split(" / "))
    assert float(cells["growth N→4N"]) > 0 and raised >= 2400 and 0 < written < 100  # a DataExfil and a summary a
    # flow, the storm folded


def test_c_path_declines_counts_what_python_takes_by_kind(tmp_path: Path) -> None:
    """bench/c_path_declines.py: a pair that comes back after its flow ended (its pair memory carries the last
    sketch into the new flow: Detector._flow_started, which the C path leaves to Python) counted under its kind,
    the rest of the ping taken in C; the same packets replayed twice count alike."""
    rng = random.Random(4)
    frames = [(1e9 + 0.2 * i, craft.ether(craft.icmp4("10.0.0.1", "10.0.0.2", craft.ECHO_REQUEST, 0, 7, i + 1,
                                                      rng.randbytes(120))))
              for i in range(4)]  # novel chunks: the pair is remembered when the flow ends
    frames += [(1e9 + 400 + 0.2 * i, craft.ether(craft.icmp4("10.0.0.1", "10.0.0.2", craft.ECHO_REQUEST, 0, 8, i + 1,
                                                             bc.iputils_payload(56, 1e9 + 400 + 0.2 * i - 0.01))))
               for i in range(8)]
    path = tmp_path / "back.pcap"
    craft.write_pcap(path, frames)
    declined, seen = c_path_declines.count_declines(str(path))
    assert seen == 12
    assert declined == {("request", "new flow", "iputils"): 1}, declined  # the ping's first request after 400 s
    assert c_path_declines.count_declines(str(path)) == (declined, seen)
