"""notice.log as Zeek writes it: the Notice::Info fields (conn id, p, community_id, the flow's numbers) in
JSON and in Zeek's TSV (ASCII writer) format, and the Community ID of an ICMP / ICMPv6 flow."""

from __future__ import annotations

import json
import re
import socket

import communityid
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from icmpsensor.notice import zeeklog
from icmpsensor.notice.connid import community_id, conn_ports
from testkit.synthetic import sample_notice
from tests.hypothesis_counts import examples

# The Community ID spec's own ICMP vectors (community-id-spec, baseline/README.md, default seed):
# (proto, source, destination, type, code, id)
SPEC_VECTORS = [
    (1, "1.2.3.4", "5.6.7.8", 8, 0, "1:crodRHL2FEsHjbv3UkRrfbs4bZ0="),
    (1, "5.6.7.8", "1.2.3.4", 0, 0, "1:crodRHL2FEsHjbv3UkRrfbs4bZ0="),
    (1, "1.2.3.4", "5.6.7.8", 11, 0, "1:f/YiSyWqczrTgfUCZlBUnvHRcPk="),
    (58, "fe80:0001:0203:0405:0607:0809:0A0B:0C0D", "fe80:1011:1213:1415:1617:1819:1A1B:1C1D", 128, 0,
     "1:0bf7hyMJUwt3fMED7z8LIfRpBeo="),
    # baseline_deflt.json, read from the spec's capture
    (1, "192.168.0.89", "192.168.0.1", 8, 0, "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="),
    (1, "192.168.0.1", "192.168.0.89", 0, 0, "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="),
    (1, "10.0.0.1", "10.0.0.2", 11, 0, "1:YHxtAirCG//0OzkcVAukqKQN9xM="),
    (58, "fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea", 135, 0, "1:dGHyGvjMfljg6Bppwm3bg0LO8TY="),
    (58, "3ffe:501:1800:2345::2", "3ffe:507:0:1:200:86ff:fe05:80da", 3, 0, "1:2ObVBgIn28oZvibYZhZMBgh7WdQ="),
    (58, "3ffe:501:410:0:2c0:dfff:fe47:33e", "3ffe:507:0:1:200:86ff:fe05:80da", 1, 4,
     "1:hLZd0XGWojozrvxqE0dWB1iM6R0="),
    (58, "3ffe:501:0:1001::2", "3ffe:507:0:1:200:86ff:fe05:80da", 129, 0, "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg="),
    (58, "fe80::200:86ff:fe05:80da", "ff02::2", 133, 0, "1:hO+sN4H+MG5MY/8hIrXPqc4ZQz0="),
]


@pytest.mark.parametrize(("proto", "src", "dst", "icmp_type", "code", "expected"), SPEC_VECTORS)
def test_community_id_matches_the_spec_vectors(proto: int, src: str, dst: str, icmp_type: int, code: int,
                                               expected: str) -> None:
    canonical = lambda a: socket.inet_ntop(socket.AF_INET6 if ":" in a else socket.AF_INET,  # noqa: E731
                                           socket.inet_pton(socket.AF_INET6 if ":" in a else socket.AF_INET, a))
    assert community_id(canonical(src), canonical(dst), proto == 58, icmp_type, code) == expected


_V4 = st.ip_addresses(v=4).map(str)
_V6 = st.ip_addresses(v=6).map(str)


@settings(max_examples=examples(300), deadline=None)
@given(v6=st.booleans(), data=st.data(), icmp_type=st.integers(0, 255), code=st.integers(0, 255))
def test_community_id_equals_the_communityid_package(v6: bool, data: st.DataObject, icmp_type: int,
                                                     code: int) -> None:
    src, dst = data.draw(_V6 if v6 else _V4), data.draw(_V6 if v6 else _V4)
    make = communityid.FlowTuple.make_icmp6 if v6 else communityid.FlowTuple.make_icmp
    expected = communityid.CommunityID().calc(make(src, dst, icmp_type, code))
    assert community_id(src, dst, v6, icmp_type, code) == expected


@pytest.mark.parametrize(("icmp_type", "code", "v6", "ports"), [
    (8, 0, False, (8, 0)), (0, 0, False, (0, 8)), (13, 0, False, (13, 14)), (3, 3, False, (3, 3)),
    (11, 1, False, (11, 1)), (128, 0, True, (128, 129)), (129, 0, True, (129, 128)), (1, 4, True, (1, 4)),
    (135, 0, True, (135, 136)), (8, 5, False, (8, 0)),
])
def test_conn_ports_are_zeeks_type_and_counterpart_or_code(icmp_type: int, code: int, v6: bool,
                                                           ports: tuple[int, int]) -> None:
    assert conn_ports(icmp_type, code, v6)[:2] == ports


# -- JSON --------------------------------------------------------------------------------------------

def test_json_has_the_zeek_conn_id_p_community_id_and_the_flow_numbers() -> None:
    notice = sample_notice(icmp_type=8, icmp_code=0, novel_bytes=1234, tool="ptunnel", channels="payload,ident",
                           peers=3, evidence="/var/log/icmpsensor/evidence/C1.pcap")
    record = json.loads(notice.to_json_line("sensor-1"))
    assert record["id.orig_h"] == notice.src and record["id.resp_h"] == notice.dst
    assert (record["id.orig_p"], record["id.resp_p"], record["p"]) == (8, 0, 0)
    assert record["community_id"] == communityid.CommunityID().calc(
        communityid.FlowTuple.make_icmp(notice.src, notice.dst, 8, 0))
    assert record["flow.bytes_sent"] == notice.bytes_sent
    assert record["flow.bytes_received"] == notice.bytes_received
    assert record["flow.novel_bytes"] == 1234 and record["flow.packets"] == notice.n
    assert (record["flow.start"], record["flow.end"]) == (notice.start, notice.end)
    assert record["flow.tool"] == "ptunnel" and record["flow.channels"] == ["payload", "ident"]
    assert record["flow.peers"] == 3 and record["evidence"] == notice.evidence
    names = [name for name, _ in zeeklog.FIELDS]
    assert list(record) == [n for n in names if n in record], "JSON keys are in the field table's order"
    assert names[:21] == ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "fuid", "file_mime_type",
                          "file_desc", "proto", "note", "msg", "sub", "src", "dst", "p", "n", "peer_descr",
                          "actions", "email_dest", "suppress_for"], "Zeek's own Notice::Info columns first"


def test_json_leaves_out_what_is_unset() -> None:
    record = json.loads(sample_notice().to_json_line("s"))  # no type, original profile, no tool
    for absent in ("id.orig_p", "id.resp_p", "p", "community_id", "flow.novel_bytes", "flow.tool", "flow.channels",
                   "flow.peers", "evidence", "fuid", "file_mime_type", "file_desc"):
        assert absent not in record
    assert record["id.orig_h"] == record["src"]


_TEXT = st.text(st.characters(codec="utf-8"), max_size=40)


@settings(max_examples=examples(400), deadline=None)
@given(msg=_TEXT, sub=_TEXT, peer=_TEXT, tool=_TEXT, ts=st.floats(0, 2**33, allow_nan=False),
       sent=st.integers(0, 2**62), icmp_type=st.integers(-1, 255), code=st.integers(0, 255),
       channels=st.lists(st.sampled_from(["payload", "ident", "seq", "length", "options"]), unique=True),
       peers=st.integers(0, 10**6), evidence=_TEXT)
def test_json_line_is_exactly_what_json_dumps_writes(msg: str, sub: str, peer: str, tool: str, ts: float,
                                                     sent: int, icmp_type: int, code: int, channels: list[str],
                                                     peers: int, evidence: str) -> None:
    notice = sample_notice(msg=msg, sub=sub, ts=ts, bytes_sent=sent, icmp_type=icmp_type, icmp_code=code,
                           tool=tool, channels=",".join(channels), peers=peers, evidence=evidence)
    line = notice.to_json_line(peer)
    expected = {name: value for name, value in zeeklog.record(notice, peer).items() if value is not None}
    assert line == json.dumps(expected, ensure_ascii=True, separators=(",", ":")) + "\n"
    assert json.loads(line)["msg"] == msg


# -- TSV ---------------------------------------------------------------------------------------------

def test_tsv_header_is_zeeks() -> None:
    lines = zeeklog.tsv_header(0.0).splitlines()
    assert lines[0] == "#separator \\x09"
    assert lines[1:5] == ["#set_separator\t,", "#empty_field\t(empty)", "#unset_field\t-", "#path\tnotice"]
    assert re.fullmatch(r"#open\t\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d", lines[5])
    assert lines[6] == "#fields\t" + "\t".join(name for name, _ in zeeklog.FIELDS)
    assert lines[7] == "#types\t" + "\t".join(ztype for _, ztype in zeeklog.FIELDS)
    assert len(lines) == 8
    assert re.fullmatch(r"#close\t\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d\n", zeeklog.tsv_footer(0.0))


def test_tsv_line_writes_zeek_values() -> None:
    notice = sample_notice(ts=1665586502.1754990, icmp_type=0, icmp_code=0, channels="payload,ident",
                           start=1.5, end=2.25)
    cells = notice.to_tsv_line("sensor 1").rstrip("\n").split("\t")
    row = dict(zip([name for name, _ in zeeklog.FIELDS], cells, strict=True))
    assert row["ts"] == "1665586502.175499" and row["flow.start"] == "1.500000"
    assert (row["id.orig_p"], row["id.resp_p"], row["p"]) == ("0", "8", "8")
    assert row["fuid"] == "-" and row["flow.tool"] == "-" and row["flow.novel_bytes"] == "-"
    assert row["actions"] == "Notice::ACTION_LOG" and row["email_dest"] == "(empty)"
    assert row["suppress_for"] == "0.000000" and row["flow.channels"] == "payload,ident"
    assert row["peer_descr"] == "sensor 1" and row["proto"] == "icmp"


@pytest.mark.parametrize(("text", "written"), [
    ("plain", "plain"), ("", "(empty)"), ("-", "\\x2d"), ("(empty)", "\\x28empty)"), ("a\tb", "a\\x09b"),
    ("back\\slash", "back\\\\slash"), ("new\nline", "new\\x0aline"), ("caf\u00e9", "caf\u00e9"),
    ("\u00e9\x07", "\\xc3\\xa9\\x07"),  # a control character turns the whole piece into escapes, as Zeek does
    ("\x7f", "\\x7f"), ("\ue000", "\\xee\\x80\\x80"), ("a,b", "a,b"),
])
def test_tsv_strings_are_escaped_as_zeeks_writer_does(text: str, written: str) -> None:
    assert zeeklog.tsv_string(text) == written


def test_a_set_element_escapes_the_set_separator() -> None:
    assert zeeklog.tsv_set(("a,b", "c")) == "a\\x2cb,c"
    assert zeeklog.tsv_set(()) == "(empty)"


def test_a_line_starting_with_the_meta_prefix_is_escaped() -> None:
    assert zeeklog.tsv_escape_line("#x\t1\n") == "\\x23x\t1\n"


@settings(max_examples=examples(300), deadline=None)
@given(msg=_TEXT, sub=_TEXT, peer=_TEXT)
def test_tsv_cells_read_back_with_zeeks_unescaping(msg: str, sub: str, peer: str) -> None:
    from parsezeeklogs.reader import decode_escapes
    row = sample_notice(msg=msg, sub=sub).to_tsv_line(peer).rstrip("\n")
    assert "\n" not in row
    cells = dict(zip([name for name, _ in zeeklog.FIELDS], row.split("\t"), strict=True))
    for name, text in (("msg", msg), ("sub", sub), ("peer_descr", peer)):
        cell = cells[name]
        if text == "":
            assert cell == "(empty)"
        else:
            assert decode_escapes(cell) == text


# -- the detector fills the conn id ------------------------------------------------------------------

@pytest.mark.parametrize("v6", [False, True])
def test_notices_carry_the_type_and_code_of_their_flow(v6: bool) -> None:
    import dataclasses
    import random

    from icmpsensor.config.schema import AllowlistConfig, DetectionConfig
    from icmpsensor.decode.packet import IcmpPacket
    from icmpsensor.detect.profile import make_detector

    rng = random.Random(5)
    family = socket.AF_INET6 if v6 else socket.AF_INET
    src, dst = socket.inet_pton(family, "2001:db8::1" if v6 else "10.0.0.1"), \
        socket.inet_pton(family, "2001:db8::2" if v6 else "10.0.0.2")
    request, reply = (128, 129) if v6 else (8, 0)
    for profile in ("standard", "original"):
        cfg = dataclasses.replace(DetectionConfig(), profile=profile)
        cfg.notices.unpaired_echo_reply = True
        detector = make_detector(cfg, AllowlistConfig())
        notices = []
        for i in range(40):
            notices += detector.process(IcmpPacket(1000.0 + i, src, dst, v6, request, 0, 7, i, rng.randbytes(200), 250))
        notices += detector.process(IcmpPacket(2000.0, dst, src, v6, reply, 0, 9, 9, b"x" * 8, 50))
        notices += detector.flush()
        by_note = {n.note: n for n in notices}
        exfil = by_note["ICMP::ICMP_DataExfil"]
        assert (exfil.icmp_type, exfil.icmp_code) == (request, 0), profile
        unpaired = by_note["ICMP::ICMP_UnpairedEchoReply"]
        assert (unpaired.icmp_type, unpaired.icmp_code) == (reply, 0), profile
        record = json.loads(exfil.to_json_line("s"))
        assert (record["id.orig_p"], record["id.resp_p"]) == (request, reply)
