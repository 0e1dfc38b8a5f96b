"""The packaging under a real systemd: install.sh, the unit, sd_notify, the watchdog, journald.

A private systemd boots in systemd-nspawn on an overlay of `/` (testkit/systemd_nspawn.py):
nothing on the host changes. In it, packaging/install.sh installs the sensor from a
wheelhouse built here (`pip wheel`), twice (idempotence), then the tests drive
`systemctl` and read `journalctl` inside, while a peer network namespace sends ICMP to the
container's capture interface.

Needs root, systemd-nspawn (Debian: systemd-container) and overlayfs; skipped, saying
which is missing, otherwise. About 40 s.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from icmpsensor.notice.types import ASYM_PAYLOAD_FLOW, BY_NAME, DATA_EXFIL, NOTE_TYPES
from icmpsensor.output.journal import MSGID_ERROR, MSGID_RELOADED, MSGID_STARTED, MSGID_STOPPED
from testkit.systemd_nspawn import (
    REPO,
    SENSOR_IF,
    SENSOR_IP,
    SRC_IN_CONTAINER,
    WHEELHOUSE_IN_CONTAINER,
    Container,
    NetLab,
    exfil_payloads,
    missing_prerequisite,
    wait_for,
)

UNIT = "icmpsensor.service"
CONF = "/etc/icmpsensor/icmpsensor.yaml"
NOTICE_LOG = "/var/log/icmpsensor/notice.log"
INSTALL_SH = f"bash {SRC_IN_CONTAINER}/packaging/install.sh"
INSTALL = f"{INSTALL_SH} --wheelhouse {WHEELHOUSE_IN_CONTAINER}"
# install.sh's other way, building from the (read-only) checkout; the container has no network,
# so pip's index is the wheelhouse (which therefore also holds the build backend).
INSTALL_FROM_CHECKOUT = f"PIP_NO_INDEX=1 PIP_FIND_LINKS={WHEELHOUSE_IN_CONTAINER} {INSTALL_SH}"
CAP_NET_RAW = 1 << 13
NOTICE_WAIT = 20.0  # idle_timeout is 1 s in these tests: a notice follows its flow within a few seconds

# What install.sh leaves behind, compared between its first and second run.
STATE_COMMAND = (
    "set -e; cd /; "
    "sha256sum /usr/local/lib/systemd/system/icmpsensor.service /usr/local/lib/sysusers.d/icmpsensor.conf "
    "/usr/local/lib/tmpfiles.d/icmpsensor.conf /usr/local/lib/systemd/catalog/icmpsensor.catalog "
    "/etc/icmpsensor/icmpsensor.yaml /var/lib/systemd/catalog/database; "
    "ls /etc/icmpsensor; getent passwd icmpsensor; getent group icmpsensor; "
    "stat -c '%n %U:%G %a' /opt/icmpsensor /etc/icmpsensor /var/log/icmpsensor /var/lib/icmpsensor; "
    "/opt/icmpsensor/bin/python -m pip freeze --all --disable-pip-version-check; "
    "/opt/icmpsensor/bin/icmpsensor --version"
)


@dataclass
class Sensor:
    box: Container
    lab: NetLab
    shipped_config: str
    installs: list[subprocess.CompletedProcess[str]] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    _next_peer: int = 0

    def version(self) -> str:
        return self.box.run("/opt/icmpsensor/bin/icmpsensor --version").stdout.split()[-1]

    def peer(self) -> str:
        """A peer address no earlier test has used: each test's flows are its own."""
        addr = self.lab.peer_addrs[self._next_peer]
        self._next_peer += 1
        return addr

    def configure(self, idle_timeout: float = 1.0, exfil_bytes_threshold: int = 1500, workers: int = 1) -> None:
        """The shipped config with the capture interface and the given settings."""
        text = self.shipped_config
        for old, new in (
            ('  interface: ""\n', f"  interface: {SENSOR_IF}\n"),
            # These tests are about the service, not detection: the original profile's raw-byte
            # thresholds (with the pairing correction) keep their expectations simple.
            ("  profile: standard\n", "  profile: original\n"),
            ("  reply_pairing: auto\n", "  reply_pairing: matched\n"),
            ("  idle_timeout: 300.0\n", f"  idle_timeout: {idle_timeout}\n"),
            ("  exfil_bytes_threshold: 1500\n", f"  exfil_bytes_threshold: {exfil_bytes_threshold}\n"),
            ("  workers: 1\n", f"  workers: {workers}\n"),
        ):
            assert text.count(old) == 1, f"etc/icmpsensor.yaml no longer has exactly one line {old.strip()!r}"
            text = text.replace(old, new)
        self.box.write(CONF, text)

    def systemctl(self, args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return self.box.run(f"systemctl {args}", timeout=timeout)

    def restart(self) -> None:
        # reset-failed: the tests start the unit more often than its start rate limit allows.
        self.box.run(f"systemctl reset-failed {UNIT} 2>/dev/null; systemctl restart {UNIT}", timeout=30)
        assert self.box.run(f"systemctl is-active {UNIT}", check=False).stdout.strip() == "active"

    def ensure_running(self) -> None:
        """Each test can run alone: start the unit if an earlier test did not leave it running."""
        if self.box.run(f"systemctl is-active {UNIT}", check=False).stdout.strip() != "active":
            self.restart()

    def props(self, *names: str) -> dict[str, str]:
        return self.box.show(UNIT, *names)

    def entries(self, *matches: str, unit_matches: bool = False,
                old: set[str] | None = None) -> list[dict[str, object]]:
        """The daemon's own journal entries (with unit_matches: also systemd's about the unit),
        leaving out those whose cursor is in old. (Not `-u` for the daemon's: its built-in
        MESSAGE_ID= term would be OR-ed with a MESSAGE_ID= match.)"""
        found = self.box.journal(*(["-u", UNIT] if unit_matches else [f"_SYSTEMD_UNIT={UNIT}"]), *matches)
        return [e for e in found if not old or e["__CURSOR"] not in old]

    def mark(self, *matches: str, unit_matches: bool = False) -> set[str]:
        """The cursors of the entries there are now, to wait for new ones (entries(old=...))."""
        return {str(e["__CURSOR"]) for e in self.entries(*matches, unit_matches=unit_matches)}

    def wait_entries(self, *matches: str, old: set[str] | None = None, timeout: float = NOTICE_WAIT,
                     want: int = 1) -> list[dict[str, object]]:
        found = wait_for(lambda: (e := self.entries(*matches, old=old)) and len(e) >= want and e,
                         timeout, interval=0.3)
        assert found, (f"no new journal entry {' '.join(matches)} within {timeout}s; the unit's journal:\n"
                       + self.box.run(f"journalctl --no-pager -u {UNIT} -n 30", check=False).stdout)
        return list(found)  # type: ignore[arg-type]

    def notices_of(self, src: str) -> list[dict[str, object]]:
        import json

        return [n for line in self.box.read(NOTICE_LOG).splitlines() if line.strip()
                for n in [json.loads(line)] if n.get("src") == src]


def _build_wheelhouse(dest: Path, work: Path) -> None:
    """icmpsensor and its dependencies as wheels, from a copy of the checkout (pip builds in-tree),
    plus setuptools and wheel to build the checkout offline."""
    src = work / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".hypothesis", ".pytest_cache", ".ruff_cache", "__pycache__", "build", "*.egg-info",
        "*.so", "bench", "tests"))
    argv = [sys.executable, "-m", "pip", "wheel", "--disable-pip-version-check", "--quiet", str(src),
            "setuptools>=74.1", "wheel", "-w", str(dest)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.fail("pip wheel (building the wheelhouse for install.sh) took more than 300 s")
    if proc.returncode != 0:
        pytest.fail(f"pip wheel failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")


def packets_read(sensor: Sensor) -> int:
    """The packets the daemon says it has read (its STATUS= line); 0 before its first STATUS= (empty: with workers,
    until their first stats reach the main process)."""
    status = sensor.props("StatusText")["StatusText"]
    return int(status.split(" packets", 1)[0]) if re.match(r"\d+ packets", status) else 0


@pytest.fixture(scope="module")
def sensor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sensor]:
    reason = missing_prerequisite()
    if reason:
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("systemd")
    wheelhouse = work / "wheelhouse"
    _build_wheelhouse(wheelhouse, work)
    tag = str(__import__("os").getpid())
    lab = NetLab(tag)
    box = Container(work / "container", lab.sensor_ns, wheelhouse, name=f"icmpsensor-test-{tag}")
    try:
        lab.up()
        box.boot(timeout=60)
        s = Sensor(box, lab, shipped_config=(REPO / "etc" / "icmpsensor.yaml").read_text())
        for _ in range(2):
            s.installs.append(box.run(INSTALL, timeout=300))
            s.states.append(box.run(STATE_COMMAND).stdout)
        # An edited config: a third run must keep it and put the shipped one beside it. This run
        # builds from the checkout instead, and adds the logrotate file.
        s.configure()
        edited = box.read(CONF)
        s.installs.append(box.run(f"{INSTALL_FROM_CHECKOUT} --with-logrotate", timeout=300))
        assert box.read(CONF) == edited, "install.sh changed an edited /etc/icmpsensor/icmpsensor.yaml"
        yield s
    finally:
        box.poweroff()
        lab.down()


# -- installer and unit ------------------------------------------------------------------------


def test_install_sh_is_idempotent(sensor: Sensor) -> None:
    first, second, third = sensor.installs
    assert "creating the venv /opt/icmpsensor" in first.stdout
    assert "installed /etc/icmpsensor/icmpsensor.yaml" in first.stdout
    assert "creating the venv" not in second.stdout, "the second run re-created the venv"
    assert "is the shipped one, unchanged" in second.stdout
    assert "skipped daemon-reload" not in first.stdout, "install.sh did not see the container's systemd"
    assert sensor.states[0] == sensor.states[1], "the second install.sh run changed the installation"
    assert "icmpsensor:x:" in sensor.states[0]
    assert "/var/log/icmpsensor icmpsensor:icmpsensor 750" in sensor.states[0]
    # The third run built from the checkout and saw an edited config: kept, the shipped one
    # beside it, and said so.
    assert f"installing icmpsensor {sensor.version()} from {SRC_IN_CONTAINER}" in third.stdout
    assert "kept your /etc/icmpsensor/icmpsensor.yaml" in third.stdout
    assert f"capture.interface is {SENSOR_IF}" in third.stdout
    assert sensor.box.read(CONF + ".dist") == sensor.shipped_config
    for run in sensor.installs:
        assert run.stderr == "", run.stderr


def test_installed_unit_verifies_and_is_hardened(sensor: Sensor) -> None:
    verify = sensor.box.run(f"systemd-analyze verify {UNIT}", check=False)
    assert (verify.returncode, verify.stdout + verify.stderr) == (0, "")
    security = sensor.box.run(f"systemd-analyze security --no-pager {UNIT}").stdout
    score = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", security)
    assert score and float(score.group(1)) <= 2.0, security[-500:]
    # The catalog is compiled in: journalctl knows every MESSAGE_ID of icmpsensor/journal.py.
    catalog = sensor.box.run("journalctl --list-catalog --no-pager").stdout
    for msgid in [*(n.message_id for n in NOTE_TYPES), MSGID_STARTED, MSGID_STOPPED, MSGID_RELOADED, MSGID_ERROR]:
        assert msgid in catalog


# -- the running service -------------------------------------------------------------------------


def test_start_returns_when_capturing_with_only_cap_net_raw(sensor: Sensor) -> None:
    box = sensor.box
    box.run(f"systemctl reset-failed {UNIT} 2>/dev/null; systemctl stop {UNIT}")
    old = sensor.mark(f"MESSAGE_ID={MSGID_STARTED}")
    start = box.run(f"systemctl start {UNIT}; systemctl is-active {UNIT}", timeout=60, check=False)
    assert start.stdout.strip() == "active", (start.stdout, start.stderr)
    # Type=notify: `systemctl start` returned after READY=1, i.e. with capture running, so a
    # transfer sent right now is seen.
    src = sensor.peer()
    sensor.lab.send_echo(src, exfil_payloads(40, 500, seed=1))
    sensor.wait_entries(f"SRC={src}", f"NOTE={DATA_EXFIL.name}")
    started = sensor.wait_entries(f"MESSAGE_ID={MSGID_STARTED}", old=old)
    assert SENSOR_IF in str(started[-1]["MESSAGE"])
    # install.sh built the C decoder, and it loads under the unit's sandbox (MemoryDenyWriteExecute, ...)
    assert started[-1]["DECODER"] == "C decoder" and "(C decoder)" in str(started[-1]["MESSAGE"])
    # The process: user icmpsensor, CAP_NET_RAW and nothing else, no new privileges, seccomp on.
    pid = sensor.props("MainPID")["MainPID"]
    status = dict(line.split(":", 1) for line in box.read(f"/proc/{pid}/status").splitlines() if ":" in line)
    uid = box.run("id -u icmpsensor").stdout.strip()
    assert status["Uid"].split()[0] == uid
    for cap in ("CapEff", "CapPrm", "CapBnd", "CapAmb"):
        assert int(status[cap], 16) == CAP_NET_RAW, (cap, status[cap])
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Seccomp"].strip() == "2"


def test_notices_reach_the_journal_with_their_fields(sensor: Sensor) -> None:
    sensor.ensure_running()
    src = sensor.peer()
    payloads = exfil_payloads(40, 500, seed=2)
    sensor.lab.send_echo(src, payloads)
    entries = sensor.wait_entries(f"SRC={src}", want=2)
    by_note = {e["NOTE"]: e for e in entries}
    assert set(by_note) == {DATA_EXFIL.name, ASYM_PAYLOAD_FLOW.name}, entries
    logged = {n["note"]: n for n in sensor.notices_of(src)}
    for note, entry in by_note.items():
        assert entry["SYSLOG_IDENTIFIER"] == "icmpsensor"
        assert entry["MESSAGE_ID"] == BY_NAME[note].message_id
        assert entry["_SYSTEMD_UNIT"] == UNIT
        assert (entry["SRC"], entry["DST"]) == (src, SENSOR_IP)
        assert entry["N"] == "40"
        assert entry["BYTES_SENT"] == str(sum(map(len, payloads)))
        assert entry["BYTES_RECEIVED"] == "0"
        start, end = float(entry["START"]), float(entry["END"])  # type: ignore[arg-type]
        assert 0 < end - start < 10
        assert entry["MESSAGE"] and entry["PRIORITY"] == "4"  # warning, the configured default
        # The same notice in notice.log, with the same uid.
        assert note in logged, f"{note} for {src} is in the journal but not in {NOTICE_LOG}"
        assert logged[note]["uid"] == entry["UID"]
    # `journalctl -x` explains it with the catalog entry, fields filled in.
    explained = sensor.box.run(f"journalctl --no-pager -x -u {UNIT} SRC={src} NOTE={DATA_EXFIL.name}").stdout
    assert f"ICMP data exfiltration suspected from {src} to {SENSOR_IP}" in explained
    # Log files: directory 0750, files 0640, all icmpsensor:icmpsensor (a log shipper joins the group).
    modes = sensor.box.run("stat -c '%U:%G %a' /var/log/icmpsensor /var/log/icmpsensor/notice.log").stdout
    assert modes.split("\n")[:2] == ["icmpsensor:icmpsensor 750", "icmpsensor:icmpsensor 640"]


def test_reload_applies_a_lowered_threshold(sensor: Sensor) -> None:
    box = sensor.box
    sensor.ensure_running()
    pid = sensor.props("MainPID")["MainPID"]
    small = exfil_payloads(8, 100, seed=3)  # 800 bytes, 7 changed requests: below exfil_bytes_threshold 1500
    before = sensor.peer()
    sensor.lab.send_echo(before, small)
    sensor.wait_entries(f"SRC={before}", f"NOTE={ASYM_PAYLOAD_FLOW.name}")
    assert not sensor.entries(f"SRC={before}", f"NOTE={DATA_EXFIL.name}")
    try:
        sensor.configure(exfil_bytes_threshold=500)
        old = sensor.mark(f"MESSAGE_ID={MSGID_RELOADED}")
        sensor.systemctl(f"reload {UNIT}")
        sensor.wait_entries(f"MESSAGE_ID={MSGID_RELOADED}", old=old, timeout=10)
        after = sensor.peer()
        sensor.lab.send_echo(after, small)
        sensor.wait_entries(f"SRC={after}", f"NOTE={DATA_EXFIL.name}")
        # An invalid file is refused and the running configuration kept.
        old = sensor.mark(f"MESSAGE_ID={MSGID_ERROR}")
        box.write(CONF, "detection: [\n")
        sensor.systemctl(f"reload {UNIT}")
        rejected = sensor.wait_entries(f"MESSAGE_ID={MSGID_ERROR}", old=old, timeout=10)
        assert "reload" in str(rejected[-1]["MESSAGE"])
        assert box.run(f"systemctl is-active {UNIT}", check=False).stdout.strip() == "active"
        assert sensor.props("MainPID")["MainPID"] == pid, "a reload must not restart the daemon"
    finally:
        sensor.configure()
        old = sensor.mark(f"MESSAGE_ID={MSGID_RELOADED}")
        sensor.systemctl(f"reload {UNIT}")
        sensor.wait_entries(f"MESSAGE_ID={MSGID_RELOADED}", old=old, timeout=10)


def test_logrotate_create_mode_and_reload(sensor: Sensor) -> None:
    """packaging/logrotate/icmpsensor (installed by install.sh --with-logrotate) rotates without
    losing the daemon: the new notice.log is 0640 icmpsensor:icmpsensor and written to after the
    postrotate reload."""
    box = sensor.box
    assert "installed /etc/logrotate.d/icmpsensor" in sensor.installs[2].stdout
    sensor.ensure_running()
    before = sensor.peer()
    sensor.lab.send_echo(before, exfil_payloads(40, 500, seed=5))
    sensor.wait_entries(f"SRC={before}", f"NOTE={DATA_EXFIL.name}")
    old = sensor.mark(f"MESSAGE_ID={MSGID_RELOADED}")
    rotate = box.run("logrotate --force --state /tmp/logrotate.state /etc/logrotate.d/icmpsensor 2>&1")
    assert "error" not in rotate.stdout, rotate.stdout
    reloaded = sensor.wait_entries(f"MESSAGE_ID={MSGID_RELOADED}", old=old, timeout=10)
    assert "reopened" in str(reloaded[-1]["MESSAGE"])
    listing = box.run("stat -c '%n %U:%G %a %s' /var/log/icmpsensor/notice.log*").stdout.splitlines()
    assert f"{NOTICE_LOG} icmpsensor:icmpsensor 640 0" in listing, listing
    assert any(re.match(rf"{NOTICE_LOG}-\d{{8}}-\d{{6}} icmpsensor:icmpsensor 640 [1-9]", line) for line in listing)
    assert not sensor.notices_of(before), "the rotated notices are still in notice.log"
    after = sensor.peer()
    sensor.lab.send_echo(after, exfil_payloads(40, 500, seed=6))
    sensor.wait_entries(f"SRC={after}", f"NOTE={DATA_EXFIL.name}")
    assert wait_for(lambda: sensor.notices_of(after), 5), "the daemon did not write to the new notice.log"


WATCHDOG_DROPIN = "/run/systemd/system/icmpsensor.service.d/50-test-watchdog.conf"


def test_watchdog_restarts_a_stuck_daemon(sensor: Sensor) -> None:
    box = sensor.box
    # The test hook: the detector loop stops its WATCHDOG=1 heartbeat after 2 s.
    box.write(WATCHDOG_DROPIN, "[Service]\n"
              "Environment=ICMPSENSOR_TEST_FREEZE_HEARTBEAT_AFTER=2\n"
              "WatchdogSec=3s\n"
              "RestartSec=200ms\n"
              "LimitCORE=0\n")
    try:
        box.run("systemctl daemon-reload")
        sensor.restart()
        first = sensor.props("InvocationID", "NRestarts", "MainPID")
        old = sensor.mark(unit_matches=True)

        def restarted() -> dict[str, str] | None:
            now = sensor.props("InvocationID", "NRestarts", "MainPID", "ActiveState", "SubState")
            done = (int(now["NRestarts"]) > int(first["NRestarts"]) and now["InvocationID"] != first["InvocationID"]
                    and now["ActiveState"] == "active")
            return now if done else None

        now = wait_for(restarted, 20, interval=0.2)
        assert now, f"no watchdog restart within 20 s: {sensor.props('ActiveState', 'SubState', 'NRestarts')}"
        assert now["MainPID"] != first["MainPID"]
        messages = [str(e["MESSAGE"]) for e in sensor.entries(unit_matches=True, old=old)]
        assert any("Watchdog timeout" in m for m in messages), messages
    finally:
        box.path(WATCHDOG_DROPIN).unlink(missing_ok=True)
        box.run("systemctl daemon-reload")
        sensor.restart()
    assert sensor.props("WatchdogUSec")["WatchdogUSec"] == "30s"


def test_stop_flushes_open_flows(sensor: Sensor) -> None:
    # Flows stay open for 300 s: only the stop can have written these notices.
    sensor.configure(idle_timeout=300.0)
    sensor.restart()
    src = sensor.peer()
    sensor.lab.send_echo(src, exfil_payloads(40, 500, seed=4))
    # Wait until the daemon has read the 40 packets (its STATUS= line), so the flow is open in it.
    assert wait_for(lambda: packets_read(sensor) >= 40, 10, interval=0.2), sensor.props("StatusText")
    assert not sensor.entries(f"SRC={src}")
    old = sensor.mark(f"MESSAGE_ID={MSGID_STOPPED}")
    began = time.monotonic()
    sensor.systemctl(f"stop {UNIT}")
    took = time.monotonic() - began
    after = sensor.props("ActiveState", "Result", "ExecMainStatus")
    assert after == {"ActiveState": "inactive", "Result": "success", "ExecMainStatus": "0"}, after
    assert took < 5.0, f"systemctl stop took {took:.1f} s"
    notes = {e["NOTE"] for e in sensor.entries(f"SRC={src}")}
    assert notes == {DATA_EXFIL.name, ASYM_PAYLOAD_FLOW.name}
    assert {n["note"] for n in sensor.notices_of(src)} == notes
    stopped = sensor.entries(f"MESSAGE_ID={MSGID_STOPPED}", old=old)
    assert stopped and "SIGTERM" in str(stopped[-1]["MESSAGE"]), stopped
    sensor.configure()


def test_two_workers_run_under_the_hardened_unit(sensor: Sensor) -> None:
    """capture.workers: 2 within the unit's sandbox (seccomp, address families, NotifyAccess=main):
    READY=1, notices written by the main process, a clean stop flushing the workers' open flows."""
    box = sensor.box
    sensor.configure(idle_timeout=300.0, workers=2)
    try:
        sensor.restart()
        pid = sensor.props("MainPID")["MainPID"]
        children = box.read(f"/proc/{pid}/task/{pid}/children").split()
        assert len(children) == 2, children
        for child in children:
            status = dict(line.split(":", 1) for line in box.read(f"/proc/{child}/status").splitlines() if ":" in line)
            assert int(status["CapEff"], 16) == CAP_NET_RAW and status["Seccomp"].strip() == "2"
        started = sensor.wait_entries(f"MESSAGE_ID={MSGID_STARTED}", f"_PID={pid}")
        assert "with 2 workers" in str(started[-1]["MESSAGE"])
        src = sensor.peer()
        sensor.lab.send_echo(src, exfil_payloads(40, 500, seed=7))
        # The original profile alerts at flow end and flows stay open for 300 s: wait until the workers
        # have read the packets (the summed STATUS= line), then only the stop can write the notices.
        assert wait_for(lambda: packets_read(sensor) >= 40, 10, interval=0.2), sensor.props("StatusText")
        assert sensor.props("StatusText")["StatusText"].endswith("; 2 workers") and not sensor.entries(f"SRC={src}")
        began = time.monotonic()
        sensor.systemctl(f"stop {UNIT}")
        took = time.monotonic() - began
        after = sensor.props("ActiveState", "Result", "ExecMainStatus")
        assert after == {"ActiveState": "inactive", "Result": "success", "ExecMainStatus": "0"}, after
        assert took < 5.0, f"systemctl stop took {took:.1f} s"
        entries = sensor.entries(f"SRC={src}")
        assert {e["NOTE"] for e in entries} == {DATA_EXFIL.name, ASYM_PAYLOAD_FLOW.name}, entries
        assert all(e["_PID"] == pid for e in entries)  # the main process writes every notice
        assert {n["note"] for n in sensor.notices_of(src)} == {DATA_EXFIL.name, ASYM_PAYLOAD_FLOW.name}
    finally:
        sensor.configure()
        sensor.restart()
