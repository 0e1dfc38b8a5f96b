"""What the standard detector's C path declines on a capture, counted by kind.

    .venv/bin/python -m bench.c_path_declines CAPTURE [--top N]

Replays the capture in this process (default configuration, evidence on) and counts the packets the Python detector
processed itself (Detector._process: what FastPath declined, then taken in Python at several times the C path's
cost a packet), grouped by what they are: echo request or reply, a new flow's or one the table has, paired or not,
and the template fingerprints.explain finds in the payload. A benign kind with many packets is a candidate for the
C path (docs/performance.md); the total against the capture's packets is the share Python takes.
"""

from __future__ import annotations

import argparse
import collections
import tempfile
from collections.abc import Callable

from icmpsensor.config.schema import Config
from icmpsensor.decode.packet import IcmpPacket
from icmpsensor.detect import fingerprints, standard
from icmpsensor.detect.flows import echo_key
from icmpsensor.runmode.pipeline import Pipeline, tune_gc
from icmpsensor.runmode.replay import build_sinks, replay_pipeline

Kind = tuple[str, ...]


def kind_of(detector: standard.Detector, pkt: IcmpPacket) -> Kind:
    """What a declined packet is, before the Python detector changes anything for it."""
    flow = detector._flows.get((pkt.src, pkt.dst))
    made = "new flow" if flow is None else "flow"
    benign = fingerprints.explain(pkt.payload, pkt.ts, is_reply=pkt.is_echo_reply) if pkt.payload else None
    template = "empty" if not pkt.payload else benign.template if benign is not None else "no template"
    if pkt.is_echo_request:
        if flow is None:
            return ("request", made, template)
        run = "same run" if pkt.ident == flow.last_ident else "new identifier"
        size = "same size" if len(pkt.payload) == flow.last_size else "new size"
        step = "in step" if pkt.seq == (flow.last_seq + flow.seq_stride) & 0xFFFF else "out of step"
        return ("request", made, run, size, step, template)
    if pkt.is_echo_reply:
        paired = (pkt.dst, pkt.src, pkt.ident, echo_key(pkt)) in detector._pending
        return ("reply", made, "paired" if paired else "unpaired", template)
    return (f"type {pkt.icmp_type}", made)


def count_declines(capture: str) -> tuple[collections.Counter[Kind], int]:
    """The declined packets of `capture` by kind, and the packets the detector saw in all."""
    declined: collections.Counter[Kind] = collections.Counter()
    reference: Callable[[standard.Detector, IcmpPacket], object] = standard.Detector._process

    def counted(detector: standard.Detector, pkt: IcmpPacket) -> object:
        declined[kind_of(detector, pkt)] += 1
        return reference(detector, pkt)

    tune_gc()
    standard.Detector._process = counted  # type: ignore[method-assign]
    try:
        with tempfile.TemporaryDirectory() as log_dir:
            cfg = Config()
            cfg.output.log_dir = log_dir
            pipeline = Pipeline(cfg, build_sinks(cfg))
            replay_pipeline(pipeline, [capture])
            pipeline.close()
            seen = pipeline.detector.stats.packets
    finally:
        standard.Detector._process = reference  # type: ignore[method-assign]
    return declined, seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("capture")
    parser.add_argument("--top", type=int, default=20, help="the kinds shown (most packets first)")
    args = parser.parse_args(argv)
    declined, seen = count_declines(args.capture)
    total = sum(declined.values())
    print(f"declined by the C path: {total:,} of {seen:,} packets the detector saw ({total / max(seen, 1):.2%})")
    for kind, count in declined.most_common(args.top):
        print(f"{count:>10,}  {' / '.join(kind)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
