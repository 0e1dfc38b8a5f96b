"""Whether a capture filter compiles, as the live capture's libpcap compiles it, worded as libpcap words it.

pcapy-ng 2.1.0's `pcapy.compile` closes its libpcap handle before it reads the handle's error text (pcapy.cc
bpf_compile: pcap_close, then pcap_geterr): a use-after-free on every filter that does not compile, and the filter
comes from a config file (at start, and on SIGHUP while the capture threads allocate). So the check calls the same
libpcap's pcap_open_dead, pcap_compile, pcap_geterr and pcap_close itself, in that order: the libpcap pcapy-ng's
wheel bundles (pcapy_ng.libs, already loaded by `import pcapy`: the same library), or the system's when pcapy-ng was
built against it. The live capture itself compiles with `Reader.setfilter`, whose error path reads an open handle.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from pathlib import Path

DLT_EN10MB = 1  # what the filter is checked against: the live capture's link type on a SPAN port
SNAPLEN = 65_535


class _Program(ctypes.Structure):
    """libpcap's struct bpf_program."""

    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.c_void_p)]


@functools.cache
def _libpcap() -> ctypes.CDLL:
    import pcapy

    bundled = sorted((Path(pcapy.__file__).parent / "pcapy_ng.libs").glob("libpcap*.so*"))
    name = str(bundled[0]) if bundled else ctypes.util.find_library("pcap")
    if name is None:
        raise OSError("libpcap not found beside pcapy-ng nor on the system")
    lib = ctypes.CDLL(name)
    lib.pcap_open_dead.restype = ctypes.c_void_p
    lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.pcap_compile.restype = ctypes.c_int
    lib.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Program), ctypes.c_char_p, ctypes.c_int,
                                 ctypes.c_uint32]
    lib.pcap_geterr.restype = ctypes.c_char_p
    lib.pcap_geterr.argtypes = [ctypes.c_void_p]
    lib.pcap_freecode.restype = None
    lib.pcap_freecode.argtypes = [ctypes.POINTER(_Program)]
    lib.pcap_close.restype = None
    lib.pcap_close.argtypes = [ctypes.c_void_p]
    return lib


def compile_problem(text: str) -> str | None:
    """libpcap's reason the filter does not compile (optimised, netmask 0, as `Reader.setfilter` compiles it), or
    None when it compiles."""
    if "\0" in text:
        return "it contains a NUL character"
    lib = _libpcap()
    handle = lib.pcap_open_dead(DLT_EN10MB, SNAPLEN)
    if not handle:
        raise MemoryError("pcap_open_dead")
    try:
        program = _Program()
        if lib.pcap_compile(handle, ctypes.byref(program), text.encode("utf-8", "surrogateescape"), 1, 0) != 0:
            return (lib.pcap_geterr(handle) or b"").decode("utf-8", "replace")
        lib.pcap_freecode(ctypes.byref(program))
        return None
    finally:
        lib.pcap_close(handle)
