"""The capacity model (issue 12): the bits a sender controlled beyond a benign model of each field.

The pure functions of detect/capacity.py one by one, then the detector on every class of
testkit/capacity_corpus.py: each positive reported with the channel that carried the data, each benign
monitoring class silent."""

from __future__ import annotations

import itertools
import math
import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from icmpsensor.config.schema import AllowlistConfig, DetectionConfig
from icmpsensor.decode.packet import IcmpPacket
from icmpsensor.detect import capacity
from icmpsensor.detect.profile import make_detector
from icmpsensor.notice.record import Notice
from testkit import capacity_corpus as corpus
from testkit.benign_corpus import BENIGN_CASES, CLIENT, SERVER, START, iputils_payload
from testkit.exfil_corpus import echo, kernel_reply
from tests.hypothesis_counts import examples

# -- the fields, one by one --------------------------------------------------------------------------


def test_sequence_numbers_one_up_in_either_byte_order_are_free_and_jumps_cost_their_size() -> None:
    assert capacity.seq_bits(8, 7) == 0.0
    assert capacity.seq_bits(0x0800, 0x0700) == 0.0  # hping3: host byte order on the wire
    assert capacity.seq_bits(0, 0xFFFF) == 0.0  # wraps
    assert capacity.seq_bits(10, 7) == 0.0  # a lost reply or two
    assert capacity.seq_bits(7, 7) == 0.0  # a repeat
    assert capacity.seq_bits(1000, 7) == pytest.approx(math.log2(1 + 992 - 2))
    random_steps = [capacity.seq_bits(random.Random(k).randrange(65536), 7) for k in range(200)]
    assert sum(random_steps) / len(random_steps) > 12  # random data in seq: most of its 16 bits


def test_a_new_run_costs_the_identifier_distance_and_the_first_sequence_number() -> None:
    assert capacity.new_run_bits(0x1235, 1, 0x1234, 9) == 0.0  # next pid, seq from 1
    assert capacity.new_run_bits(0x1240, 0, 0x1234, 9) == 0.0
    assert capacity.new_run_bits(2, 10, 1, 9) == 0.0  # Windows: ident 1 or 2, seq counts on
    assert capacity.new_run_bits(0x9234, 1, 0x1234, 9) > 14


def test_the_run_budget_is_a_token_bucket() -> None:
    due, free = 0.0, []
    for k in range(30):  # 30 runs in 3 s: the burst, then nothing
        ok, due = capacity.take_token(due, START + k * 0.1, capacity.RUN_BUDGET, capacity.RUN_REFILL)
        free.append(ok)
    assert sum(free) == capacity.RUN_BUDGET
    ok, _ = capacity.take_token(due, START + 3 + 5 * capacity.RUN_REFILL, capacity.RUN_BUDGET, capacity.RUN_REFILL)
    assert ok
    due = 0.0
    for k in range(1000):  # one run per refill period forever: always free
        ok, due = capacity.take_token(due, START + k * capacity.RUN_REFILL, capacity.RUN_BUDGET, capacity.RUN_REFILL)
        assert ok


def test_an_embedded_clock_costs_what_its_offset_moved_beyond_jitter() -> None:
    jitter = DetectionConfig().clock_jitter
    assert capacity.time_bits(0.005, 0.0, jitter) == 0.0
    assert capacity.time_bits(-0.009, 0.0, jitter) == 0.0
    excess = 0.0655 - jitter
    assert capacity.time_bits(0.0655, 0.0, jitter) == pytest.approx(math.log2(1 + excess / capacity.TIME_UNIT))


def test_sizes_within_a_run() -> None:
    assert capacity.length_bits(56, 56) == 0.0
    assert capacity.length_bits(1372, 1472, 1372) == 0.0  # a path MTU probe's two sizes
    assert capacity.length_bits(100, 56) == pytest.approx(math.log2(45))


def _timeval(t: float) -> bytes:
    return struct.pack("<QQ", int(t), int(t % 1 * 1e6))


@pytest.mark.parametrize(("name", "previous", "current", "dt"), [
    ("counter LE", struct.pack("<I", 41) + b"fill", struct.pack("<I", 42) + b"fill", 1.0),
    ("counter BE", struct.pack(">I", 41) + b"fill", struct.pack(">I", 42) + b"fill", 1.0),
    ("microseconds LE", struct.pack("<Q", 1_700_000_000_000_000), struct.pack("<Q", 1_700_000_001_000_300), 1.0),
    ("milliseconds BE", struct.pack(">Q", 1_700_000_000_000), struct.pack(">Q", 1_700_000_000_250), 0.25),
    ("timeval", _timeval(1_700_000_000.9), _timeval(1_700_000_001.9), 1.0),
    ("double", struct.pack("!d", 1_700_000_000.25), struct.pack("!d", 1_700_000_001.25), 1.0),
])
def test_counters_and_clocks_in_changed_places_are_nearly_free(name: str, previous: bytes, current: bytes,
                                                               dt: float) -> None:
    bits = capacity.field_bits(current, previous, dt, DetectionConfig().clock_jitter)
    assert bits is not None and bits < 2, name


@pytest.mark.parametrize(("name", "previous", "current", "dt"), [
    ("zero-padded counter", b"probe seq=000041 ok", b"probe seq=000042 ok", 1.0),
    ("counter", b"keepalive 41 ", b"keepalive 42 ", 1.0),
    ("epoch seconds, 6 decimals", b"t=1700000000.987654 h=mon1", b"t=1700000001.987991 h=mon1", 1.0),
    ("epoch ms", b"HC|1700000000123|7|ok", b"HC|1700000000373|8|ok", 0.25),
    ("ISO time at a minute's end", b"at 2026-12-03T12:00:59.912345Z", b"at 2026-12-03T12:01:00.912512Z", 1.0),
    ("microseconds of the second", b"usec=912345;", b"usec=412345;", 0.5),
])
def test_decimal_text_counters_and_clocks_are_nearly_free(name: str, previous: bytes, current: bytes,
                                                          dt: float) -> None:
    bits = capacity.field_bits(current, previous, dt, DetectionConfig().clock_jitter)
    assert bits is not None and bits < 2, (name, bits)


@settings(max_examples=examples(600), deadline=None)
@given(st.data())
def test_any_two_payloads_in_a_decimal_alphabet_get_a_cost_never_an_error(data: st.DataObject) -> None:
    # hostile input: points where digits were ("..", ".5"), separators, runs of digits past a 64-bit number
    alphabet = st.sampled_from(b"0123456789.:-T ")
    previous = bytes(data.draw(st.lists(alphabet, min_size=1, max_size=48)))
    changes = data.draw(st.lists(st.tuples(st.integers(0, len(previous) - 1), alphabet), max_size=6))
    current = bytearray(previous)
    for at, byte in changes:
        current[at] = byte
    bits = capacity.field_bits(bytes(current), previous, 1.0, DetectionConfig().clock_jitter)
    assert bits is None or bits >= 0.0
    assert capacity.field_bits(b"x.5y", b"x..y", 1.0, 0.01) is not None  # once a ValueError


def test_data_in_decimal_digits_costs_about_what_the_digits_hold() -> None:
    rng = random.Random(4)
    costs = []
    for _ in range(200):
        previous = b"probe seq=%08d ok" % rng.randrange(10**8)
        current = b"probe seq=%08d ok" % rng.randrange(10**8)
        costs.append(capacity.field_bits(current, previous, 1.0, DetectionConfig().clock_jitter))
    assert sum(c for c in costs if c is not None) / len(costs) > 20  # of 26.6 in 8 random digits


def test_random_data_in_a_field_costs_about_its_width() -> None:
    rng = random.Random(1)
    costs = []
    for _ in range(200):
        previous = struct.pack("<I", rng.getrandbits(32)) + b"fill"
        current = struct.pack("<I", rng.getrandbits(32)) + b"fill"
        costs.append(capacity.field_bits(current, previous, 1.0, DetectionConfig().clock_jitter))
    assert sum(c for c in costs if c is not None) / len(costs) > 24
    assert capacity.field_bits(bytes(range(40)), bytes(40), 1.0, 0.01) is None  # not a few short places


@pytest.mark.parametrize("jitter", [0.002, 0.010, 0.050])
def test_random_data_in_a_two_byte_field_costs_about_its_width(jitter: float) -> None:
    # A 2-byte field cannot hold a second's microseconds or nanoseconds: it is no sub-second clock part
    rng = random.Random(2)
    costs = []
    for _ in range(200):
        previous = b"head" + struct.pack("<H", rng.getrandbits(16)) + b"fill"
        current = b"head" + struct.pack("<H", rng.getrandbits(16)) + b"fill"
        costs.append(capacity.field_bits(current, previous, 1.0, jitter))
    assert sum(c for c in costs if c is not None) / len(costs) > 11


def _ns_fields(values: list[int]) -> bytes:
    """An unknown 64-byte payload with 4-byte little-endian fields at 0, 16, 32 and 48, text between."""
    out = bytearray(b"HEALTHCHK/1.0 agent=edr probe=icmp ".ljust(64, b"."))
    for place, value in zip((0, 16, 32, 48), values, strict=False):
        out[place : place + 4] = struct.pack("<I", value)
    return bytes(out)


def test_clocks_in_one_payload_share_one_jitter() -> None:
    # Four fields that each move like a nanosecond clock, each within the jitter allowance of the capture clock
    # but each off by its own amount: one send time cannot explain them; ~23 bits of data rode in each (red team)
    rng = random.Random(3)
    jitter = DetectionConfig().clock_jitter
    costs = []
    for _ in range(100):
        before = [rng.randrange(10**8, 9 * 10**8) for _ in range(4)]
        after = [value + 50_000_000 + rng.randrange(-4_000_000, 4_000_000) for value in before]
        costs.append(capacity.field_bits(_ns_fields(after), _ns_fields(before), 0.05, jitter))
    assert None not in costs and sum(costs) / len(costs) > 40  # type: ignore[arg-type]
    # a ping's own clock, and two bytes of its fill changed: the 4-byte window around them reads as a second
    # nanosecond clock, free alone (its changes are under 66 µs) but not at the ping's send time
    costs = []
    for i in range(300):
        sent = START + i + rng.randrange(200) / 1e6  # each sent up to 200 µs late
        before = iputils_payload(56, START + i - 1.0 + rng.randrange(200) / 1e6)
        after = bytearray(iputils_payload(56, sent))
        after[40:42] = rng.randbytes(2)
        costs.append(capacity.field_bits(bytes(after), before, 1.0, jitter))
    assert None not in costs and sum(costs) / len(costs) > 2  # type: ignore[arg-type]
    # two clocks of one send time (ISO 8601 µs and epoch seconds with 6 decimals) still cost nothing ...
    sent = 1_700_000_000.123456
    previous = b"mon1 2023-11-14T22:13:20.123456Z %.6f" % sent
    current = b"mon1 2023-11-14T22:13:21.127311Z %.6f" % (sent + 1.003855)
    assert capacity.field_bits(current, previous, 1.0, jitter) == 0.0
    # ... nor does one clock beside a counter, or a struct timeval's seconds and its microseconds 5 ms late
    timeval = struct.pack("<II", 1_700_000_000, 400_000) + b"fill"
    later = struct.pack("<II", 1_700_000_001, 405_000) + b"fill"
    assert capacity.field_bits(later, timeval, 1.0, jitter) == 0.0


def test_options_count_except_router_alert() -> None:
    assert capacity.option_bytes(b"\x94\x04\x00\x00") == 0
    assert capacity.option_bytes(b"\x05\x02\x00\x00") == 0
    assert capacity.option_bytes(b"\x1e\x06secret") == 8
    state = capacity.FlowChannels()
    assert capacity.options_bits(state, b"\x1e\x02ab") == 32
    assert capacity.options_bits(state, b"\x1e\x02ab") == 0  # the same again: once


NOON = 1_765_022_400.0  # 2025-12-06 12:00:00 UT
NOON_MS = 12 * 3_600_000


def timestamp_option(flag: int, slots: list[bytes], filled: int) -> bytes:
    """RFC 791's timestamp option: type 68, length, pointer past `filled` slots, overflow 0 and `flag`."""
    unit = 4 if flag == 0 else 8
    return bytes((68, 4 + len(slots) * unit, 5 + filled * unit, flag)) + b"".join(slots)


def test_a_timestamp_option_as_ping_t_sends_it_is_free() -> None:
    """`ping -T tsonly`: Linux stamps the sender's time of day in ms, routers theirs; `-T tsandaddr` with each
    stamping host's address. Each request's option differs from the last, and its 40 bytes were charged every
    time: DataExfil after 4 requests of a benign ping (red team, 2026-12-08)."""
    stamps = [struct.pack("!I", NOON_MS + 3), struct.pack("!I", NOON_MS + 5)] + [bytes(4)] * 7
    assert capacity.option_bytes(timestamp_option(0, stamps, 2), NOON, False, 300.0) == 0
    pairs = [bytes((10, 0, 0, 1)) + stamps[0], bytes((10, 9, 0, 1)) + stamps[1]] + [bytes(8)] * 2
    assert capacity.option_bytes(timestamp_option(1, pairs, 2), NOON, False, 300.0) == 0
    prespecified = [bytes((10, 0, 0, 1)) + stamps[0], bytes((10, 9, 0, 1)) + bytes(4)]
    assert capacity.option_bytes(timestamp_option(3, prespecified, 1), NOON, False, 300.0) == 0
    state = capacity.FlowChannels()
    for i in range(20):
        option = timestamp_option(0, [struct.pack("!I", NOON_MS + 200 * i)] + [bytes(4)] * 8, 1)
        assert capacity.options_bits(state, option, NOON + 0.2 * i, False, 300.0) == 0


def test_a_timestamp_option_carries_what_is_not_a_hosts_time_of_day() -> None:
    data = [b"sec1", b"ret2", bytes(4)]
    assert capacity.option_bytes(timestamp_option(0, data, 2), NOON, False, 300.0) == 8  # two stamps, not times
    late = struct.pack("!I", NOON_MS + 3_600_000)  # an hour off the capture's time
    assert capacity.option_bytes(timestamp_option(0, [late, bytes(4)], 1), NOON, False, 300.0) == 4
    unfilled = [struct.pack("!I", NOON_MS), b"data", b"more"]  # slots past the pointer hold bytes
    assert capacity.option_bytes(timestamp_option(0, unfilled, 1), NOON, False, 300.0) == 8
    assert capacity.option_bytes(bytes((68, 12, 6, 0)) + bytes(8), NOON, False, 300.0) == 12  # a pointer mid-slot
    assert capacity.option_bytes(bytes((68, 12, 5, 2)) + bytes(8), NOON, False, 300.0) == 12  # flag 2: undefined
    other = b"\x1e\x08secret"  # an option of another type beside it: whole
    assert capacity.option_bytes(other + timestamp_option(0, [bytes(4)], 0), NOON, False, 300.0) == 8
    assert capacity.option_bytes(timestamp_option(0, [b"sec1"], 1), NOON, True, 300.0) == 8  # IPv6: whole


def test_icmplib_layout_is_its_exact_padding() -> None:
    rng = random.Random(2)
    alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ1234567890"
    samples = [bytes(rng.choices(alphabet, k=56)) for _ in range(20_000)]
    assert sum(capacity.icmplib_layout(p, 0) for p in samples) >= 19_990
    assert not capacity.icmplib_layout(samples[0], 200)  # not a short run
    assert not capacity.icmplib_layout(samples[0][:40], 0)  # not its size
    assert not capacity.icmplib_layout(random.Random(3).randbytes(28).hex().encode(), 0)  # hex: no capitals
    assert not capacity.icmplib_layout((b"thequickbrownfoxjumpsoverthelazydog" * 2)[:56], 0)  # text: no capitals


def test_pythonping_layout_is_the_first_request_of_a_call() -> None:
    assert capacity.pythonping_layout(b"K", 1)  # its default size 1
    assert capacity.pythonping_layout(b"Q7ZK0M2VX9A4TB8C1N5RDW3YE6HJ", 1)
    assert capacity.pythonping_layout(b"K", 0x0100)  # seq 1 in a little-endian host's byte order, as it sends it
    assert not capacity.pythonping_layout(b"K", 2)  # the call's later requests repeat the first
    assert not capacity.pythonping_layout(b"K", 0x0200)
    assert not capacity.pythonping_layout(b"q7zk0m2vx9a4tb8c", 1)  # small letters: not its alphabet
    assert not capacity.pythonping_layout(b"QZKMVXATBCNRDWYEHJ", 1)  # 18 draws without a digit: not uniform
    assert not capacity.pythonping_layout(b"7" * 16 + b"Q" * 49, 1)  # longer than recognised


def test_runs_side_by_side_are_followed_each() -> None:
    state = capacity.FlowChannels()
    last = (0x100, 5, 56)
    charges, free = capacity.request_header(state, last, 0x200, 1, 100, START, 1.0)  # a second pinger starts
    assert free and charges == []
    charges, free = capacity.request_header(state, (0x200, 1, 100), 0x100, 6, 56, START + 1, 1.0)  # the first resumes
    assert free and sum(bits for _, bits in charges) == 0.0


def test_a_sequence_number_that_moved_on_during_a_pause_is_a_new_run_within_the_run_budget() -> None:
    # Windows: identifier 1, one counter per machine; this host's next run starts 76 further on
    state = capacity.FlowChannels()
    charges, free = capacity.request_header(state, (1, 100, 32), 1, 177, 32, START, capacity.RUN_PAUSE)
    assert free and sum(bits for _, bits in charges) == 0.0
    charges, _ = capacity.request_header(state, (1, 177, 32), 1, 178, 32, START + 1, 1.0)  # then one up
    assert sum(bits for _, bits in charges) == 0.0
    # without the pause the jump is data; and the pauses take their tokens from the run budget
    charges, _ = capacity.request_header(capacity.FlowChannels(), (1, 100, 32), 1, 177, 32, START, 1.0)
    assert dict(charges)["seq"] > 6
    state = capacity.FlowChannels()
    costs = [sum(bits for _, bits in capacity.request_header(state, (1, 100 * k, 32), 1, 100 * k + 77 + 3 * k, 32,
                                                             START, capacity.RUN_PAUSE)[0])
             for k in range(1, 21)]
    assert not any(costs[: int(capacity.RUN_BUDGET)]) and all(costs[int(capacity.RUN_BUDGET) :])


# -- the detector on every class ---------------------------------------------------------------------


def run(packets: list[IcmpPacket]) -> list[Notice]:
    det = make_detector(DetectionConfig(), AllowlistConfig())
    out: list[Notice] = []
    for pkt in packets:
        out.extend(det.process(pkt))
    return out + det.flush()


CHANNEL = {"ident-seq": "ident", "new-ident-each": "ident", "timestamp-usec": "time", "busybox-counter": "time",
           "ping-patterns": "pattern", "length-modulated": "length", "size-per-run": "length",
           "pattern-per-run": "pattern", "seq-only": "seq", "spread-rand-dest": "payload",
           "small-secret": "payload", "icmplib-layout-exfil": "payload",
           "secret-two-packets": "payload", "secret-in-replies": "payload",
           "quoted-data": "non-echo", "extension-objects": "non-echo",
           "ipv6-dest-options": "options", "nd-options": "non-echo", "text-digits-data": "fields",
           "pythonping-layout-exfil": "payload"}


@pytest.mark.parametrize("name", sorted(corpus.CAPACITY_POSITIVES))
def test_every_capacity_class_is_reported_with_its_channel(name: str) -> None:
    make, (src, dst) = corpus.CAPACITY_POSITIVES[name]
    alerts = [n for n in run(make()) if n.src == src and dst in ("*", n.dst) and n.note != "ICMP::ICMP_ExfilSummary"]
    assert alerts, f"{name}: no notice names {src} -> {dst}"
    assert CHANNEL[name] in alerts[0].channels.split(","), (name, alerts[0].channels)
    assert f"Channels: {CHANNEL[name]}" in alerts[0].sub or CHANNEL[name] in alerts[0].sub


@pytest.mark.parametrize("name", sorted(corpus.CAPACITY_NEGATIVES))
def test_monitoring_that_changes_fields_stays_silent(name: str) -> None:
    assert run(corpus.CAPACITY_NEGATIVES[name]()) == []


def test_a_spread_is_reported_once_naming_the_host_and_its_peers() -> None:
    notices = run(corpus.spread_rand_dest())
    spread = [n for n in notices if n.note == "ICMP::ICMP_ExfilSpread"]
    assert len(spread) == 1 and spread[0].src == CLIENT and spread[0].peers >= 16
    assert f"to {spread[0].peers} destinations" in spread[0].msg
    assert not [n for n in notices if n.note == "ICMP::ICMP_DataExfil"]  # every flow under the threshold


def test_one_big_flow_and_a_few_one_byte_flows_are_no_spread() -> None:
    secret = corpus.SECRET
    packets = [echo(START + k, CLIENT, SERVER, True, 9, k, secret[k * 100 : (k + 1) * 100]) for k in range(10)]
    packets += [echo(START + 20 + k, f"203.0.113.{k + 1}", SERVER, True, 1, 1, b"x") for k in range(40)]
    notes = [n.note for n in run(packets)]
    assert "ICMP::ICMP_DataExfil" in notes and "ICMP::ICMP_ExfilSpread" not in notes


def test_a_constant_health_check_payload_is_not_nping() -> None:
    payload = b"exfil:db-password=hunter2"  # nping's corpus payload, but seq +1 every time
    packets = [echo(START + k, CLIENT, SERVER, True, 0x122E, k + 1, payload) for k in range(50)]
    assert run(packets) == []


def test_icmplib_layout_past_its_budget_counts_as_data() -> None:
    rng = random.Random(4)
    alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ1234567890"
    packets = [echo(START + k * 0.05, CLIENT, SERVER, True, 0x1111, k % 60, bytes(rng.choices(alphabet, k=56)))
               for k in range(200)]  # 20 per second: exfiltration volume
    assert "ICMP::ICMP_DataExfil" in {n.note for n in run(packets)}


def test_a_ping_with_a_new_pattern_once_in_a_while_is_free() -> None:
    packets = []
    for run_index in range(20):  # one `ping -c 5 -p XX` a minute
        pattern = bytes([run_index]) * 4
        for k in range(5):
            t = START + run_index * 60 + k
            packets.append(echo(t, CLIENT, SERVER, True, 0x100 + run_index, k + 1,
                                iputils_payload(56, t - 20e-6, pattern)))
    assert run(packets) == []


def test_fping_loop_numbering_every_packet_across_its_targets_is_free() -> None:
    # fping -l (schweikert/fping src/fping.c): one identifier, the sequence number counts every request
    # sent, to all targets in turn: each target sees a constant stride of the number of targets.
    targets = [f"10.9.{k // 200}.{k % 200 + 1}" for k in range(150)]
    packets, seq = [], 0
    for r in range(120):
        for k, dst in enumerate(targets):
            packets.append(echo(START + r * 60 + k * 0.01, CLIENT, dst, True, 0x4A4A, seq, bytes(56)))
            seq = (seq + 1) & 0xFFFF
    assert run(packets) == []


def test_one_packet_replayed_over_and_over_is_not_nping() -> None:
    # a capture looped by tcpreplay: each source's one request (seq 1) again and again
    payload = corpus.SECRET[:500]
    packets = [echo(START + k, CLIENT, SERVER, True, 0x0101, 1, payload) for k in range(15)]
    assert "ICMP::ICMP_Tunnel" not in {n.note for n in run(packets)}


# -- an embedded clock seen through a jittery link (detection.clock_jitter) ---------------------------------

ACME_FILL = b"acme-uptime-probe/2 " * 3  # an implementation no template knows: a µs clock, then its text


def jittery_pings(payload_at: object, jitter: float, seconds: int = 3600, seed: int = 5) -> list[IcmpPacket]:
    """One ping a second for `seconds`, its payload written at send time and seen by the sensor 1 ms plus
    uniform(0, jitter) later (a Wi-Fi client behind the monitored link), each answered."""
    rng = random.Random(seed)
    out = []
    for i in range(seconds):
        sent = START + i
        request = echo(sent + 0.001 + rng.uniform(0, jitter), CLIENT, SERVER, True, 0x2A2A, i + 1,
                       payload_at(sent))  # type: ignore[operator]
        out += [request, kernel_reply(request)]
    return out


def unknown_clock_payload(sent: float) -> bytes:
    return struct.pack("<Q", int(sent * 1e6)) + ACME_FILL


def jitter_run(packets: list[IcmpPacket], clock_jitter: float) -> list[Notice]:
    det = make_detector(DetectionConfig(clock_jitter=clock_jitter), AllowlistConfig())
    out: list[Notice] = []
    for pkt in packets:
        out.extend(det.process(pkt))
    return out + det.flush()


@pytest.mark.parametrize("payload_at", [lambda sent: iputils_payload(56, sent), unknown_clock_payload],
                         ids=["iputils", "unknown-usec-clock"])
def test_an_hour_of_pings_over_a_jittery_link_is_silent_once_clock_jitter_allows_it(payload_at: object) -> None:
    packets = jittery_pings(payload_at, jitter=0.030)
    assert jitter_run(packets, clock_jitter=0.050) == []
    assert jitter_run(jittery_pings(payload_at, jitter=0.004), clock_jitter=DetectionConfig().clock_jitter) == []


def test_data_in_the_microseconds_is_still_charged_with_a_larger_clock_jitter() -> None:
    rng = random.Random(9)

    def with_data(sent: float) -> bytes:  # whole seconds right, the microseconds three random bytes' worth
        return iputils_payload(56, int(sent) + rng.randrange(1_000_000) / 1e6)

    alerts = [n for n in jitter_run(jittery_pings(with_data, jitter=0.030, seconds=300), clock_jitter=0.050)
              if n.note == "ICMP::ICMP_DataExfil"]
    assert alerts and "time" in alerts[0].channels.split(","), alerts


def test_the_clock_jitter_is_what_a_clock_may_move_for_free() -> None:
    assert capacity.time_bits(0.030, 0.0, 0.050) == 0.0
    assert capacity.time_bits(0.0655, 0.0, 0.050) == pytest.approx(math.log2(1 + 0.0155 / capacity.TIME_UNIT))
    # a 4-byte microsecond counter (BusyBox's layout) 30 ms late: no nanosecond part (its values are past 10^9)
    previous, current = struct.pack("<I", 3_000_000_000), struct.pack("<I", 3_001_030_000)
    assert capacity.field_bits(current + b"fill", previous + b"fill", 1.0, 0.050) == 0.0  # within 50 ms
    assert capacity.field_bits(current + b"fill", previous + b"fill", 1.0, 0.010) > 10


# -- field_bits in C (detect/_fastflows.c) against its reference ---------------------------------------------------


@st.composite
def changed_payloads(draw: st.DrawFn) -> tuple[bytes, bytes, float, float]:
    """A payload and its predecessor that differ in a few places: binary counters and clocks (either byte order,
    2/4/8 bytes, whole or sub-second, an IEEE double), decimal text (digits, a point, ISO-like separators), random
    bytes; and the seconds between them and the jitter."""
    size = draw(st.integers(8, 96))
    previous = bytearray(draw(st.binary(min_size=size, max_size=size)))
    current = bytearray(previous)
    dt = draw(st.one_of(st.floats(0.0, 5.0), st.sampled_from([0.0, 1.0, 0.001, 1e-6, 3600.0])))
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["counter", "clock", "subsecond", "double", "decimal", "random", "digits"]))
        width = draw(st.sampled_from([2, 4, 8]))
        at = draw(st.integers(0, size - width))
        order = draw(st.sampled_from(["little", "big"]))
        old = int.from_bytes(previous[at : at + width], order)
        if kind == "counter":
            new = (old + draw(st.integers(-3, 5))) % (1 << 8 * width)
        elif kind in ("clock", "subsecond"):
            rate = draw(st.sampled_from([1.0, 1e3, 1e6, 1e9]))
            new = int(old + rate * dt + draw(st.integers(-2000, 2000)))
            new = new % int(rate) if kind == "subsecond" and rate > 1 else new % (1 << 8 * width)
        elif kind == "double":
            t = draw(st.floats(1e9, 2e9))
            previous[at - at % 8 : at - at % 8 + 8] = struct.pack(">d" if order == "big" else "<d", t) \
                if at - at % 8 + 8 <= size else previous[at - at % 8 : at - at % 8 + 8]
            new = int.from_bytes(struct.pack(">d" if order == "big" else "<d", t + dt + draw(st.floats(-0.01, 0.01)))
                                 [:width], order) if width == 8 else old
        elif kind in ("decimal", "digits"):
            digits = draw(st.integers(1, min(24, size - at)))
            text = draw(st.text("0123456789" + ("." if kind == "decimal" else ""), min_size=digits, max_size=digits))
            previous[at : at + digits] = text.encode()
            moved = draw(st.text("0123456789", min_size=1, max_size=digits))
            current[at : at + digits] = text.encode()
            current[at + digits - len(moved) : at + digits] = moved.encode()
            continue
        else:
            new = draw(st.integers(0, (1 << 8 * width) - 1))
        current[at : at + width] = (new % (1 << 8 * width)).to_bytes(width, order)
    jitter = draw(st.sampled_from([0.0, 0.001, 0.01, 0.5]))
    return bytes(current), bytes(previous), dt, jitter


@pytest.mark.skipif(capacity.field_bits is capacity.field_bits_reference, reason="the C accelerator is not built")
@settings(max_examples=examples(3000), deadline=None)
@given(changed_payloads())
def test_field_bits_in_c_is_the_reference(case: tuple[bytes, bytes, float, float]) -> None:
    current, previous, dt, jitter = case
    assert capacity.field_bits(current, previous, dt, jitter) == capacity.field_bits_reference(current, previous, dt,
                                                                                               jitter)


@pytest.mark.skipif(capacity.field_bits is capacity.field_bits_reference, reason="the C accelerator is not built")
def test_field_bits_in_c_on_the_capacity_corpus_and_at_the_limits() -> None:
    """Consecutive payloads of every benign corpus case (clocks and counters of real tools), and random decimal and
    binary places."""
    rng = random.Random(44)
    pairs = []
    for make in BENIGN_CASES.values():
        packets = [p for p in make() if isinstance(p, IcmpPacket)][:400]
        pairs += [(b.payload, a.payload, b.ts - a.ts) for a, b in itertools.pairwise(packets)
                  if len(a.payload) == len(b.payload)]
    for _ in range(2000):
        base = bytearray(rng.randbytes(rng.randrange(8, 80)))
        other = bytearray(base)
        for _ in range(rng.randrange(1, 6)):
            at = rng.randrange(len(base))
            other[at : at + rng.randrange(1, 10)] = rng.choice([b"12345", b"99.9", rng.randbytes(3), b"0", b":59"])
        other = other[: len(base)].ljust(len(base), b"\0")
        pairs.append((bytes(other), bytes(base), rng.choice([0.0, 1.0, 0.5, 60.0])))
    for current, previous, dt in pairs:
        for jitter in (0.0, 0.01):
            assert capacity.field_bits(current, previous, dt, jitter) == capacity.field_bits_reference(
                current, previous, dt, jitter), (current, previous, dt, jitter)
