"""Hostile input and bad days on the command line (issue 11): capture bytes, config bytes and file types
never make the sensor exit 1 or hang; planted links are never followed; a broken stderr or stdout loses
no notice."""

from __future__ import annotations

import atexit
import ipaddress
import json
import os
import random
import stat
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dpkt
import pytest

from icmpsensor.example import example_frames
from testkit import craft
from testkit.benign_corpus import iputils_payload, windows_payload
from testkit.cli import run_cli_here
from testkit.paths import REPO


def sensor(*args: str | Path, stdin: bytes | None = None, stdout: object = subprocess.PIPE,
           stderr: object = subprocess.PIPE, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "icmpsensor", *map(str, args)], input=stdin, stdout=stdout,
                          stderr=stderr, timeout=timeout, env={**os.environ, "TZ": "UTC"}, cwd=REPO)


class Started:
    """A sensor run started ahead of the test that checks it (which reads its result), timed from its start to its
    exit: the other tests run while it waits. Killed if it has not ended when its time is up."""

    def __init__(self, *args: str | Path) -> None:
        self.began = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "icmpsensor", *map(str, args)], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env={**os.environ, "TZ": "UTC"}, cwd=REPO)
        self.ended: float | None = None
        self.stderr = b""
        self._waiter = threading.Thread(target=self._wait, daemon=True)
        self._waiter.start()

    def _wait(self) -> None:
        _, self.stderr = self.proc.communicate()
        self.ended = time.monotonic()

    def result(self, timeout: float) -> tuple[int, bytes, float]:
        """(exit code, stderr, seconds from start to exit); fails if it runs `timeout` seconds from its start."""
        self._waiter.join(max(0.0, self.began + timeout - time.monotonic()))
        if self.ended is None:
            self.kill()
            pytest.fail(f"still running {timeout:g} s after it started")
        return self.proc.returncode, self.stderr, self.ended - self.began

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self._waiter.join(10)


def _fifo_wait_args(name: str, fifo: Path, tmp: Path) -> tuple[str | Path, ...]:
    """The sensor's arguments for the test `name` (a FIFO no one writes to: the sensor waits 10 s for its writer,
    config/loader.py and source/pcapfile.py, before it gives up)."""
    if name == "test_a_config_fifo_without_a_writer_is_an_error_not_a_hang":
        return ("-c", fifo, "--check-config")
    if name == "test_a_capture_fifo_without_a_writer_is_an_error_not_a_hang":
        return ("-r", fifo, "--log-dir", tmp)
    capture = write_pcap(tmp / "first.pcap", example_frames())  # a file first, and workers asked for
    return ("-r", capture, "-r", fifo, "--workers", "2", "--log-dir", tmp)


FIFO_TESTS = ("test_a_config_fifo_without_a_writer_is_an_error_not_a_hang",
              "test_a_capture_fifo_without_a_writer_is_an_error_not_a_hang",
              "test_a_capture_fifo_without_a_writer_after_a_file_is_an_error_not_a_hang")


_EARLY: dict[str, tuple[Path, Started]] = {}  # the runs started when the session's tests were known (start_early)


def start_fifo_wait(name: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Started]:
    tmp = tmp_path_factory.mktemp("fifo-wait")
    fifo = tmp / "fifo"
    os.mkfifo(fifo)
    started = Started(*_fifo_wait_args(name, fifo, tmp))
    atexit.register(started.kill)  # a session that ends before this module (-x) leaves no sensor behind
    return fifo, started


def start_early(selected: set[str], tmp_path_factory: pytest.TempPathFactory) -> None:
    """tests/conftest.py calls this once collection is over: the runs that only wait start now (not on the early
    lane of tests/early.py: they take no core), beside every test before this module."""
    for name in FIFO_TESTS:
        if name in selected and name not in _EARLY:
            _EARLY[name] = start_fifo_wait(name, tmp_path_factory)


@pytest.fixture(scope="module")
def fifo_waits(request: pytest.FixtureRequest,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Path, Started]]]:
    """The FIFO runs of the tests to run, started early (start_early) or with this module (here)."""
    selected = {getattr(item, "originalname", item.name) for item in request.session.items}
    runs = {name: _EARLY.pop(name, None) or start_fifo_wait(name, tmp_path_factory)
            for name in FIFO_TESTS if name in selected}
    yield runs
    for _, started in runs.values():
        started.kill()


@pytest.fixture(scope="module", autouse=True)
def start_the_waits_early(request: pytest.FixtureRequest) -> None:
    """Start the runs that mostly wait when the module starts, if their test is to run (and start_early has not)."""
    if any(getattr(item, "originalname", item.name) in FIFO_TESTS for item in request.session.items):
        request.getfixturevalue("fifo_waits")


Example = tuple[Path, list[tuple[object, ...]]]


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Example:
    """The example capture, and what a plain replay of it gives (each run on it below must give the same): once."""
    base = tmp_path_factory.mktemp("example")
    capture = write_pcap(base / "in.pcap", example_frames())
    logs = base / "expected"
    logs.mkdir()
    assert sensor("-r", capture, "--log-dir", logs).returncode == 0
    expected = summary(notices(logs))
    assert expected != []
    return capture, expected


def notices(log_dir: Path) -> list[dict[str, object]]:
    path = log_dir / "notice.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def summary(records: list[dict[str, object]]) -> list[tuple[object, ...]]:
    """What must match between two runs: each notice but its uid, times and evidence."""
    return sorted((n["note"], n["src"], n["dst"], n["n"]) for n in records)


def write_pcap(path: Path, frames: list[tuple[float, bytes]]) -> Path:
    with path.open("wb") as out:
        writer = dpkt.pcap.Writer(out, linktype=dpkt.pcap.DLT_EN10MB)
        for ts, frame in frames:
            writer.writepkt(frame, ts=ts)
    return path


def shifted(frames: list[tuple[float, bytes]], to: float) -> list[tuple[float, bytes]]:
    first = frames[0][0]
    return [(to + ts - first, frame) for ts, frame in frames]


def out_dir(tmp_path: Path, name: str = "out") -> Path:
    path = tmp_path / name
    path.mkdir()
    return path


def one_error_line(stderr: bytes, *needles: str) -> None:
    errors = [line for line in stderr.decode().splitlines() if line.startswith("icmpsensor: error:")]
    assert len(errors) == 1, stderr.decode()
    assert "Traceback" not in stderr.decode()
    for needle in needles:
        assert needle in errors[0], errors[0]


# -- broken captures whose timestamps lie after 2038 (or at the end of 2106) -------------------------------


@pytest.mark.parametrize("start", [2**31 + 256.0, 2**32 - 3600.0, 1.0])
def test_a_broken_capture_after_2038_gives_the_notices_before_the_break_and_exit_66(tmp_path: Path,
                                                                                   start: float) -> None:
    frames = shifted(example_frames(), start)
    clean = write_pcap(tmp_path / "clean.pcap", frames)
    broken = tmp_path / "broken.pcap"
    broken.write_bytes(clean.read_bytes() + struct.pack("<IIII", int(start), 0, 100, 100) + b"x" * 10)
    expected = run_cli_here("-r", clean, log_dir=out_dir(tmp_path, "clean"))  # the reference: in this process
    assert expected.returncode == 0, expected.stderr
    for workers in ("1", "2"):
        logs = out_dir(tmp_path, f"w{workers}")
        result = sensor("-r", broken, "--log-dir", logs, "--workers", workers)
        assert result.returncode == 66, result.stderr.decode()
        one_error_line(result.stderr, str(broken))
        assert summary(notices(logs)) == summary(notices(tmp_path / "clean")) != []


# -- a huge number in the config -----------------------------------------------------------------------------

SECONDS_KEYS = [("detection", "idle_timeout"), ("detection", "timestamp_tolerance"),
                ("detection", "slow_exfil_window"), ("decode", "fragment_timeout"),
                ("output", "rotation", "interval"), ("stats", "interval")]


@pytest.mark.parametrize("key", SECONDS_KEYS, ids=".".join)
@pytest.mark.parametrize("number", ["9" * 330, "-" + "9" * 330, "1e999", "9" * 5000])
def test_a_huge_number_for_a_seconds_key_is_a_config_error(tmp_path: Path, key: tuple[str, ...],
                                                           number: str) -> None:
    text = "".join(f"{'  ' * depth}{name}:\n" for depth, name in enumerate(key[:-1]))
    text += f"{'  ' * (len(key) - 1)}{key[-1]}: {number}\n"
    path = tmp_path / "c.yaml"
    path.write_text(text)
    result = sensor("-c", path, "--check-config")
    assert result.returncode == 78, result.stderr.decode()
    one_error_line(result.stderr, f"{path}:{len(key)}: {'.'.join(key)}:")


# -- planted links and odd file types as outputs ---------------------------------------------------------------


def test_a_planted_notice_log_link_is_not_followed(tmp_path: Path) -> None:
    capture = write_pcap(tmp_path / "in.pcap", example_frames())
    logs = out_dir(tmp_path)
    victim = tmp_path / "victim"
    victim.write_text("VICTIM\n")
    (logs / "notice.log").symlink_to(victim)
    result = sensor("-r", capture, "--log-dir", logs)
    assert result.returncode == 73
    one_error_line(result.stderr, str(logs / "notice.log"))
    assert victim.read_text() == "VICTIM\n"


def test_a_notice_log_planted_as_a_hard_link_is_not_written_through(tmp_path: Path) -> None:
    # A hard link is followed by any open: the lines would be appended to the file it shares (red team, 2026-12-08:
    # notice.log as a hard link to another file took the notices, and that file's first line was no notice).
    capture = write_pcap(tmp_path / "in.pcap", example_frames())
    logs = out_dir(tmp_path)
    victim = tmp_path / "victim"
    victim.write_text("VICTIM\n")
    os.link(victim, logs / "notice.log")
    result = sensor("-r", capture, "--log-dir", logs)
    assert result.returncode == 73, result.stderr.decode()
    one_error_line(result.stderr, str(logs / "notice.log"), "hard link")
    assert victim.read_text() == "VICTIM\n"


def test_a_dangling_notice_log_link_is_not_followed_either(tmp_path: Path) -> None:
    capture = write_pcap(tmp_path / "in.pcap", example_frames())
    logs = out_dir(tmp_path)
    (logs / "notice.log").symlink_to(tmp_path / "created-by-the-sensor")
    assert sensor("-r", capture, "--log-dir", logs).returncode == 73
    assert not (tmp_path / "created-by-the-sensor").exists()


@pytest.mark.timeout(30)
def test_a_fifo_as_notice_log_is_refused_without_hanging(tmp_path: Path) -> None:
    capture = write_pcap(tmp_path / "in.pcap", example_frames())
    logs = out_dir(tmp_path)
    os.mkfifo(logs / "notice.log")
    result = sensor("-r", capture, "--log-dir", logs, timeout=20)
    assert result.returncode == 73
    one_error_line(result.stderr, str(logs / "notice.log"))


def test_a_planted_evidence_link_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    capture = write_pcap(tmp_path / "in.pcap", example_frames())
    logs = out_dir(tmp_path)
    foreign = out_dir(tmp_path, "foreign")
    for i in range(3):
        (foreign / f"f{i}").write_text("keep\n")
    (logs / "evidence").symlink_to(foreign)
    config = tmp_path / "c.yaml"
    config.write_text("output:\n  evidence:\n    max_total_bytes: 1024\n")
    result = sensor("-r", capture, "-c", config, "--log-dir", logs)
    assert result.returncode == 73
    one_error_line(result.stderr, str(logs / "evidence"))
    assert sorted(p.name for p in foreign.iterdir()) == ["f0", "f1", "f2"]


def test_the_evidence_trim_deletes_only_evidence_files(tmp_path: Path) -> None:
    capture = write_pcap(tmp_path / "in.pcap", example_frames())
    logs = out_dir(tmp_path)
    evidence = logs / "evidence"
    evidence.mkdir()
    os.chmod(evidence, 0o750)
    for name in ("README", "notes.pcap", "C123.pcap.bak"):
        (evidence / name).write_bytes(b"x" * 4096)
        os.utime(evidence / name, (1, 1))  # the oldest files in the directory
    config = tmp_path / "c.yaml"
    config.write_text("output:\n  evidence:\n    max_total_bytes: 1024\n")
    assert sensor("-r", capture, "-c", config, "--log-dir", logs).returncode == 0
    assert {"README", "notes.pcap", "C123.pcap.bak"} <= {p.name for p in evidence.iterdir()}


# -- a broken stderr or stdout -----------------------------------------------------------------------------


def test_stderr_on_a_full_device_loses_no_notice(tmp_path: Path, example: Example) -> None:
    capture, expected = example
    logs = out_dir(tmp_path)
    with open("/dev/full", "wb") as full:
        result = sensor("-r", capture, "--log-dir", logs, stderr=full)
    assert result.returncode == 0
    assert summary(notices(logs)) == expected


def test_stdout_closed_early_loses_no_notice(tmp_path: Path, example: Example) -> None:
    capture, expected = example
    logs = out_dir(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "icmpsensor", "-r", str(capture), "--log-dir", str(logs),
                             "--stdout"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    assert proc.stdout is not None
    proc.stdout.readline()
    proc.stdout.close()  # as `| head -1` does
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert "Traceback" not in err.decode()
    assert summary(notices(logs)) == expected


def closed_stream_sensor(closed: str, *args: str | Path) -> subprocess.CompletedProcess[bytes]:
    """The sensor started with its standard output (`>&-`) or error (`2>&-`) closed: Python sets sys.stdout or
    sys.stderr to None, and the first file the sensor opens would get the descriptor. What it says on the other
    stream is captured."""
    redirect = {"stdout": ">&-", "stderr": "2>&-"}[closed]
    command = ["bash", "-c", f'exec "$@" {redirect}', "bash", sys.executable, "-m", "icmpsensor", *map(str, args)]
    return subprocess.run(command, capture_output=True, timeout=60, env={**os.environ, "TZ": "UTC"}, cwd=REPO)


@pytest.mark.parametrize("closed", ["stdout", "stderr"])
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_stream_closed_at_start_loses_no_notice_and_writes_nothing_into_a_log(
        tmp_path: Path, example: Example, closed: str, workers: str) -> None:
    capture, expected = example
    logs = out_dir(tmp_path)
    result = closed_stream_sensor(closed, "-r", capture, "--log-dir", logs, "--stdout", "--workers", workers)
    other = result.stderr if closed == "stdout" else result.stdout
    assert result.returncode == 0, other.decode()
    assert b"Traceback" not in other and b"internal error" not in other
    assert summary(notices(logs)) == expected  # every line of notice.log is a whole notice: nothing else in it
    if closed == "stdout":
        assert other.startswith(b"icmpsensor: read "), other.decode()


def test_a_closed_stderr_keeps_the_exit_code_of_bad_input(tmp_path: Path) -> None:
    result = closed_stream_sensor("stderr", "-r", tmp_path / "missing.pcap", "--log-dir", out_dir(tmp_path))
    assert result.returncode == 66


def test_check_config_with_stdout_closed_exits_0() -> None:
    result = closed_stream_sensor("stdout", "-c", REPO / "etc" / "icmpsensor.yaml", "--check-config")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""


@pytest.mark.skipif(os.geteuid() != 0, reason="root: /proc passes the log directory's access check only for root")
def test_the_summary_does_not_call_notices_written_that_were_not(tmp_path: Path, example: Example) -> None:
    """/proc: writable for root by its mode, yet no file can be made in it."""
    capture, expected = example
    result = sensor("-r", capture, "--log-dir", "/proc")
    assert result.returncode == 73
    (summary_line,) = [line for line in only_lines(result.stderr) if line.startswith("icmpsensor: read ")]
    told = len(expected)
    assert f"{told} notice(s), 0 written to /proc/notice.log and {told} not (see the errors above)" in summary_line


# -- names with control characters -------------------------------------------------------------------------


def only_lines(stderr: bytes) -> list[str]:
    return stderr.decode().split("\n")[:-1]


@pytest.mark.parametrize("name", ["no\nsuch.pcap", "esc\x1b[31mred.pcap", "tab\there\r.pcap"])
def test_a_capture_name_with_control_characters_is_named_on_one_line(tmp_path: Path, name: str) -> None:
    result = sensor("-r", tmp_path / name, "--log-dir", out_dir(tmp_path))
    assert result.returncode == 66
    (line,) = only_lines(result.stderr)
    assert line.startswith("icmpsensor: error: capture file ") and repr(name)[1:-1] in line, line


def test_a_log_directory_name_with_a_newline_is_named_on_one_line(tmp_path: Path, example: Example) -> None:
    capture, _ = example
    result = sensor("-r", capture, "--log-dir", tmp_path / "a\nb")
    assert result.returncode == 73
    (line,) = only_lines(result.stderr)
    assert "a\\nb" in line, line


@pytest.mark.parametrize("name", ['"a\\nb"', '"\\e[2J"', "x" * 256, "é" * 128])
def test_a_file_name_no_file_system_takes_is_refused_on_one_line(tmp_path: Path, example: Example, name: str) -> None:
    capture, _ = example
    config = tmp_path / "c.yaml"
    config.write_text(f"output:\n  evidence:\n    directory: {name}\n")
    result = sensor("-r", capture, "-c", config, "--log-dir", out_dir(tmp_path))
    assert result.returncode == 78
    (line,) = only_lines(result.stderr)
    assert f"{config}:3: output.evidence.directory: must " in line, line


# -- FIFOs, pipes and standard input ---------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_capture_from_a_fifo_is_read(tmp_path: Path, example: Example) -> None:
    capture, expected = example
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(capture.read_bytes()), daemon=True)
    writer.start()
    logs = out_dir(tmp_path)
    result = sensor("-r", fifo, "--log-dir", logs, timeout=30)
    writer.join(5)
    assert result.returncode == 0, result.stderr.decode()
    assert summary(notices(logs)) == expected


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_capture_on_standard_input(tmp_path: Path, example: Example, workers: str) -> None:
    capture, expected = example
    logs = out_dir(tmp_path)
    result = sensor("-r", "-", "--log-dir", logs, "--workers", workers, stdin=capture.read_bytes())
    assert result.returncode == 0, result.stderr.decode()
    assert summary(notices(logs)) == expected
    assert result.stderr.decode().count("read 156 packets") == 1


def test_a_broken_capture_on_standard_input_gives_what_came_before(tmp_path: Path, example: Example) -> None:
    capture, expected = example
    logs = out_dir(tmp_path)
    data = capture.read_bytes() + struct.pack("<IIII", 5, 0, 100, 100) + b"x" * 10
    result = sensor("-r", "-", "--log-dir", logs, stdin=data)
    assert result.returncode == 66
    one_error_line(result.stderr, "standard input")
    assert summary(notices(logs)) == expected


def test_a_config_through_a_pipe_is_read(tmp_path: Path) -> None:
    result = subprocess.run(["bash", "-c", f"{sys.executable} -m icmpsensor --check-config "
                             "-c <(printf 'detection:\\n  idle_timeout: 60\\n')"], capture_output=True, cwd=REPO,
                            timeout=60)
    assert result.returncode == 0, result.stderr.decode()


@pytest.mark.parametrize("kind", ["directory", "socket", "device"])
def test_other_file_types_as_a_capture_give_one_clear_error(tmp_path: Path, kind: str) -> None:
    if kind == "directory":
        path = tmp_path / "dir"
        path.mkdir()
    elif kind == "socket":
        import socket

        path = tmp_path / "sock"
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
    else:
        path = Path("/dev/null")
    result = sensor("-r", path, "--log-dir", out_dir(tmp_path), timeout=30)
    assert result.returncode == 66
    one_error_line(result.stderr, str(path))
    assert stat.S_IFMT(os.stat(path).st_mode)  # still there, untouched


# -- counters with workers ------------------------------------------------------------------------------------


def test_frames_cut_short_are_counted_the_same_with_any_number_of_workers(tmp_path: Path) -> None:
    path = tmp_path / "cut.pcap"
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, (ts, frame) in enumerate(example_frames()[:100]):
            cut = frame[: 20 + i % 30]  # 20..49 captured bytes of a longer frame
            out.write(struct.pack("<IIII", int(ts), 0, len(cut), len(frame)) + cut)
    lines = []
    for workers in ("1", "2", "3"):
        log_dir = out_dir(tmp_path, f"w{workers}")
        result = sensor("-r", path, "--log-dir", log_dir, "--workers", workers)
        assert result.returncode == 0, result.stderr.decode()
        lines.append(result.stderr.decode().replace(str(log_dir), "W"))
    assert "read 100 packets" in lines[0]
    assert lines[0] == lines[1] == lines[2]


def test_payloads_with_points_where_digits_were_are_read_not_an_internal_error(tmp_path: Path) -> None:
    # An unknown pinger's two requests differing in one byte of text: "x..y" then "x.5y" (the decimal reading of
    # the capacity model once took ".." for a number and ended the sensor with exit 1)
    payloads = (b"probe x..y padding", b"probe x.5y padding", b"probe x..y padding", b"probe x.5y padding")
    frames = [(1_700_000_000.0 + i, craft.ether(craft.icmp4("10.0.0.1", "10.0.0.2", 8, ident=7, seq=i + 1,
                                                            payload=payload)))
              for i, payload in enumerate(payloads)]
    path = write_pcap(tmp_path / "points.pcap", frames)
    result = sensor("-r", path, "--log-dir", out_dir(tmp_path))
    assert result.returncode == 0, result.stderr.decode()
    assert "read 4 packets" in result.stderr.decode()


# -- last, to give them the module's time: the FIFO runs, started with the module (fifo_waits) -----------------


@pytest.mark.timeout(60)
def test_a_config_fifo_without_a_writer_is_an_error_not_a_hang(fifo_waits: dict[str, tuple[Path, Started]]) -> None:
    fifo, started = fifo_waits["test_a_config_fifo_without_a_writer_is_an_error_not_a_hang"]
    code, stderr, took = started.result(timeout=40)  # started with the module: the sensor waits 10 s for a writer
    assert code == 66 and took < 30
    one_error_line(stderr, str(fifo))


def test_a_capture_fifo_without_a_writer_is_an_error_not_a_hang(fifo_waits: dict[str, tuple[Path, Started]]) -> None:
    fifo, started = fifo_waits["test_a_capture_fifo_without_a_writer_is_an_error_not_a_hang"]
    code, stderr, took = started.result(timeout=40)
    assert code == 66 and took < 30
    one_error_line(stderr, f"capture file {fifo}: nothing written within 10 s")


def test_a_capture_fifo_without_a_writer_after_a_file_is_an_error_not_a_hang(
        fifo_waits: dict[str, tuple[Path, Started]]) -> None:
    """Every input is opened before any is read: the FIFO's wait is over before the file is replayed."""
    fifo, started = fifo_waits["test_a_capture_fifo_without_a_writer_after_a_file_is_an_error_not_a_hang"]
    code, stderr, took = started.result(timeout=40)
    assert code == 66 and took < 30
    one_error_line(stderr, f"capture file {fifo}: nothing written within 10 s")


# -- fragments that never become a datagram ---------------------------------------------------------------------


def unfinished_fragment_exfil() -> list[tuple[float, bytes]]:
    """The red team's R7 (192.0.2.7 -> 198.51.100.7: echo requests whose first fragment alone is sent, 1,472 bytes
    of data each) and R6 (192.0.2.6 -> 198.51.100.7: a harmless first fragment, an overlapping rewrite of bytes
    24 on carrying data, the last fragment), 1 per s for 60 s; a receiver reading the fragments gets the data."""
    rng = random.Random(67)
    frames: list[tuple[float, bytes]] = []
    for i in range(60):
        data = rng.randbytes(2400)
        t = 1_700_000_000.0 + i
        whole = craft.icmp4("192.0.2.7", "198.51.100.7", 8, 0, 6062, i + 1, data, ip_id=40000 + i)
        frames.append((t, craft.ether(craft.fragment4(whole, 1480)[0])))
        real = craft.icmp4("192.0.2.6", "198.51.100.7", 8, 0, 6061, i + 1, data, ip_id=30000 + i)
        decoy = real[:44] + bytes(k & 0xFF for k in range(44, len(real)))
        first, last = craft.fragment4(decoy, 1480)
        rewrite = craft.ipv4("192.0.2.6", "198.51.100.7", 1, real[44:1500], ip_id=30000 + i, flags_offset=0x2003)
        frames += [(t + 0.3, craft.ether(first)), (t + 0.3001, craft.ether(rewrite)), (t + 0.3002, craft.ether(last))]
    return frames


def big_benign_pings_losing_fragments() -> list[tuple[float, bytes]]:
    """An iputils ping -s 4000 and a Windows ping -l 3000, 1 per s for 120 s, their requests fragmented; every
    third request loses a fragment (the middle one, or the last), and gets no reply."""
    frames: list[tuple[float, bytes]] = []
    for i in range(120):
        t = 1_700_000_000.0 + i
        for src, ident, payload in (("10.0.0.22", 0x3B1F, iputils_payload(4000, t)),
                                    ("10.0.0.21", 1, windows_payload(3000))):
            request = craft.fragment4(craft.icmp4(src, "1.1.1.1", 8, 0, ident, i + 1, payload, ip_id=i + 1), 1480)
            if i % 3 == 0:
                del request[1 if i % 2 else -1]
                frames += [(t, craft.ether(f)) for f in request]
                continue
            reply = craft.fragment4(craft.icmp4("1.1.1.1", src, 0, 0, ident, i + 1, payload, ip_id=i + 7), 1480)
            frames += [(t, craft.ether(f)) for f in request] + [(t + 0.01, craft.ether(f)) for f in reply]
    return frames


FRAGMENT_RUNS = [("1", True), ("2", False)]  # (workers, evidence): decode_frames and decode_batch


def replayed(tmp_path: Path, frames: list[tuple[float, bytes]], workers: str, evidence: bool,
             config: str = "") -> tuple[list[dict[str, object]], Path]:
    """The notices of a replay of `frames` (written with a snap length of 65,535: frames of 1,514 bytes), with
    `workers`, evidence on or off and `config` besides; and the log directory."""
    capture = tmp_path / "capture.pcap"
    craft.write_pcap(capture, frames)
    config_file = tmp_path / "c.yaml"
    config_file.write_text(f"{config}output:\n  evidence:\n    enabled: {str(evidence).lower()}\n")
    logs = out_dir(tmp_path)
    result = sensor("-r", capture, "-c", config_file, "--log-dir", logs, "--workers", workers)
    assert result.returncode == 0, result.stderr.decode()
    return notices(logs), logs


@pytest.mark.parametrize(("workers", "evidence"), FRAGMENT_RUNS)
def test_data_in_fragments_that_never_become_a_datagram_raises_data_exfil(tmp_path: Path, workers: str,
                                                                          evidence: bool) -> None:
    told, _ = replayed(tmp_path, unfinished_fragment_exfil(), workers, evidence)
    raised = {(n["src"], n["note"]) for n in told}
    assert {("192.0.2.7", "ICMP::ICMP_DataExfil"), ("192.0.2.6", "ICMP::ICMP_DataExfil")} <= raised, raised


@pytest.mark.parametrize(("workers", "evidence"), FRAGMENT_RUNS)
def test_big_benign_pings_losing_fragments_raise_nothing(tmp_path: Path, workers: str, evidence: bool) -> None:
    assert replayed(tmp_path, big_benign_pings_losing_fragments(), workers, evidence)[0] == []


def cut4(src: str, dst: str, message: bytes, ip_id: int, cuts: list[int]) -> list[bytes]:
    """An IPv4 datagram carrying `message` (an ICMP message) cut at the IP payload offsets `cuts` (multiples of
    8): its fragments, in order."""
    ends = [*cuts, len(message)]
    starts = [0, *cuts]
    return [craft.ipv4(src, dst, 1, message[a:b], ip_id=ip_id, flags_offset=(0x2000 if b < len(message) else 0)
                       | a // 8) for a, b in zip(starts, ends, strict=True)]


def echo_message(ident: int, seq: int, payload: bytes, icmp_type: int = 8) -> bytes:
    return craft.icmp4("192.0.2.1", "192.0.2.2", icmp_type, 0, ident, seq, payload)[20:]


EXFIL_FROM, EXFIL_TO = "192.0.2.8", "198.51.100.7"


def evicting_fragment_flood(flood: int) -> list[tuple[float, bytes]]:
    """Red team 2026-12-06 F1: each 6,000-byte exfiltration request sent with a first fragment of its 8-byte ICMP
    header alone, then `flood` spoofed fragments that never complete (each a datagram of its own, offset 1480, no
    MF), then the rest of the request: its datagram is evicted before its data comes, and the data fragments start
    a datagram without offset 0."""
    rng = random.Random(81)
    frames: list[tuple[float, bytes]] = []
    t = 1_700_000_000.0
    for i in range(4):
        first, *rest = cut4(EXFIL_FROM, EXFIL_TO, echo_message(0x5151, i + 1, rng.randbytes(6000)), 900 + i,
                            [8, *range(1488, 6008, 1480)])
        frames.append((t, craft.ether(first)))
        for k in range(flood):
            spoofed = f"100.{64 + k // 65536}.{k // 256 % 256}.{k % 256}"
            t += 1e-4
            frames.append((t, craft.ether(craft.ipv4(spoofed, EXFIL_TO, 1, rng.randbytes(16), ip_id=k,
                                                      flags_offset=1480 // 8))))
        frames += [(t + 1e-5 * j, craft.ether(f)) for j, f in enumerate(rest)]
        t += 1.0
    return frames


def late_and_holed_fragment_exfil() -> list[tuple[float, bytes]]:
    """Requests whose data a receiver reading fragments gets, but no reassembler: the first fragment (the 8-byte
    header), then the rest 31 s later, past decode.fragment_timeout; and the header, then the data after a hole
    (one fragment never sent)."""
    rng = random.Random(82)
    frames: list[tuple[float, bytes]] = []
    for i in range(6):
        t = 1_700_000_000.0 + i * 40
        first, *rest = cut4(EXFIL_FROM, EXFIL_TO, echo_message(0x5252, i + 1, rng.randbytes(3000)), 700 + i,
                            [8, 1488])
        frames += [(t, craft.ether(first))] + [(t + 31 + 1e-3 * j, craft.ether(f)) for j, f in enumerate(rest)]
        holed = cut4("192.0.2.9", EXFIL_TO, echo_message(0x5353, i + 1, rng.randbytes(3000)), 800 + i,
                     [8, 1488, 2968])
        frames += [(t + 1 + 1e-3 * j, craft.ether(f)) for j, f in enumerate(holed) if j != 1]
    return sorted(frames)


@pytest.mark.parametrize(("workers", "evidence"), FRAGMENT_RUNS)
def test_a_fragment_flood_that_evicts_an_exfiltrations_datagrams_does_not_hide_it(tmp_path: Path, workers: str,
                                                                                 evidence: bool) -> None:
    """The bytes of fragments whose datagram never had offset 0 (evicted, timed out, unfinished) are judged on
    their own: 24 KB in fragments that start datagrams without their first raised nothing."""
    told, _ = replayed(tmp_path, evicting_fragment_flood(80), workers, evidence,
                       "decode:\n  max_fragmented_datagrams: 64\n")
    # its own notice, or (the spoofed fragments' notices are a storm towards its destination) in the storm's
    # aggregate among the largest
    assert any((n["src"], n["dst"]) == (EXFIL_FROM, EXFIL_TO)
               or (n["dst"] == EXFIL_TO and f"largest: {EXFIL_FROM} (" in str(n["msg"])) for n in told), told


@pytest.mark.parametrize(("workers", "evidence"), FRAGMENT_RUNS)
def test_data_sent_past_the_fragment_timeout_or_after_a_hole_is_reported(tmp_path: Path, workers: str,
                                                                          evidence: bool) -> None:
    told, _ = replayed(tmp_path, late_and_holed_fragment_exfil(), workers, evidence)
    raised = {(n["src"], n["dst"]) for n in told}
    assert {(EXFIL_FROM, EXFIL_TO), ("192.0.2.9", EXFIL_TO)} <= raised, raised


def benign_pings_losing_first_fragments() -> list[tuple[float, bytes]]:
    """A lossy mirror port: big pings of iputils (-s 4000 and -s 5000), Windows (-l 3000), fping (zeros, -b 3000),
    macOS (-s 3500), BusyBox (-s 3000), traceroute -I's fill, pro-bing (0x01 fill), over IPv4 (cut at 1480 bytes)
    and IPv6 (1232); every other request loses its first fragment, some their first two, and their replies lose
    theirs too. (A -p pattern's fill is the sender's choice: charged, detection.md "Headless fragments".)"""
    from testkit.benign_corpus import (
        bsd_payload,
        busybox_payload,
        fping_payload,
        pro_bing_payload,
        random_uuid4,
        traceroute_payload,
    )

    frames: list[tuple[float, bytes]] = []
    tracker = random_uuid4(random.Random(3))  # pro-bing's, per run
    for i in range(40):
        t = 1_700_000_000.0 + i
        payloads = [iputils_payload(4000, t), iputils_payload(5000, t), windows_payload(3000), fping_payload(3000),
                    bsd_payload(3500, t), busybox_payload(3000, 123_456_789 + i * 1_000_000),
                    traceroute_payload(2000), pro_bing_payload(3000, t, tracker)]
        for k, payload in enumerate(payloads):
            src, dst = f"10.0.{k}.2", "192.0.2.200"
            for reply in (False, True):
                a, b = (dst, src) if reply else (src, dst)
                if k % 2:
                    whole = craft.icmp6(f"2001:db8:{k}::2" if not reply else "2001:db8:ff::1",
                                        "2001:db8:ff::1" if not reply else f"2001:db8:{k}::2",
                                        129 if reply else 128, 0, 0x700 + k, i + 1, payload)
                    frags = craft.fragment6(whole, 1232, frag_id=i * 100 + k * 2 + reply)
                else:
                    whole = craft.icmp4(a, b, 0 if reply else 8, 0, 0x700 + k, i + 1, payload,
                                        ip_id=i * 100 + k * 2 + reply)
                    frags = craft.fragment4(whole, 1480)
                lost = 0 if i % 2 else (2 if i % 4 == 0 and len(frags) > 2 else 1)
                frames += [(t + reply * 0.01 + j * 1e-4, craft.ether(f)) for j, f in enumerate(frags) if j >= lost]
    return frames


@pytest.mark.parametrize(("workers", "evidence"), FRAGMENT_RUNS)
def test_big_benign_pings_losing_their_first_fragments_raise_nothing(tmp_path: Path, workers: str,
                                                                     evidence: bool) -> None:
    assert replayed(tmp_path, benign_pings_losing_first_fragments(), workers, evidence)[0] == []


def tunnelled_in_outer_fragments() -> list[tuple[float, bytes]]:
    """Red team 2026-12-06 (case 23 a): `ip tunnel add t0 mode ipip remote COLLECTOR nopmtudisc` and a 1,400-byte
    echo payload: each request leaves as an outer IPv4 datagram in two fragments, which the collector reassembles
    and decapsulates; the same through GRE, and IP-in-IPv6 in IPv6 fragments. 2 a second for a minute each."""
    rng = random.Random(23)
    frames: list[tuple[float, bytes]] = []
    for i in range(120):
        t = 1_700_000_000.0 + i * 0.5
        inner = craft.icmp4("10.20.30.40", "203.0.113.50", 8, 0, 0x2323, i, rng.randbytes(1400))
        outer = craft.ipv4("192.0.2.40", "198.51.100.50", 4, inner, ip_id=i)
        frames += [(t + k * 1e-4, craft.ether(f)) for k, f in enumerate(craft.fragment4(outer, 1400))]
        inner = craft.icmp4("10.20.30.41", "203.0.113.51", 8, 0, 0x2424, i, rng.randbytes(1400))
        outer = craft.ipv4("192.0.2.41", "198.51.100.51", 47, craft.gre(inner, key=7), ip_id=1000 + i)
        frames += [(t + 0.2 + k * 1e-4, craft.ether(f)) for k, f in enumerate(craft.fragment4(outer, 1400))]
        inner = craft.icmp4("10.20.30.42", "203.0.113.52", 8, 0, 0x2525, i, rng.randbytes(1400))
        outer = craft.ipip("2001:db8:40::1", "2001:db8:50::1", inner, ipv6_outer=True)
        frames += [(t + 0.3 + k * 1e-4, craft.ether(f)) for k, f in enumerate(craft.fragment6(outer, 1232, 3000 + i))]
    return frames


@pytest.mark.parametrize(("workers", "evidence"), FRAGMENT_RUNS)
def test_an_exfiltration_in_a_tunnel_whose_outer_packets_are_fragments_is_reported(tmp_path: Path, workers: str,
                                                                                   evidence: bool) -> None:
    """The collector reassembles an IP-in-IP or GRE packet's outer fragments and reads the ICMP inside: 168 KB in a
    minute went unseen (encap_fragment). Outer IPv4 fragments of IP-in-IP and GRE are reassembled, and the
    tunnel opened."""
    told, logs = replayed(tmp_path, tunnelled_in_outer_fragments(), workers, evidence)
    raised = {(n["src"], n["dst"], n["note"]) for n in told}
    assert {("10.20.30.40", "203.0.113.50", "ICMP::ICMP_DataExfil"),
            ("10.20.30.41", "203.0.113.51", "ICMP::ICMP_DataExfil"),
            ("10.20.30.42", "203.0.113.52", "ICMP::ICMP_DataExfil")} <= raised, raised
    if evidence:
        pcap = next((logs / "evidence").glob("*.pcap"))
        assert pcap.stat().st_size > 2 * 1400  # the outer fragments as captured


@pytest.mark.parametrize("workers", ["1", "2"])
def test_an_exfiltration_behind_a_long_chain_of_extension_headers_is_reported(tmp_path: Path, workers: str) -> None:
    """A receiver walks an IPv6 header chain whole: 17 empty destination options headers before each echo request
    reached the collector, while the sensor gave up after 16 (bad_ipv6_ext_header) and saw nothing of 30 KB sent."""
    rng = random.Random(17)
    src, dst = "2001:db8:1::10", "2001:db8:2::99"
    frames = [(1_700_000_000.0 + i * 0.5,
               craft.ether(craft.icmp6(src, dst, craft.ECHO_REQUEST6, 0, 0x4242, i, rng.randbytes(1000),
                                       ext_headers=[craft.dest_opts()] * (17 + i % 40))))
              for i in range(30)]
    capture = write_pcap(tmp_path / "chain.pcap", frames)
    (tmp_path / "log").mkdir()
    done = sensor("-r", capture, "--log-dir", tmp_path / "log", "--workers", workers)
    assert done.returncode == 0, done.stderr
    exfil = [n for n in notices(tmp_path / "log") if n["note"] == "ICMP::ICMP_DataExfil"]
    assert [(n["src"], n["dst"]) for n in exfil] == [(src, dst)]


def _srh_pings(segments: list[list[str]], src: str = "2001:db8:1::10", dst: str = "2001:db8:2::99") \
        -> list[tuple[float, bytes]]:
    """iputils-like echo requests, each through a segment routing header (RFC 8754; at its last segment, so the
    checksum's destination is the packet's) holding `segments[i]`, answered."""
    frames = []
    for i, segment_list in enumerate(segments):
        t = 1_700_000_000.0 + i
        header = [craft.routing(4, 0, [dst, *segment_list])]
        payload = iputils_payload(56, t)
        frames.append((t, craft.ether(craft.icmp6(src, dst, craft.ECHO_REQUEST6, 0, 0x77, i, payload,
                                                  ext_headers=header))))
        frames.append((t + 0.001, craft.ether(craft.icmp6(dst, src, 129, 0, 0x77, i, payload))))
    return frames


def test_data_in_a_segment_routing_header_is_charged_as_options_are(tmp_path: Path) -> None:
    """The segments of a routing header are the sender's to set, as destination options are: 16 bytes a request in
    the segment list of otherwise benign pings carried 58 KB in 10 minutes without a notice (destination options
    carrying the same were reported at the first packet). A path that stays the same costs its bytes once."""
    rng = random.Random(5)
    hidden = [[str(ipaddress.IPv6Address(rng.randbytes(16)))] for _ in range(40)]
    (tmp_path / "hidden").mkdir()
    done = sensor("-r", write_pcap(tmp_path / "hidden.pcap", _srh_pings(hidden)), "--log-dir", tmp_path / "hidden")
    assert done.returncode == 0, done.stderr
    assert ("ICMP::ICMP_DataExfil", "2001:db8:1::10", "2001:db8:2::99") in {
        (n["note"], n["src"], n["dst"]) for n in notices(tmp_path / "hidden")}
    (tmp_path / "path").mkdir()
    same = [["2001:db8:ffff::1", "2001:db8:ffff::2"]] * 40
    done = sensor("-r", write_pcap(tmp_path / "path.pcap", _srh_pings(same)), "--log-dir", tmp_path / "path")
    assert done.returncode == 0, done.stderr
    assert notices(tmp_path / "path") == []


@pytest.mark.parametrize("v6", [False, True])
def test_data_in_the_identifier_and_sequence_of_unsolicited_replies_is_charged(tmp_path: Path, v6: bool) -> None:
    """An echo reply that answers no request has an identifier and a sequence number of its sender's choosing, as
    a request has: 4 bytes a reply of otherwise benign iputils replies carried 24-45 KB in 10 minutes unreported
    (the same in requests was)."""
    rng = random.Random(11)
    src, dst = ("2001:db8:1::10", "2001:db8:2::99") if v6 else ("10.1.2.3", "203.0.113.9")
    make = craft.icmp6 if v6 else craft.icmp4
    reply = 129 if v6 else 0
    frames = []
    for i in range(600):
        t = 1_700_000_000.0 + i * 0.5
        ident, seq = struct.unpack("!HH", rng.randbytes(4))
        frames.append((t, craft.ether(make(src, dst, reply, 0, ident, seq, iputils_payload(56, t)))))
    (tmp_path / "log").mkdir()
    done = sensor("-r", write_pcap(tmp_path / "replies.pcap", frames), "--log-dir", tmp_path / "log")
    assert done.returncode == 0, done.stderr
    assert ("ICMP::ICMP_DataExfil", src, dst) in {(n["note"], n["src"], n["dst"]) for n in notices(tmp_path / "log")}
