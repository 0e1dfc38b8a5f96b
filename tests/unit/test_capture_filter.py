"""The default BPF capture filter, applied by libpcap to crafted frames.

(The kernel here has no 8021q module, so tagged frames cannot be produced live; libpcap
runs the same compiled filter on a capture file.)
"""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pcapy
import pytest

from icmpsensor.config.schema import DEFAULT_BPF_FILTER
from testkit import craft
from testkit.paths import REPO

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


# -- encapsulations (config/capturefilter.py) --------------------------------------------------------------------

ENCAPSULATIONS = craft.encapsulations()
TCP4, TCP6 = craft.ipv4(A, B, 6, bytes(20)), craft.ipv6(A6, B6, 6, bytes(20))
# Where the filter looks at the inner protocol (behind no outer tag; those without a tag of their own behind one
# too): a mirror full of other tunnelled traffic is not passed up whole. The others pass by the tunnel's protocol
# (GRE with a checksum or over IPv6, Geneve, VXLAN over IPv6, ERSPAN III with its platform subheader), by an inner
# Ethernet frame's tag, MPLS or PPPoE, or by an inner tunnel (GRE in GRE).
CHECKED = {"ipip", "ipip6", "gre", "erspan1", "erspan2", "erspan3-platform", "vxlan", "mpls", "mpls-multicast-vlan",
           "pppoe", "pppoe-vlan"}
OWN_TAGS = {"vxlan", "mpls-multicast-vlan", "pppoe-vlan"}
CHECKED_INNER_TAGGED = {"erspan3-platform"}  # (the O bit: passed without a look)


def tagged(frame: bytes, tags: int) -> bytes:
    return frame[:12] + b"".join(struct.pack(">HH", tpid, 5) for tpid in (0x88A8, 0x8100)[2 - tags :]) + frame[12:]


# (one with a tag of its own behind two outer tags has three: the filter walks two, as it always did)
@pytest.mark.parametrize(("name", "tags"), [(name, tags) for name in sorted(ENCAPSULATIONS) for tags in (0, 1, 2)
                                            if not (tags == 2 and name in OWN_TAGS)])
def test_default_filter_passes_icmp_inside_every_encapsulation(tmp_path: Path, name: str, tags: int) -> None:
    for ip in (ECHO4, ECHO6, craft.fragment4(BIG4, 1480)[1], craft.fragment6(BIG6, 1448)[1]):
        assert passes(tmp_path, tagged(ENCAPSULATIONS[name](ip), tags)), ip[:1]


# (one with a tag of its own behind an outer tag has two: there the filter passes IPv4 tunnels by protocol)
@pytest.mark.parametrize(("name", "tags"), [(name, tags) for name in sorted(CHECKED - CHECKED_INNER_TAGGED)
                                            for tags in (0, 1) if not (tags and name in OWN_TAGS)])
def test_default_filter_drops_other_traffic_inside_encapsulations_it_looks_into(tmp_path: Path, name: str,
                                                                                tags: int) -> None:
    for ip in (TCP4, TCP6, craft.udp4(A, B)):
        assert not passes(tmp_path, tagged(ENCAPSULATIONS[name](ip), tags)), ip[:1]
    assert not passes(tmp_path, craft.ether(craft.ipv4(A, B, craft.PROTO_GRE, craft.gre(craft.arp(), 0x6558))))
    assert not passes(tmp_path, craft.ether(craft.udp4(A, B, 1, 4790, bytes(8) + craft.ether(ECHO4))))
    # a later fragment of GRE or IP-in-IP: passed by its protocol (reassembled), of a UDP tunnel not
    assert passes(tmp_path, craft.ether(craft.ipv4(A, B, 47, craft.gre(ECHO4), flags_offset=3)))
    assert passes(tmp_path, craft.ether(craft.ipv4(A, B, 4, ECHO4, flags_offset=3)))
    assert not passes(tmp_path, craft.ether(craft.ipv4(A, B, 17, craft.udp4(A, B, 1, 4789)[20:], flags_offset=3)))


def test_default_filter_looks_behind_mpls_labels_to_the_bound() -> None:
    from icmpsensor.decode.linktypes import MAX_MPLS_LABELS

    program = pcapy.compile(craft.LINKTYPE_ETHERNET, 65535, DEFAULT_BPF_FILTER, 1, 0)
    for labels in range(1, MAX_MPLS_LABELS + 1):
        assert program.filter(craft.ether(craft.mpls(ECHO4, range(labels)), ethertype=0x8847))
        assert not program.filter(craft.ether(craft.mpls(TCP4, range(labels)), ethertype=0x8847))
    assert not program.filter(craft.ether(craft.mpls(ECHO4, range(MAX_MPLS_LABELS + 1)), ethertype=0x8847))


def test_default_filter_fits_the_kernel() -> None:
    """A socket filter has at most 4,096 instructions (BPF_MAXINSNS); what a frame that is not ICMP runs is a few."""
    program = pcapy.compile(craft.LINKTYPE_ETHERNET, 65535, DEFAULT_BPF_FILTER, 1, 0)
    assert len(program.get_bpf()) < 2000


def test_the_config_names_the_built_in_filter_default_and_capture_compiles_its_text() -> None:
    """`capture.bpf_filter: default` (the default, as the shipped file says: the filter's text is ~25 KB) is the
    built-in filter; any other value is compiled as written; `python -m icmpsensor.config.capturefilter` prints the
    built-in one."""
    from icmpsensor.config.schema import BUILTIN_FILTER, CaptureConfig

    cfg = CaptureConfig()
    assert cfg.bpf_filter == BUILTIN_FILTER == "default"
    assert cfg.filter_expression == DEFAULT_BPF_FILTER
    cfg.bpf_filter = "icmp"
    assert cfg.filter_expression == "icmp"
    printed = subprocess.run([sys.executable, "-m", "icmpsensor.config.capturefilter"], capture_output=True,
                             text=True, timeout=60, check=True, cwd=REPO)
    assert printed.stdout == DEFAULT_BPF_FILTER + "\n"
