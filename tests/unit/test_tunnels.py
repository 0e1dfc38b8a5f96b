"""Recognition of ICMP tunnelling / exfiltration tools (icmpsensor.tunnels).

The crafted sessions come from testkit/exfil_corpus.py (layouts read from each tool's source,
some also checked live); the real ones, in the seed captures, are in tests/replay/test_seed_decoded.py.
Benign traffic must never be attributed to a tool.
"""

from __future__ import annotations

import collections
import ipaddress
import re
import struct
import time
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from icmpsensor.decode.packet import IcmpPacket
from icmpsensor.detect import tunnels
from icmpsensor.detect.tunnels import ICMPDOOR_ID, ToolMatch, ToolTracker, recognise, without_oldest
from testkit import benign_corpus
from testkit import exfil_corpus as corpus
from tests.hypothesis_counts import examples
from tests.python_lines import lines_run

# Tools whose every session shows in single packets; the others need ToolTracker.
STATEFUL_ONLY = {"hping3-file", "nping-data"}

A, B = "198.51.100.1", "198.51.100.2"


def text(addr: bytes) -> str:
    return str(ipaddress.ip_address(addr))


def observe_all(packets: Iterable[IcmpPacket]) -> list[tuple[IcmpPacket, ToolMatch]]:
    tracker = ToolTracker()
    return [(p, m) for p in packets if (m := tracker.observe(p)) is not None]


def echo(payload: bytes, *, request: bool = True, ident: int = 0x1234, seq: int = 1, ts: float = 1e9) -> IcmpPacket:
    return corpus.echo(ts, A, B, request, ident, seq, payload)


# -- crafted sessions ------------------------------------------------------------------------


def test_registries_cover_the_same_cases() -> None:
    assert set(corpus.EXFIL_CASES) == set(corpus.PROVENANCE) == set(corpus.EXPECTED_SOURCE)


@pytest.mark.parametrize("case", sorted(corpus.EXFIL_CASES))
def test_crafted_session_is_attributed_to_its_tool_only(case: str) -> None:
    matches = observe_all(corpus.EXFIL_CASES[case]())
    assert matches, f"{case}: nothing recognised"
    assert {m.tool for _, m in matches} == {case}
    directions = {(text(p.src), text(p.dst)) for p, _ in matches}
    assert corpus.EXPECTED_SOURCE[case] in directions
    for _, match in matches:
        assert match.evidence and "\n" not in match.evidence


@pytest.mark.parametrize("case", sorted(set(corpus.EXFIL_CASES) - STATEFUL_ONLY))
def test_single_packets_suffice(case: str) -> None:
    found = [m for p in corpus.EXFIL_CASES[case]() if (m := recognise(p)) is not None]
    assert found and {m.tool for m in found} == {case}


@pytest.mark.parametrize("case", sorted(STATEFUL_ONLY))
def test_stateful_tools_are_not_claimed_by_one_packet(case: str) -> None:
    assert all(recognise(p) is None for p in corpus.EXFIL_CASES[case]())


def test_ptunnel_evidence_names_magic_state_and_target() -> None:
    first = corpus.ptunnel_session(dst_port=7777)[0]
    match = recognise(first)
    assert match == ToolMatch("ptunnel", "ptunnel magic 0xd5200880, state kProxyStart from client, "
                                         "dst 127.0.0.1:7777, 0 data bytes")


def test_ptunnel_ng_custom_magic_is_recognised_by_its_header() -> None:
    # ptunnel-ng -m 1a2b3c4d, as run live: the header layout is unchanged.
    packets = corpus.ptunnel_session(magic=0x1A2B3C4D)
    tools = {m.tool for p in packets if (m := recognise(p))}
    assert tools == {"ptunnel-ng"}
    assert "custom magic 0x1a2b3c4d" in recognise(packets[0]).evidence  # type: ignore[union-attr]


def test_ptunnel_magic_alone_is_not_enough() -> None:
    # The accepted false-positive surface is a payload with a magic AND a consistent header.
    assert recognise(echo(struct.pack("!I", 0xD5200880) + bytes(range(40)))) is None
    assert recognise(echo(struct.pack("!I", 0xDEADC0DE) + b"\xff" * 60)) is None


def test_hans_data_carries_an_ip_packet() -> None:
    matches = [m for p in corpus.hans_session() if (m := recognise(p)) and "type DATA" in m.evidence]
    assert matches and all(m.tool == "hans" for m in matches)


def test_pingtunnel_data_evidence_names_connection_and_target() -> None:
    data = [m for p in corpus.pingtunnel_session() if (m := recognise(p)) and "type DATA" in m.evidence]
    assert any("target '198.51.100.20:4455'" in m.evidence for m in data)


def test_det_register_data_and_done() -> None:
    evidence = [m.evidence for p in corpus.det() if p.icmp_type == 8 and (m := recognise(p))]
    assert "REGISTER file 'payroll.csv'" in evidence[0]
    assert "data packet 0" in evidence[1]
    assert "DONE" in evidence[-1]


def test_egress_assess_python_client() -> None:
    packets = corpus.egress_assess(client="python")
    assert {p.ident for p in packets} == {0}
    assert {m.tool for p in packets if (m := recognise(p))} == {"egress-assess"}


def test_icmpsh_command_in_reply_to_an_idle_poll() -> None:
    matches = observe_all(corpus.icmpsh_session())
    commands = [p for p, m in matches if p.icmp_type == 0]
    assert [p.payload for p in commands] == [b"type payroll.csv\n"]


def test_icmptx_and_icmptunnel_are_told_apart_by_seq() -> None:
    assert {m.tool for p in corpus.icmptx_session() if (m := recognise(p))} == {"icmptx"}
    assert {m.tool for p in corpus.icmptunnel_session() if (m := recognise(p))} == {"icmptunnel"}


def test_tracker_memory_is_bounded() -> None:
    tracker = ToolTracker(max_flows=8, max_pending=8)
    for ident in range(100):
        tracker.observe(echo(b"", ident=ident))
        tracker.observe(echo(b"x" * 20, ident=ident))
    assert len(tracker._flows) <= 8 and len(tracker._empty_requests) <= 8


# -- benign traffic --------------------------------------------------------------------------

WINDOWS_ALPHABET = b"abcdefghijklmnopqrstuvw"


def iputils_payload(size: int, now: float) -> bytes:
    """Linux ping: struct timeval (64-bit) first, then byte i = i & 0xFF."""
    fill = bytes(i & 0xFF for i in range(size))
    if size < 16:
        return fill
    return struct.pack("<qq", int(now), int(now % 1 * 1e6)) + fill[16:]


def bsd_payload(size: int, now: float) -> bytes:
    """macOS/FreeBSD ping: a 32-bit seconds/microseconds pair (tv32) first."""
    fill = bytes(i & 0xFF for i in range(size))
    return struct.pack("!II", int(now), int(now % 1 * 1e6)) + fill[8:] if size >= 8 else fill


def windows_payload(size: int) -> bytes:
    return (WINDOWS_ALPHABET * (size // len(WINDOWS_ALPHABET) + 1))[:size]


BENIGN_SIZES = (1, 2, 4, 8, 16, 28, 32, 40, 48, 56, 64, 100, 120, 500, 1000, 1400, 1472, 4000, 8000)


def benign_payloads(now: float) -> list[bytes]:
    payloads = [b""]
    for size in BENIGN_SIZES:
        payloads += [bytes(size), b"\xff" * size, b"X" * size, windows_payload(size), iputils_payload(size, now),
                     bsd_payload(size, now), bytes(i & 0xFF for i in range(size))]
    return payloads


def test_benign_payloads_are_not_tools() -> None:
    now = time.time()
    for payload in benign_payloads(now):
        for request in (True, False):
            for ident, seq in ((1, 1), (0, 0), (0x8C5D, 7), (0x0001, 0x0399)):
                pkt = echo(payload, request=request, ident=ident, seq=seq)
                assert recognise(pkt) is None, payload[:32]


def ping_stream(payload_of: object, count: int = 60, interval: float = 1.0, ident: int = 0x4242) -> list[IcmpPacket]:
    start = time.time()
    packets = []
    for n in range(count):
        ts = start + n * interval
        request = corpus.echo(ts, A, B, True, ident, n + 1, payload_of(ts))  # type: ignore[operator]
        packets += [request, corpus.kernel_reply(request, 2e-4)]
    return packets


@pytest.mark.parametrize("size", [16, 32, 56, 64, 100, 1472])
def test_benign_ping_streams_are_not_tools(size: int) -> None:
    streams = [
        ping_stream(lambda ts: iputils_payload(size, ts)),
        ping_stream(lambda ts: iputils_payload(size, ts), interval=0.01),  # ping -f / -i 0.01
        ping_stream(lambda ts: bsd_payload(size, ts)),
        ping_stream(lambda ts: windows_payload(size)),
        ping_stream(lambda ts: bytes(size)),  # fping
        ping_stream(lambda ts: b"\xab\xcd" * (size // 2)),  # Cisco IOS 0xABCD pattern
    ]
    for stream in streams:
        assert observe_all(stream) == []


def test_benign_corpus_is_never_a_tool() -> None:
    assert benign_corpus.BENIGN_CASES
    for name, make in benign_corpus.BENIGN_CASES.items():
        found = observe_all(make())
        assert found == [], f"{name}: {found[0][1]}"


# Hypothesis also draws the literals of the module under test; these exact payloads are tool
# markers (PyExfil's bare end-of-data terminator, icmpsh's test and error strings) and are the
# accepted false-positive surface for short payloads, as is a request that ends in a cmd.exe
# prompt (`A:\>`, `C:\Users\x>`: what the icmpsh slave sends).
ACCEPTED_EXACT_MARKERS = {b"\x12\x13\x14\x15", b"Test1234\n", b"Process was not created\n"}


def ends_in_a_cmd_prompt(payload: bytes) -> bool:
    last_line = payload.rsplit(b"\n", 1)[-1]
    return last_line[1:3] == b":\\" and last_line.endswith(b">")


@settings(max_examples=examples(400), deadline=None)
@given(
    payload=st.binary(min_size=1, max_size=64),
    request=st.booleans(),
    # icmpdoor is recognised from ICMP id 13170 plus a printable payload: accepted surface.
    ident=st.integers(0, 0xFFFF).filter(lambda i: i != ICMPDOOR_ID),
    seq=st.integers(0, 0xFFFF),
    code=st.sampled_from([0, 0, 2]),
)
def test_random_payloads_are_not_tools(payload: bytes, request: bool, ident: int, seq: int, code: int) -> None:
    pkt = corpus.echo(1e9, A, B, request, ident, seq, payload, code=code)
    found = recognise(pkt)
    assert found is None or payload in ACCEPTED_EXACT_MARKERS or (
        found.tool == "icmpsh" and request and ends_in_a_cmd_prompt(payload)), found


def test_a_cmd_prompt_in_a_request_is_icmpsh() -> None:
    assert ends_in_a_cmd_prompt(b"A:\\>") and not ends_in_a_cmd_prompt(b"A:\\> ")
    found = recognise(corpus.echo(1e9, A, B, True, 0, 0, b"A:\\>"))
    assert found is not None and found.tool == "icmpsh"
    assert recognise(corpus.echo(1e9, A, B, False, 0, 0, b"A:\\>")) is None


def test_non_echo_messages_are_ignored() -> None:
    pkt = IcmpPacket(1e9, corpus.packed(A), corpus.packed(B), False, 3, 3, -1, -1, b"hanc\x08", 70)
    assert recognise(pkt) is None and ToolTracker().observe(pkt) is None


# -- cost --------------------------------------------------------------------------------------


def test_print_cost_per_call_on_a_miss() -> None:
    now = time.time()
    payloads = {
        "empty": b"",
        "iputils-56": iputils_payload(56, now),
        "windows-32": windows_payload(32),
        "zeros-56": bytes(56),
        "iputils-1472": iputils_payload(1472, now),
    }
    rounds = 20_000
    for name, payload in payloads.items():
        pkt = echo(payload)
        assert recognise(pkt) is None
        started = time.perf_counter()
        for _ in range(rounds):
            recognise(pkt)
        per_call = (time.perf_counter() - started) / rounds
        print(f"recognise() miss, {name}: {per_call * 1e6:.2f} us/call")


# -- work bounded by what a tool's message can hold --------------------------------------------------------------

PINGTUNNEL_MAGIC = b"\x30\xda\xfa\x06"
REPEATED_FIELDS = {  # 60 KB payloads (a reassembled jumbo datagram) that only look like a protobuf message
    "empty field 1, over and over": b"\x0a\x00" * 29_998 + PINGTUNNEL_MAGIC,
    "varint field 2, over and over": b"\x10\x00" * 29_998 + PINGTUNNEL_MAGIC,
    "ten-byte varints": (b"\x10" + b"\x80" * 8 + b"\x01") * 5_999 + PINGTUNNEL_MAGIC,
    "newlines": b"\n" * 59_996 + PINGTUNNEL_MAGIC,
}


@pytest.mark.parametrize("name", sorted(REPEATED_FIELDS))
def test_a_protobuf_parse_ends_where_pingtunnel_could_not_have_written_it(name: str,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """pingtunnel marshals MyMsg with protobuf-go, which writes a message's fields in field-number order, each once
    (impl/codec_message.go orderedCoderFields): a payload that repeats a field or goes back is not its message, and is
    given up there, not parsed to its end. Parsed whole, each of these cost the detector 10-19 ms: fifty reassembled
    jumbo datagrams a second blinded it."""
    from icmpsensor.detect import tunnels

    calls = 0
    varint = tunnels._varint

    def counting(p: bytes, pos: int) -> tuple[int, int]:
        nonlocal calls
        calls += 1
        return varint(p, pos)

    monkeypatch.setattr(tunnels, "_varint", counting)
    assert recognise(echo(REPEATED_FIELDS[name])) is None
    assert calls <= 2 * 32  # a key and a value for each field number MyMsg may hold, at most once each


def test_a_pingtunnel_message_with_a_field_out_of_order_is_not_one() -> None:
    """The rule above, on a small message: the fields of a real one in order are recognised, swapped they are not."""
    conn, target = b"\x0a\x03abc", b"\x1a\x0c1.2.3.4:5555"
    magic = b"\x30\xda\xfa\x06"
    assert recognise(echo(conn + target + magic)) is not None
    assert recognise(echo(target + conn + magic)) is None
    assert recognise(echo(conn + conn + target + magic)) is None


PROMPT_SPEC = re.compile(rb"(?:\A|\n)[A-Za-z]:\\[^\r\n<>|\"*?]*>\Z")  # what a cmd.exe prompt ending a payload is


@settings(max_examples=examples(600), deadline=None)
@given(head=st.binary(max_size=30) | st.sampled_from([b"", b"dir\r\n", b"x\n", b"\r\n", b"C:\\a>\n"]),
       line=st.sampled_from([b"C:\\Users\\bob>", b"c:\\>", b"C:\\a<b>", b"C:\\a\rb>", b"CD:\\>", b"C:/>", b"C:\\x"]),
       sep=st.sampled_from([b"", b"\n", b"\r\n", b"\n\n", b"\r"]))
def test_an_icmpsh_prompt_is_the_payloads_last_line(head: bytes, line: bytes, sep: bytes) -> None:
    """icmpsh's prompt check reads only the payload's last line (a prompt cannot hold a newline), and finds what the
    regular expression searched over the whole payload finds."""
    payload = head + sep + line
    found = recognise(echo(payload))
    printable = all(0x20 <= b < 0x7F or b in b"\t\r\n" for b in payload)
    expected = bool(PROMPT_SPEC.search(payload)) and printable
    assert (found is not None and found.tool == "icmpsh" and "prompt" in found.evidence) == expected


def test_an_icmpsh_prompt_check_reads_only_the_last_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 60 KB payload of lines ending in '>' (searched whole, ~1 ms a packet): the check reads its last line."""
    from icmpsensor.detect import tunnels

    read: list[int] = []
    prompt = tunnels._PROMPT_LINE

    class Spy:
        def fullmatch(self, text: bytes, pos: int = 0) -> object:
            read.append(len(text) - pos)
            return prompt.fullmatch(text, pos)

    monkeypatch.setattr(tunnels, "_PROMPT_LINE", Spy())
    payload = b"C:\\x\n" * 12_000 + b"C:\\Users>"
    found = recognise(echo(payload))
    assert found is not None and found.tool == "icmpsh"
    assert read == [len(b"C:\\Users>")]


class CountedKey:
    """A table key that counts how often it is hashed (a flow's key is a tuple: its hash is not kept)."""

    hashed = 0

    def __init__(self, value: int) -> None:
        self.value = value

    def __hash__(self) -> int:
        CountedKey.hashed += 1
        return hash(self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CountedKey) and other.value == self.value


@pytest.mark.parametrize("size", [1, 2, 9, 1000, 65_536])
def test_without_oldest_drops_the_oldest_eighth_in_place_hashing_only_those(size: int) -> None:
    """A full table (the tool tracker's flows and empty requests, the hosts' memories) loses its oldest eighth, the
    others kept in their order, in place: only the dropped keys are hashed (a copy of the rest hashed each kept key
    again, seven for each new entry, amortised: a third of a long notice storm's time), and new entries after it
    need no key hashed again either (the dict's resize uses the hashes it keeps)."""
    keys = [CountedKey(i) for i in range(size)]
    table = dict.fromkeys(keys)
    dropped = size // 8 + 1
    CountedKey.hashed = 0
    kept = without_oldest(table)
    assert kept is table and list(kept) == keys[dropped:]
    assert CountedKey.hashed == dropped
    for i in range(size, size + 3 * size):  # three more rounds of a full table: drops in between, resizes
        if len(kept) >= size:
            kept = without_oldest(kept)
        CountedKey.hashed = 0
        kept[CountedKey(i)] = None
        assert CountedKey.hashed == 1
    assert len(kept) <= size and list(kept)[-1].value == 4 * size - 1


@pytest.mark.skipif(tunnels._fasttools is None, reason="the C accelerators are turned off or not built")
@pytest.mark.parametrize("size", [1, 2, 9, 1000, 65_536])
def test_drop_oldest_in_c_is_the_references_without_a_python_line_a_key(size: int) -> None:
    """drop_oldest in C (_fasttools.drop_oldest; _drop_oldest_py the reference): the values of the oldest eighth, in
    order, taken out of the table, the rest kept in order, only the dropped keys hashed; and no Python line a dropped
    entry (a storm longer than the tables sheds an eighth of 100,000 hosts at once: a line each)."""
    keys = [CountedKey(i) for i in range(size)]
    mine, theirs = ({k: k.value for k in keys} for _ in range(2))
    CountedKey.hashed = 0
    dropped = tunnels.drop_oldest(mine)
    assert CountedKey.hashed == size // 8 + 1
    assert dropped == tunnels._drop_oldest_py(theirs) == list(range(size // 8 + 1))
    assert list(mine.items()) == list(theirs.items())
    plain = dict.fromkeys(range(size))  # keys whose hash runs no Python
    lines = lines_run(lambda: tunnels.drop_oldest(plain))
    assert len(plain) == size - size // 8 - 1 and lines <= 5, lines
    with pytest.raises(TypeError):
        tunnels._fasttools.drop_oldest([1, 2])
    with pytest.raises(TypeError):  # an OrderedDict's order is its own: the reference's
        tunnels._fasttools.drop_oldest(collections.OrderedDict(a=1))
    assert tunnels._fasttools.drop_oldest({}) == tunnels._drop_oldest_py({}) == []
