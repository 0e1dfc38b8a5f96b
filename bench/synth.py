"""Write the synthetic capture the throughput benchmark reads (testkit/synthmix.py builds it).

    .venv/bin/python -m bench.synth OUT.pcap [--packets N] [--seed S] [--duration SECONDS]
    .venv/bin/python -m bench.synth OUT.pcap --flood-sources N [--no-flood-replies]
    .venv/bin/python -m bench.synth OUT.pcap --kind KIND [--packets N]    (KIND: testkit/synthmix.py ADVERSARIAL)

The default mix is `--packets` frames exactly (1,000,000 by default): an hour of a campus SPAN
port, benign pings of every common kind, floods, errors, IPv6, VLAN tags, fragments and several
exfiltration flows. `--flood-sources N` writes the memory-test variant instead: an echo flood
from N spoofed sources with one exfiltration flow through it. `--kind` writes one of the
throughput benchmark's adversarial captures instead, `--packets` frames. OUT.truth.json, beside
OUT.pcap, holds the ground truth (see testkit/synthmix.py).
"""

from __future__ import annotations

import argparse
import sys

from testkit.synthmix import ADVERSARIAL, HOUR, generate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.synth", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="pcap file to write (the ground truth goes to OUT.truth.json beside it)")
    parser.add_argument("--packets", type=int, default=1_000_000, help="frames in the default mix (exactly)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--duration", type=float, default=HOUR, help="seconds of traffic (default 3600)")
    parser.add_argument("--flood-sources", type=int, default=0, metavar="N",
                        help="write the flood variant: N spoofed sources plus one exfiltration flow")
    parser.add_argument("--no-flood-replies", dest="flood_replies", action="store_false",
                        help="flood variant: the victim does not answer")
    parser.add_argument("--kind", choices=("mix", *ADVERSARIAL), default="mix",
                        help="an adversarial capture instead of the mix (testkit/synthmix.py)")
    args = parser.parse_args(argv)
    if args.packets < 1000 and not args.flood_sources:
        parser.error("--packets: at least 1000")
    truth = generate(args.out, args.packets, args.seed, args.duration, args.flood_sources, args.flood_replies,
                     kind=args.kind)
    print(f"{args.out}: {truth['packets']:,} packets, {truth['bytes'] / 1e6:.1f} MB, "
          f"{truth['host_pairs']:,} host pairs, IPv6 {truth['ipv6']:,}, VLAN {truth['vlan']:,}, "
          f"fragments {truth['fragments']:,}, {len(truth['exfil'])} exfiltration flows "  # type: ignore[arg-type]
          f"in {truth['generation_seconds']} s")
    print("by category: " + ", ".join(f"{k} {v:,}" for k, v in truth["by_category"].items()))  # type: ignore[union-attr]
    return 0


if __name__ == "__main__":
    sys.exit(main())
