"""Every reference capture in ../shared/seed replayed through the CLI, in both profiles.

`original` profile: expected notices are derived from BEHAVIOUR.md (flows are
directional host pairs; thresholds compared with `>`: bytes 1500, changed requests 5,
differing replies 5; the two default ping payloads ignored), with `reply_pairing:
last_request` (the original's way: it must reproduce BEHAVIOUR.md's reports) and with
the correction `matched` (a reply is compared with the request it answers). The packet
counts below were read off the captures (see the comments); the byte totals follow.

`standard` profile (the default): every capture is an exfiltration and must be
reported, naming the host the data left from and its peer, and nothing else.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit.cli import run_cli_here

pytestmark = pytest.mark.seed

SRC, DST = "10.0.2.15", "54.144.215.114"


def summary(notices: list[dict[str, object]]) -> list[tuple[object, object, object]]:
    return sorted((n["note"], n["src"], n["dst"]) for n in notices)


def sub_field(notice: dict[str, object], name: str) -> str:
    for part in str(notice["sub"]).split(", "):
        key, _, value = part.partition(": ")
        if key == name:
            return value
    raise KeyError(name)


def replay(seed_dir: Path, name: str, tmp_path: Path, *extra: str) -> list[dict[str, object]]:
    result = run_cli_here("-r", seed_dir / name, *extra, log_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    for notice in result.notices:
        assert notice["actions"] == ["Notice::ACTION_LOG"] and notice["peer_descr"] == "icmpsensor"
    return result.notices


def original_profile(tmp_path: Path) -> Path:
    """The original profile exactly (auto pairing: last_request; auto alerting: flow_end)."""
    cfg = tmp_path / "original.yaml"
    cfg.write_text("detection:\n  profile: original\n")
    return cfg


def corrected_profile(tmp_path: Path) -> Path:
    """The original profile with the pairing correction of issue 2."""
    cfg = tmp_path / "corrected.yaml"
    cfg.write_text("detection:\n  profile: original\n  reply_pairing: matched\n")
    return cfg


def test_icmp_file_transfer_448_bytes_corrected(seed_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "o").mkdir()
    # 9 requests of 56 bytes 10.0.2.15 -> 54.144.215.114 (8 text chunks, then a zero-filled one):
    # 504 bytes <= 1500, so no DataExfil; each differs from the previous: 8 changes > 5 -> AsymPayloadFlow.
    # The 8 replies come after the whole burst and each equals the request it answers: no AsymPayload.
    notices = replay(seed_dir, "icmp-file-transfer-sample-text-file-448-bytes.pcap", tmp_path / "o",
                     "-c", str(corrected_profile(tmp_path)))
    assert summary(notices) == [("ICMP::ICMP_AsymPayloadFlow", SRC, DST)]
    (flow,) = notices
    assert flow["n"] == 9
    assert sub_field(flow, "Bytes sent") == "504"
    assert sub_field(flow, "Bytes received") == "448"  # the 8 echoed chunks
    assert "changed 8 times" in str(flow["msg"])


def test_icmp_file_transfer_448_bytes_as_the_original(seed_dir: Path, tmp_path: Path) -> None:
    # Comparing each reply with the LAST request (the zero-filled one) makes all 8 replies "differ":
    # 8 > 5 -> AsymPayload on the reply flow (54.144.215.114 -> 10.0.2.15), as BEHAVIOUR.md reports.
    (tmp_path / "o").mkdir()
    notices = replay(seed_dir, "icmp-file-transfer-sample-text-file-448-bytes.pcap", tmp_path / "o",
                     "-c", str(original_profile(tmp_path)))
    assert summary(notices) == [("ICMP::ICMP_AsymPayload", DST, SRC), ("ICMP::ICMP_AsymPayloadFlow", SRC, DST)]
    asym = next(n for n in notices if n["note"] == "ICMP::ICMP_AsymPayload")
    assert asym["n"] == 8 and sub_field(asym, "Bytes sent") == "448"
    assert str(asym["msg"]).startswith("8 ICMP echo replies")


def test_icmp_file_transfer_2mb_corrected(seed_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "o").mkdir()
    # 32,768 requests of 56 bytes = 1,835,008 bytes > 1500, every one differing from the previous
    # (32,767 changes) -> DataExfil and AsymPayloadFlow. Only 87 replies (4,872 bytes), each equal to
    # the request it answers -> no AsymPayload.
    notices = replay(seed_dir, "icmp-file-transfer-sample-text-file-2mb.pcap", tmp_path / "o",
                     "-c", str(corrected_profile(tmp_path)))
    assert summary(notices) == [("ICMP::ICMP_AsymPayloadFlow", SRC, DST), ("ICMP::ICMP_DataExfil", SRC, DST)]
    exfil = next(n for n in notices if n["note"] == "ICMP::ICMP_DataExfil")
    assert exfil["n"] == 32768
    assert sub_field(exfil, "Bytes sent") == "1835008"
    assert sub_field(exfil, "Bytes received") == "4872"
    assert sub_field(exfil, "Event count") == "32768"
    assert str(exfil["msg"]).startswith(f"Exfil of size 1.84 MB seen between {SRC} and {DST}. Start time: ")
    assert sub_field(exfil, "Start time") == "1665501756.660933"
    assert sub_field(exfil, "End time") == "1665501758.833739"
    assert exfil["ts"] == pytest.approx(1665501758.875532)  # end of capture: the last packet's time
    flow = next(n for n in notices if n["note"] == "ICMP::ICMP_AsymPayloadFlow")
    assert "changed 32767 times" in str(flow["msg"]) and flow["uid"] == exfil["uid"]


def test_icmp_file_transfer_2mb_as_the_original(seed_dir: Path, tmp_path: Path) -> None:
    # With last-request pairing, 86 of the 87 replies differ from the last request -> AsymPayload too:
    # all three notices, as BEHAVIOUR.md reports.
    (tmp_path / "o").mkdir()
    notices = replay(seed_dir, "icmp-file-transfer-sample-text-file-2mb.pcap", tmp_path / "o",
                     "-c", str(original_profile(tmp_path)))
    assert summary(notices) == [
        ("ICMP::ICMP_AsymPayload", DST, SRC),
        ("ICMP::ICMP_AsymPayloadFlow", SRC, DST),
        ("ICMP::ICMP_DataExfil", SRC, DST),
    ]
    asym = next(n for n in notices if n["note"] == "ICMP::ICMP_AsymPayload")
    assert asym["n"] == 87 and str(asym["msg"]).startswith("86 ICMP echo replies")


@pytest.mark.parametrize("name", [
    # 5 requests of 95 bytes (475 bytes, 4 changes), each echoed back unchanged.
    "hping3-sample-text-file-448-bytes-5-sec-95-byte-packets.pcap",
    # 5 requests (header, 2 base64 chunks, 2 trailers: 700 bytes, 4 changes), each echoed back.
    "pyexfil-sample-text-file-448-bytes.pcap",
    # one request per destination (155 zero-filled pings and one 1444-byte request): no flow has 2 packets.
    "EgressAssess-sample-text-file.pcap",
])
@pytest.mark.parametrize("pairing", ["matched", "last_request"])
def test_small_transfers_stay_below_the_original_thresholds(seed_dir: Path, tmp_path: Path, name: str,
                                                            pairing: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"detection:\n  profile: original\n  reply_pairing: {pairing}\n")
    (tmp_path / "o").mkdir()
    assert replay(seed_dir, name, tmp_path / "o", "-c", str(cfg)) == []


def test_all_seed_files_as_one_timeline(seed_dir: Path, tmp_path: Path) -> None:
    # The captures were taken hours apart (448-byte transfer at 1665501576, the 2 MB one at
    # 1665501756, 180 s later): read in that order they form one timeline in which flow
    # (10.0.2.15, 54.144.215.114) never idles for 300 s, so both transfers are one flow.
    files = ["icmp-file-transfer-sample-text-file-448-bytes.pcap", "icmp-file-transfer-sample-text-file-2mb.pcap"]
    args: list[str | Path] = ["-c", corrected_profile(tmp_path)]
    for name in files:
        args += ["-r", seed_dir / name]
    (tmp_path / "o").mkdir()
    result = run_cli_here(*args, log_dir=tmp_path / "o")
    assert result.returncode == 0, result.stderr
    exfil = next(n for n in result.notices if n["note"] == "ICMP::ICMP_DataExfil")
    assert exfil["n"] == 9 + 32768
    assert sub_field(exfil, "Bytes sent") == str(504 + 1835008)
    assert "changed 32776 times" in next(str(n["msg"]) for n in result.notices
                                         if n["note"] == "ICMP::ICMP_AsymPayloadFlow")


# -- the standard profile: every sample is caught ---------------------------------------------

STANDARD_CASES = {
    # name: (data source, its peer, request payload bytes, notes that must be among the notices)
    # its last request, the end of the transfer, is a zero-filled echo with code 2: the code byte is data
    "icmp-file-transfer-sample-text-file-448-bytes.pcap": (
        SRC, DST, 448, {"ICMP::ICMP_DataExfil", "ICMP::ICMP_AsymPayloadFlow", "ICMP::ICMP_Tunnel",
                        "ICMP::ICMP_NonEchoPayload"}),
    "icmp-file-transfer-sample-text-file-2mb.pcap": (
        SRC, DST, 1835008, {"ICMP::ICMP_DataExfil", "ICMP::ICMP_AsymPayloadFlow", "ICMP::ICMP_Tunnel"}),
    "hping3-sample-text-file-448-bytes-5-sec-95-byte-packets.pcap": (
        SRC, DST, 475, {"ICMP::ICMP_DataExfil", "ICMP::ICMP_Tunnel"}),
    "pyexfil-sample-text-file-448-bytes.pcap": (SRC, DST, 700, {"ICMP::ICMP_DataExfil", "ICMP::ICMP_Tunnel"}),
    "EgressAssess-sample-text-file.pcap": ("192.168.86.36", DST, 1444, {"ICMP::ICMP_DataExfil", "ICMP::ICMP_Tunnel"}),
}


@pytest.mark.parametrize("name", sorted(STANDARD_CASES))
def test_standard_profile_reports_every_sample(seed_dir: Path, tmp_path: Path, name: str) -> None:
    src, dst, request_bytes, required = STANDARD_CASES[name]
    notices = replay(seed_dir, name, tmp_path)
    # Only the exfiltrating pair is named: the benign zero-filled pings of Egress-Assess to 155 other
    # hosts, the echo replies, the DNS and the unreachable in these captures raise nothing.
    assert {(n["src"], n["dst"]) for n in notices} == {(src, dst)}, summary(notices)
    notes = {str(n["note"]) for n in notices}
    assert required | {"ICMP::ICMP_ExfilSummary"} == notes, notes
    # Real-time: the DataExfil notice comes before the end of the transfer, the summary at its end.
    exfil = next(n for n in notices if n["note"] == "ICMP::ICMP_DataExfil")
    final = next(n for n in notices if n["note"] == "ICMP::ICMP_ExfilSummary")
    assert float(exfil["ts"]) <= float(final["ts"])
    assert int(sub_field(final, "Novel bytes")) > 400
    sent = int(sub_field(final, "Bytes sent"))
    # Icmp-File-Transfer's last, zero-filled request (56 bytes) has code 2: the zeros carry nothing, the
    # code a byte, so the request counts; Egress-Assess also sent a 32-byte zero-filled ping to the same host.
    extra = {"EgressAssess-sample-text-file.pcap": 32, "icmp-file-transfer-sample-text-file-448-bytes.pcap": 56}
    assert sent == request_bytes + extra.get(name, 0)
    assert str(final["msg"]).startswith("Exfil of size ")
