"""Notice text (the original's msg/sub format) and the notice.log writer."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from icmpsensor.errors import OutputError
from icmpsensor.notice.text import addr_text, format_interval, format_local_time, format_size
from icmpsensor.output.noticelog import NoticeLog
from testkit.paths import REPO
from testkit.synthetic import sample_notice
from tests.hypothesis_counts import examples

# the fields set for a notice with no ICMP type, novelty, tool or evidence (unset ones are left out)
ZEEK_FIELDS = ["ts", "uid", "id.orig_h", "id.resp_h", "proto", "note", "msg", "sub", "src", "dst", "n", "peer_descr",
               "actions", "email_dest", "suppress_for", "flow.bytes_sent", "flow.bytes_received", "flow.packets",
               "flow.start", "flow.end"]


@pytest.mark.parametrize(("size", "text"), [
    (0, "0.00 bytes"), (504, "504.00 bytes"), (1500, "1.50 KB"), (2998380, "3.00 MB"),
    (1835008, "1.84 MB"), (5 * 10**9, "5.00 GB"),
])
def test_sizes_are_decimal_with_two_decimals(size: int, text: str) -> None:
    assert format_size(size) == text


@pytest.mark.parametrize(("seconds", "text"), [
    (31.602305173874, "31.0 secs 602.0 msecs 305.0 usecs"),
    (1.349999904633, "1.0 sec 350.0 msecs"),
    (0.0, "0 secs"),
    (1.0, "1.0 sec"),
    (301.5, "5.0 mins 1.0 sec 500.0 msecs"),
    (90061.0, "1.0 day 1.0 hr 1.0 min 1.0 sec"),
    (0.000005, "5.0 usecs"),
    (0.000001, "1.0 usec"),
])
def test_intervals_read_like_zeek(seconds: float, text: str) -> None:
    assert format_interval(seconds) == text


def test_local_time_uses_the_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert format_local_time(1665586466.542945) == "10:54:26 12/10/2022 EDT-0400"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_json_line_has_zeek_notice_fields_in_order() -> None:
    line = sample_notice().to_json_line("sensor-1")
    assert line.endswith("\n") and line.count("\n") == 1
    record = json.loads(line)
    assert list(record) == ZEEK_FIELDS
    assert record["actions"] == ["Notice::ACTION_LOG"]
    assert record["email_dest"] == [] and record["suppress_for"] == 0
    assert record["peer_descr"] == "sensor-1" and record["n"] == 2064


def test_notice_log_appends_whole_lines(tmp_path: Path) -> None:
    log = NoticeLog(str(tmp_path), "notice.log", "s")
    for i in range(100):
        log.emit(sample_notice(n=i))
    log.close()
    lines = (tmp_path / "notice.log").read_text().splitlines()
    assert [json.loads(line)["n"] for line in lines] == list(range(100))


def test_missing_or_unwritable_log_dir_is_an_output_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not exist"):
        NoticeLog(str(tmp_path / "nope"), "notice.log", "s")
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="not a directory"):
        NoticeLog(str(tmp_path / "file"), "notice.log", "s")


def test_a_full_disk_never_leaves_a_partial_line(tmp_path: Path) -> None:
    # RLIMIT_FSIZE makes the kernel cut a write short exactly like a full disk would.
    script = textwrap.dedent(f"""
        import resource, signal, sys
        from icmpsensor.output.noticelog import NoticeLog
        from icmpsensor.output.logfile import NoticeWriteError
        from testkit.synthetic import sample_notice
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (5000, 5000))
        log = NoticeLog({str(tmp_path)!r}, "notice.log", "s")
        failed = 0
        for i in range(100):
            try:
                log.emit(sample_notice(n=i, msg="x" * 300))
            except NoticeWriteError:
                failed += 1
        print(failed)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) > 0
    data = (tmp_path / "notice.log").read_bytes()
    assert data.endswith(b"\n")
    lines = data.decode().splitlines()
    assert lines and all(json.loads(line)["msg"] == "x" * 300 for line in lines)
    assert os.path.getsize(tmp_path / "notice.log") <= 5000


def _ipv6_addresses() -> st.SearchStrategy[bytes]:
    """16-byte addresses with runs of zero and 0xffff groups, where the text forms differ most."""
    group = st.sampled_from([b"\0\0", b"\0\0", b"\xff\xff", b"\0\x01", b"\x12\x34"]) | st.binary(min_size=2, max_size=2)
    return st.lists(group, min_size=8, max_size=8).map(b"".join) | st.binary(min_size=16, max_size=16)


@given(_ipv6_addresses())
@settings(max_examples=examples(3000))
def test_an_ipv6_address_reads_as_pythons_ipaddress_writes_it(packed: bytes) -> None:
    assert addr_text(packed) == str(ipaddress.IPv6Address(packed))


@pytest.mark.parametrize("packed", [bytes(10) + b"\xff\xff\x01\x02\x03\x04", bytes(12) + b"\x01\x02\x03\x04",
                                    bytes(10) + b"\xff\xff" + bytes(4), bytes(16), bytes(15) + b"\x01"])
def test_ipv4_mapped_and_compatible_ipv6_addresses_keep_pythons_text(packed: bytes) -> None:
    assert addr_text(packed) == str(ipaddress.IPv6Address(packed))  # '::ffff:102:304', not glibc's dotted quad


def test_an_ipv6_address_as_text_costs_no_ipaddress_object(monkeypatch: pytest.MonkeyPatch) -> None:
    """A storm of notices from IPv6 sources writes two addresses a notice: ipaddress made a v6 storm flow ~2x as
    costly as a v4 one (7.6 us an address against 0.4 for the C inet_ntop, measured)."""
    def refused(_: object) -> None:
        raise AssertionError("ipaddress used")
    monkeypatch.setattr(ipaddress, "ip_address", refused)
    monkeypatch.setattr(ipaddress, "IPv6Address", refused)
    assert addr_text(bytes.fromhex("20010db8000000000000000000000001")) == "2001:db8::1"
    assert addr_text(bytes.fromhex("fe800000000000000202b3fffe1e8329")) == "fe80::202:b3ff:fe1e:8329"
    assert addr_text(b"\x0a\x00\x00\x01") == "10.0.0.1"
