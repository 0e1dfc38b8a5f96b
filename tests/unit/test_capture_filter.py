"""The default BPF capture filter, applied by libpcap to crafted frames.

(The kernel here has no 8021q module, so tagged frames cannot be produced live; libpcap
runs the same compiled filter on a capture file.)
"""

from __future__ import annotations

from pathlib import Path

import pcapy
import pytest

from icmpsensor.config.schema import DEFAULT_BPF_FILTER
from testkit import craft

A, B = "192.0.2.1", "192.0.2.2"
A6, B6 = "2001:db8::1", "2001:db8::2"


def passes(tmp_path: Path, frame: bytes) -> bool:
    path = tmp_path / "one.pcap"
    craft.write_pcap(path, [(1.0, frame)])
    reader = pcapy.open_offline(str(path))
    reader.setfilter(DEFAULT_BPF_FILTER)
    header, _ = reader.next()
    return header is not None


ECHO4 = craft.icmp4(A, B, craft.ECHO_REQUEST, 0, 1, 1, b"data")
ECHO6 = craft.icmp6(A6, B6, craft.ECHO_REQUEST6, 0, 1, 1, b"data")
ECHO6_EXT = craft.icmp6(A6, B6, craft.ECHO_REQUEST6, 0, 1, 1, b"data", ext_headers=[craft.dest_opts()])
BIG6 = craft.icmp6(A6, B6, craft.ECHO_REQUEST6, 0, 1, 1, b"x" * 3000)
BIG4 = craft.icmp4(A, B, craft.ECHO_REQUEST, 0, 1, 1, b"x" * 3000)

WANTED = {
    "icmp": ECHO4,
    "icmp6": ECHO6,
    "icmp6 behind a destination-options header": ECHO6_EXT,
    "ipv4 fragment (not the first)": craft.fragment4(BIG4, 1480)[1],
    "ipv6 fragment (not the first)": craft.fragment6(BIG6, 1448)[1],
    "unreachable": craft.icmp4(A, B, craft.UNREACHABLE, 3, payload=b"\0\0\0\0" + ECHO4[:28]),
}
UNWANTED = {
    "udp": craft.udp4(A, B),
    "udp6": craft.udp6(A6, B6),
}


@pytest.mark.parametrize("tags", [(), (42,), (100, 42)], ids=["untagged", "vlan", "qinq"])
@pytest.mark.parametrize("name", sorted(WANTED))
def test_default_filter_passes_icmp_in_every_form(tmp_path: Path, name: str, tags: tuple[int, ...]) -> None:
    outer = 0x88A8 if len(tags) == 2 else 0x8100
    assert passes(tmp_path, craft.ether(WANTED[name], vlans=tags, outer_tpid=outer))


@pytest.mark.parametrize("tags", [(), (42,), (100, 42)], ids=["untagged", "vlan", "qinq"])
@pytest.mark.parametrize("name", sorted(UNWANTED))
def test_default_filter_drops_other_traffic(tmp_path: Path, name: str, tags: tuple[int, ...]) -> None:
    outer = 0x88A8 if len(tags) == 2 else 0x8100
    assert not passes(tmp_path, craft.ether(UNWANTED[name], vlans=tags, outer_tpid=outer))
    assert not passes(tmp_path, craft.arp())


def _libasan() -> str:
    """gcc's AddressSanitizer runtime (the C extensions are built with gcc: it is installed wherever they are)."""
    import subprocess

    found = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True, timeout=30)
    path = found.stdout.strip()
    assert found.returncode == 0 and Path(path).is_file(), "gcc's libasan is needed for this test"
    return path


@pytest.mark.parametrize("text", ["icmp and and", "(((", "host 999.1.1.1", "icmp[0] = " + "x" * 300])
def test_a_filter_that_does_not_compile_is_worded_without_reading_freed_memory(text: str) -> None:
    """pcapy-ng 2.1.0's compile() closes its libpcap handle, then reads the handle's error text (pcapy.cc
    bpf_compile: pcap_close, then pcap_geterr): a use-after-free on every filter that does not compile, which a config
    file chooses (at start, and on SIGHUP while the capture threads allocate). The check runs under AddressSanitizer,
    which aborts on such a read; the error names the filter and libpcap's reason."""
    import os
    import subprocess
    import sys

    code = ("from icmpsensor.config.kinds import bpf_filter\n"
            f"print(bpf_filter({text!r}))\n")
    env = {**os.environ, "LD_PRELOAD": _libasan(), "ASAN_OPTIONS": "detect_leaks=0"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("filter '") and "does not compile: " in done.stdout, done.stdout
    assert done.stdout.rstrip().split("does not compile: ")[1], done.stdout  # libpcap's reason
    assert "AddressSanitizer" not in done.stderr


def test_a_filter_that_compiles_is_accepted() -> None:
    from icmpsensor.config.kinds import bpf_filter

    assert bpf_filter(DEFAULT_BPF_FILTER) is None
    assert bpf_filter("icmp and host 192.0.2.1") is None
    assert bpf_filter("icmp\0 or tcp") is not None  # a NUL would cut the filter libpcap is given
