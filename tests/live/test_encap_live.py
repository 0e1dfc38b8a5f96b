"""ICMP inside encapsulations, live between network namespaces: a VXLAN segment the kernel makes between the lab's
two hosts with an exfiltration sent through it, and crafted frames of the other encapsulations (this kernel has no
GRE, IP-in-IP or Geneve devices) replayed onto the lab's veth. The sensor captures the veth, where only the
encapsulated frames pass: the default capture filter, compiled into the kernel, must pass them and the decoder
open them (docs/operations.md, Encapsulations); each notice names the inner pair. Traffic crosses only the lab's
veth pair; every loop is bounded in count and time."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from testkit import craft
from testkit.cli import chunk
from testkit.netlab import (
    PEER_IF,
    PEER_IP,
    SENSOR_IF,
    SENSOR_IP,
    Lab,
    Sensor,
    launch_ready,
    missing_prerequisite,
    wait_for,
)

_MISSING = missing_prerequisite("hping3", "tcpreplay")
pytestmark = [pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING)), pytest.mark.timeout(180)]

CONFIG = "detection:\n  idle_timeout: 2\nstats:\n  interval: 1\n"
# (name, `ip link add` arguments after the device's name for the peer's end and the sensor's, inner addresses)
TUNNELS = {
    "vxlan": (["type", "vxlan", "id", "42", "local", PEER_IP, "remote", SENSOR_IP, "dstport", "4789", "dev", PEER_IF],
              ["type", "vxlan", "id", "42", "local", SENSOR_IP, "remote", PEER_IP, "dstport", "4789", "dev",
               SENSOR_IF], "172.31.8.2", "172.31.8.1"),
}


@pytest.mark.parametrize("tunnel", sorted(TUNNELS))
def test_an_exfiltration_through_a_kernel_tunnel_is_reported_by_its_inner_pair(
        lab: Lab, tmp_path: Path, sensors: list[Sensor], tunnel: str) -> None:
    peer_args, sensor_args, inner_peer, inner_sensor = TUNNELS[tunnel]
    for run_in, args, address in ((lab.in_peer, peer_args, inner_peer), (lab.in_sensor, sensor_args, inner_sensor)):
        run_in("ip", "link", "add", "tun7", *args)
        run_in("ip", "addr", "add", f"{address}/30", "dev", "tun7")
        run_in("ip", "link", "set", "tun7", "up")
    assert wait_for(lambda: lab.in_peer("ping", "-c", "1", "-W", "1", inner_sensor, check=False).returncode == 0, 15)
    sensor = launch_ready(lab, tmp_path, sensors, CONFIG)
    secret = tmp_path / "secret.bin"
    secret.write_bytes(os.urandom(8000))
    lab.in_peer("timeout", "60", "hping3", "-1", "-E", str(secret), "-d", "400", "-u", "-c", "20", "-i", "u20000",
                "-q", inner_sensor, timeout=90, check=False)
    reported = wait_for(lambda: any(n["note"] == "ICMP::ICMP_DataExfil" and n["src"] == inner_peer
                                    and n["dst"] == inner_sensor for n in sensor.notices()), 20)
    code, _, err = sensor.stop()
    assert code == 0, err[-2000:]
    last = sensor.stats_records()[-1]
    assert reported, (sensor.notices(), last)
    assert last["decode"]["decapsulated"] >= 20, last["decode"]  # type: ignore[index]


CRAFTED = ["gre", "gre-key-seq-csum", "erspan2", "erspan3", "ipip", "ipip6", "gre-in-gre-in-ipip", "mpls",
           "pppoe-vlan", "vxlan6", "geneve"]


def test_crafted_encapsulations_replayed_onto_the_wire_are_each_reported_by_their_inner_pair(
        lab: Lab, tmp_path: Path, sensors: list[Sensor]) -> None:
    framers = craft.encapsulations()
    frames = []
    for k, name in enumerate(CRAFTED):
        src, dst = f"10.99.{k}.2", f"10.99.{k}.1"
        for i in range(20):
            echo = craft.icmp4(src, dst, craft.ECHO_REQUEST, 0, 9, i, chunk(100 * k + i, 300))
            frames.append((1_800_000_000 + i * 0.05 + k * 0.001, framers[name](echo)))
    capture = tmp_path / "encapsulated.pcap"
    craft.write_pcap(capture, sorted(frames))
    sensor = launch_ready(lab, tmp_path, sensors, CONFIG)
    lab.in_peer("timeout", "60", "tcpreplay", "-q", "--pps=2000", f"--intf1={PEER_IF}", str(capture), timeout=90)
    want = {(f"10.99.{k}.2", f"10.99.{k}.1") for k in range(len(CRAFTED))}

    def reported() -> set[tuple[object, object]]:
        return {(n["src"], n["dst"]) for n in sensor.notices() if n["note"] == "ICMP::ICMP_DataExfil"}

    wait_for(lambda: want <= reported(), 20)
    code, _, err = sensor.stop()
    assert code == 0, err[-2000:]
    missed = sorted(CRAFTED[int(str(src).split(".")[2])] for src, _ in want - reported())
    assert not missed, (missed, sensor.stats_records()[-1]["decode"])
