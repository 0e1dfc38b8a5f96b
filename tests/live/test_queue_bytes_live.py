"""A flood of jumbo frames faster than detection, live (issue 13): the capture queue is bounded by bytes.

The capture thread queues batches of up to 512 frames, at most `capture.queue_batches` (1,024) of them: with
9,000-byte frames that is 4.7 GB. Measured before the byte bound (bench.live_load, 9,000-byte frames from spoofed
sources at 100,000 a second for 10 s): the sensor fell behind and grew to 1.06 GB resident. Here 2,000 such frames
(a new spoofed source each: a novel payload, a new alerted flow) are looped by tcpreplay onto the lab's veth (MTU
raised to 9,000 on both ends) at 100,000 a second, each loop from new addresses, into a sensor with
`capture.queue_bytes` at 16 MiB: detection falls behind, the queue refuses batches, and every frame is accounted
for (received by the kernel = read + kernel drops, read = decoded + queue drops + shutdown drops) while the sensor's
peak resident set grows by no more than the queue's bound, the kernel ring, the evidence buffers' bound, the
detector's state for the flows the flood made (1.3 KB each) and a fixed allowance. Before the bound: 1,165 MiB
against ~240. Traffic crosses only the lab's veth pair (tcpreplay under `timeout`, its loop count fixed); the
frames' MAC address is not the sensor host's, so the host does not answer them.
"""

from __future__ import annotations

import random
import re
import subprocess
from pathlib import Path

import pytest

from testkit import craft
from testkit.netlab import PEER_IF, SENSOR_IF, SENSOR_IP, Lab, Sensor, launch_ready, missing_prerequisite, run, wait_for

_MISSING = missing_prerequisite("tcpreplay")
pytestmark = [pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING)), pytest.mark.timeout(180)]

MTU = 9_000
PAYLOAD = 8_900  # bytes of ICMP payload: 8,942-byte frames
FLOWS = 2_000
LOOPS = 100  # 200,000 frames, ~1.8 GB on the wire, each loop from new addresses (tcpreplay --unique-ip)
RATE = 100_000  # frames a second: 7 Gbit/s
QUEUE_BYTES = 16 * 1024 * 1024
RING_BYTES = 32 * 1024 * 1024  # capture.buffer_size (the default, given explicitly): mapped into the sensor
EVIDENCE_BYTES = 16 * 1024 * 1024  # output.evidence.max_buffer_bytes: the alerted pairs' frames held for their evidence
PER_FLOW = 1331  # bytes of detector state a flow at most (tests/unit/test_memory.py)
ALLOWANCE = 48 * 1024 * 1024  # a decoded batch, the interpreter's heap, allocator slack
CONFIG = (f"capture:\n  queue_bytes: {QUEUE_BYTES}\n  buffer_size: {RING_BYTES}\n"
          f"output:\n  evidence:\n    max_buffer_bytes: {EVIDENCE_BYTES}\nstats:\n  interval: 1\n")


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def _flood(path: Path) -> None:
    rng = random.Random(13)
    blob = rng.randbytes(PAYLOAD + 4096)
    frames = []
    for i in range(FLOWS):
        start = rng.randrange(4096)
        packet = craft.icmp4(f"11.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", SENSOR_IP, craft.ECHO_REQUEST, 0, i, 1,
                             blob[start:start + PAYLOAD], ip_id=i)
        frames.append((1_800_000_000 + i / 1000, craft.ether(packet, dst_mac=b"\x02\0\0\0\0\x99")))
    craft.write_pcap(path, frames)


def test_a_jumbo_frame_flood_faster_than_detection_stays_within_the_queues_byte_bound(
        lab: Lab, tmp_path: Path, sensors: list[Sensor]) -> None:
    for ns, ifname in ((lab.sensor_ns, SENSOR_IF), (lab.peer_ns, PEER_IF)):
        run("ip", "-n", ns, "link", "set", "dev", ifname, "mtu", str(MTU))
    pcap = tmp_path / "jumbo-flood.pcap"
    _flood(pcap)
    sensor = launch_ready(lab, tmp_path, sensors, CONFIG)
    pid = sensor.proc.pid  # unshare, sh and nsenter exec into the sensor: one process
    assert b"icmpsensor" in Path(f"/proc/{pid}/cmdline").read_bytes()
    at_rest_kb = _status_kb(pid, "VmRSS")

    argv = ["ip", "netns", "exec", lab.peer_ns, "timeout", "-k", "5", "60", "tcpreplay", f"--intf1={PEER_IF}",
            f"--pps={RATE}", f"--loop={LOOPS}", "--unique-ip", "--preload-pcap", str(pcap)]
    replay = subprocess.run(argv, capture_output=True, text=True, timeout=90)
    sent = re.search(r"Successful packets:\s+(\d+)", replay.stdout)
    assert replay.returncode == 0 and sent is not None, (replay.returncode, replay.stdout[-1000:],
                                                         replay.stderr[-1000:])
    offered = int(sent.group(1))
    # the sensor catches up: everything it read decoded or counted dropped, by its 1-s stats records
    settled = wait_for(lambda: any(r["packets_read"] == r["decode"]["frames"] + r["queue_dropped"] > 0
                                   and r["queued_batches"] == 0 for r in sensor.stats_records()[-1:]), 60)
    peak_kb = _status_kb(pid, "VmHWM")
    queued_most = max(r.get("queued_bytes", 0) for r in sensor.stats_records())
    code, _, err = sensor.stop()
    final = sensor.stats_records()[-1]
    print(f"\noffered {offered:,} frames of {PAYLOAD + 42:,} bytes at {RATE:,}/s; "
          f"received {final['packets_received']:,}, read {final['packets_read']:,}, "
          f"decoded {final['decode']['frames']:,}; dropped: kernel {final['kernel_dropped']:,}, "
          f"queue {final['queue_dropped']:,} ({final['queue_dropped_batches']:,} batches), "
          f"shutdown {final['shutdown_dropped']:,}; most queued in a 1-s record {queued_most / 2**20:.1f} MiB; "
          f"RSS at rest {at_rest_kb / 1024:.0f} MiB, peak {peak_kb / 1024:.0f} MiB; "
          f"detection lag at most {final.get('detection_lag_max')} s")
    assert code == 0, err[-2000:]
    assert settled, sensor.stats_records()[-1]
    bound = QUEUE_BYTES + RING_BYTES + EVIDENCE_BYTES + PER_FLOW * final["detect"]["flows_created"] + ALLOWANCE
    assert (peak_kb - at_rest_kb) * 1024 <= bound, (at_rest_kb, peak_kb, bound // 1024)
    assert queued_most <= QUEUE_BYTES, queued_most
    assert final["queue_dropped"] > 0, f"detection kept up with the flood: the queue was never full ({final})"
    # every frame accounted for: none lost without a counter saying where
    assert final["packets_received"] >= offered, final
    assert final["packets_received"] == final["packets_read"] + final["kernel_dropped"], final
    assert final["packets_read"] == (final["decode"]["frames"] + final["queue_dropped"]
                                     + final["shutdown_dropped"]), final
