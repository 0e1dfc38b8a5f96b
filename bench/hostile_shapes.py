"""Hostile traffic shapes nobody benchmarked: the sensor's cost per packet on each, at N and 4N packets.

    .venv/bin/python -m bench.hostile_shapes [--packets N] [--shapes S,...] [--keep DIR] [--repeat R]

Each shape is a capture an attacker (or an odd network) could send (a packet source's input is chosen by the
people it watches), written under --keep (default /tmp/icmpsensor-bench/shapes, reused when present) at N
(default 20,000) and 4N packets. Each runs, in fresh processes as `python -m bench.throughput` runs its stages,
through both ceilings and the whole sensor (default configuration: full detection, evidence on). The table gives
packets/s, microseconds a packet, the ratio to the raw next_batch read of the same capture and to the read with
every frame materialised, and the growth: microseconds a packet at 4N over those at N, which a table or a walk
that grows with what it holds shows as well above 1 (bounded tables keep it near 1; a larger heap and colder
caches account for up to ~1.3 on this machine).

Shapes (every source address distinct where it says spoofed):

  storm-v4       one novel 500-byte echo request from each spoofed IPv4 source to one host (the bench's storm)
  storm-v6       the same over IPv6 (ICMPv6): notice text, aggregation and evidence with 16-byte addresses
  storm-pairs    the IPv4 storm with a spoofed destination of its own per flow too: no host repeated
  options-v4     novel 16-64-byte echo requests from spoofed sources, each with an IPv4 option (router alert)
  ext-v6         the same over IPv6 behind hop-by-hop and destination options headers
  jumbo          60,000-byte echo requests in MTU fragments from one pair (packets: datagrams)
  other-traffic  UDP and TCP only: a replayed SPAN capture's traffic that is not ICMP
  one-to-many    one source sending novel 16-64-byte requests to a new destination each time
  idents         one pair, a new echo identifier on every novel request
  unpaired       echo replies with novel payloads from spoofed sources, answering nothing
  errors         destination unreachable messages quoting random bytes, from spoofed sources
  tools          echo requests carrying a whole IPv4 packet (a raw-IP tunnel's layout) from spoofed sources
  mesh           novel requests between random pairs of 3,000 x 3,000 hosts
  zero-headers   four novel requests from each spoofed source, identifier and sequence number 0 (scapy's ICMP())
  random-headers four novel requests from each spoofed source, identifier and sequence number drawn at random
  replies        four novel echo replies from each spoofed source, in step, answering nothing
  timestamps     four timestamp requests (type 13) with random bodies from each spoofed source
  echo-codes     four novel echo requests with code 1 from each spoofed source (RFC 792: code 0 only)
"""

from __future__ import annotations

import argparse
import random
import struct
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from bench.throughput import DEFAULT_DIR, best_of, run_stage
from testkit import craft
from testkit.synthmix import Link

START = 1_800_000_000.0
RATE = 20_000.0  # packets (datagrams) a second of packet time
Frames = Iterator[tuple[float, bytes]]


def _v4(i: int) -> bytes:
    return struct.pack("!I", 0x0B000000 + i)


def _v6(i: int) -> bytes:
    return bytes.fromhex("20010db80007") + bytes(6) + struct.pack("!I", i)  # 2001:db8:7::/96


def _text6(i: int) -> str:
    return f"2001:db8:7::{i >> 16:x}:{i & 0xFFFF:x}"


def _novel(rng: random.Random) -> bytes:
    return rng.randbytes(rng.randint(16, 64))


def _router_alert(rng: random.Random, i: int) -> bytes:
    message = craft.icmp4_message(8, 0, 7, 1, _novel(rng))
    ip = craft.ipv4(f"11.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", "10.9.0.1", craft.PROTO_ICMP, message,
                    options=b"\x94\x04\0\0")
    return craft.ether(ip)


def _ext6(rng: random.Random, i: int) -> bytes:
    ip = craft.icmp6(_text6(i), "2001:db8:9::1", 128, 0, 7, 1, _novel(rng),
                     ext_headers=[craft.hop_by_hop(b"\x05\x02\0\0"), craft.dest_opts(b"\x1e\x02ab")])
    return craft.ether(ip)


def _other(rng: random.Random, i: int) -> bytes:
    src = f"11.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
    if i % 2:
        return craft.ether(craft.udp4(src, "10.9.0.1", 5353, 53, rng.randbytes(rng.randint(20, 1200))))
    return craft.ether(craft.ipv4(src, "10.9.0.1", 6, rng.randbytes(rng.randint(20, 1400))))


def _shape(name: str, count: int, rng: random.Random) -> Frames:
    target, target6 = _v4(0xFFFFFF), _v6(0xFFFFFF)
    jumbo = Link(_v4(1), _v4(2))
    for i in range(count):
        ts = START + i / RATE
        if name == "storm-v4":
            yield ts, Link(_v4(i), target).echo(8, 0, 5, 1, rng.randbytes(500))
        elif name == "storm-v6":
            yield ts, Link(_v6(i), target6).echo(128, 0, 5, 1, rng.randbytes(500))
        elif name == "storm-pairs":
            yield ts, Link(_v4(i), _v4(0x0C000000 + i)).echo(8, 0, 5, 1, rng.randbytes(500))
        elif name == "options-v4":
            yield ts, _router_alert(rng, i)
        elif name == "ext-v6":
            yield ts, _ext6(rng, i)
        elif name == "jumbo":
            datagram = jumbo.echo(8, 0, 5, i & 0xFFFF, rng.randbytes(60_000))
            for k, piece in enumerate(jumbo.fragments(datagram)):
                yield ts + k * 1e-6, piece
        elif name == "other-traffic":
            yield ts, _other(rng, i)
        elif name == "one-to-many":
            yield ts, Link(_v4(1), _v4(0x100000 + i)).echo(8, 0, 7, i & 0xFFFF, _novel(rng))
        elif name == "idents":
            yield ts, Link(_v4(1), _v4(2)).echo(8, 0, i & 0xFFFF, 1, _novel(rng))
        elif name == "unpaired":
            yield ts, Link(_v4(i), target).echo(0, 0, 9, i & 0xFFFF, _novel(rng))
        elif name == "errors":
            yield ts, Link(_v4(i), target).message(3, 3, bytes(4) + _novel(rng))
        elif name == "tools":
            inner = Link(_v4(0x7000000 + i), _v4(0x7FFFFFF)).echo(8, 0, 1, 1, rng.randbytes(40))[14:]
            yield ts, Link(_v4(i), target).echo(8, 0, 5, 1, inner)
        elif name == "mesh":
            a, b = rng.randrange(3000), rng.randrange(3000)
            yield ts, Link(_v4(a), _v4(0x100000 + b)).echo(8, 0, a, i & 0xFFFF, _novel(rng))
        elif name == "zero-headers":
            yield ts, Link(_v4(i // 4), target).echo(8, 0, 0, 0, _novel(rng))
        elif name == "random-headers":
            yield ts, Link(_v4(i // 4), target).echo(8, 0, rng.randrange(0x10000), rng.randrange(0x10000), _novel(rng))
        elif name == "replies":
            yield ts, Link(_v4(i // 4), target).echo(0, 0, 9, i % 4 + 1, _novel(rng))
        elif name == "timestamps":
            yield ts, Link(_v4(i // 4), target).message(13, 0, struct.pack("!HH", 9, i % 4 + 1) + rng.randbytes(12))
        elif name == "echo-codes":
            yield ts, Link(_v4(i // 4), target).echo(8, 1, 9, i % 4 + 1, _novel(rng))
        else:
            raise ValueError(f"unknown shape {name!r}")


SHAPES = ("storm-v4", "storm-v6", "storm-pairs", "options-v4", "ext-v6", "jumbo", "other-traffic", "one-to-many",
          "idents", "unpaired", "errors", "tools", "mesh", "zero-headers", "random-headers", "replies", "timestamps",
          "echo-codes")


def ensure_shape(name: str, count: int, directory: Path, seed: int = 1) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{count}-{seed}.pcap"
    if not path.is_file():
        partial = path.with_name(path.name + ".part")  # written whole, or not at all
        craft.write_pcap(partial, _shape(name, count // 41 if name == "jumbo" else count, random.Random(seed)))
        partial.replace(path)
    return path


def measure(path: Path, repeat: int) -> dict[str, dict]:
    runs: dict[str, dict] = {}
    for stage in ("ceiling-raw", "ceiling", "icmpsensor"):
        results = [run_stage(stage, path, None, 0) for _ in range(repeat)]
        runs[stage] = best_of([r for r in results if r is not None])
    return runs


def row(name: str, small: dict[str, dict], large: dict[str, dict]) -> list[str]:
    sensor, small_sensor = large["icmpsensor"], small["icmpsensor"]
    per_packet = 1e6 / sensor["pps"]
    growth = per_packet / (1e6 / small_sensor["pps"])
    return [name, f"{sensor['packets']:,}", f"{sensor['pps']:,.0f}", f"{per_packet:.1f}",
            f"{sensor['pps'] / large['ceiling-raw']['pps']:.4f}", f"{sensor['pps'] / large['ceiling']['pps']:.3f}",
            f"{growth:.2f}", f"{sensor['notices']} / {sensor.get('notices_raised')}", f"{sensor['rss_mb']:.0f} MB"]


HEADER = ["shape", "packets (4N)", "packets/s", "µs/packet", "x raw next_batch", "x materialised",
          "growth N→4N", "notices written / raised", "peak RSS"]


def main(argv: list[str] | None = None, out: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hostile_shapes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packets", type=int, default=20_000, help="N: the smaller capture's frames")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated subset of " + ",".join(SHAPES))
    parser.add_argument("--keep", type=Path, default=DEFAULT_DIR / "shapes", metavar="DIR")
    parser.add_argument("--repeat", type=int, default=1, help="runs per stage; the best is reported")
    args = parser.parse_args(argv)
    wanted = [s for s in args.shapes.split(",") if s]
    unknown = [s for s in wanted if s not in SHAPES]
    if unknown:
        parser.error(f"--shapes: unknown {', '.join(unknown)}")
    out("| " + " | ".join(HEADER) + " |")
    out("|" + "---|" * len(HEADER))
    for name in wanted:
        small = measure(ensure_shape(name, args.packets, args.keep), args.repeat)
        large = measure(ensure_shape(name, 4 * args.packets, args.keep), args.repeat)
        out("| " + " | ".join(row(name, small, large)) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
