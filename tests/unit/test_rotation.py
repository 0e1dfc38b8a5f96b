"""Self-rotating log files: Zeek names, atomic replacement, tail -F, keep-N, gzip, reopen, full disks."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from icmpsensor.config.schema import RotationConfig
from icmpsensor.errors import OutputError
from icmpsensor.output.logfile import Header, NoticeWriteError, RotatingLog, compress_file
from icmpsensor.output.noticelog import NoticeLog
from icmpsensor.output.statslog import StatsLog
from testkit.paths import REPO
from testkit.synthetic import sample_notice

LINE_SIZE = 100
T0 = 1_700_000_000.0


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def stamp(t: float) -> str:
    return time.strftime("%Y-%m-%d-%H-%M-%S", time.localtime(t))


def line(seq: int) -> bytes:
    """A JSON line of exactly LINE_SIZE bytes carrying `seq`."""
    text = json.dumps({"seq": seq, "pad": ""})
    return (text[:-2] + "x" * (LINE_SIZE - len(text) - 1) + text[-2:] + "\n").encode()


def seqs(data: bytes) -> list[int]:
    """The sequence numbers of whole JSON lines; fails on a partial or corrupt line."""
    assert not data or data.endswith(b"\n")
    return [json.loads(text)["seq"] for text in data.decode().splitlines()]


def rotated(log_dir: Path, stem: str = "notice") -> list[str]:
    return sorted(p.name for p in log_dir.iterdir() if p.name.startswith(stem + ".2"))


def all_lines(log_dir: Path) -> list[int]:
    """Every line of the rotated files (oldest first; a -N suffix sorts after its stamp) and then notice.log."""
    def order(name: str) -> tuple[str, int]:
        base = name.removesuffix(".gz").removesuffix(".log").removeprefix("notice.")
        return base[:19], int(base[20:] or 0)  # STAMP[-N]

    result: list[int] = []
    for name in sorted(rotated(log_dir), key=order):
        path = log_dir / name
        result += seqs(gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes())
    return result + seqs((log_dir / "notice.log").read_bytes())


def rotation(max_bytes: int = 0, interval: float = 0.0, gzip: bool = False, keep: int = 0) -> RotationConfig:
    return RotationConfig(max_bytes=max_bytes, interval=interval, gzip=gzip, keep=keep)


# --------------------------------------------------------------------------- names and triggers


def test_size_rotation_links_to_zeek_names_with_the_open_time(tmp_path: Path) -> None:
    clock = FakeClock()
    log = RotatingLog(str(tmp_path), "notice.log", rotation(max_bytes=3 * LINE_SIZE), clock=clock)
    for i in range(7):
        log.write_line(line(i))
        clock.now += 10
    log.close()
    # opened at T0; rotated before line 3 (written at T0+30) and before line 6 (at T0+60)
    assert rotated(tmp_path) == [f"notice.{stamp(T0)}.log", f"notice.{stamp(T0 + 30)}.log"]
    assert seqs((tmp_path / f"notice.{stamp(T0)}.log").read_bytes()) == [0, 1, 2]
    assert seqs((tmp_path / f"notice.{stamp(T0 + 30)}.log").read_bytes()) == [3, 4, 5]
    assert seqs((tmp_path / "notice.log").read_bytes()) == [6]
    assert stat.S_IMODE((tmp_path / "notice.log").stat().st_mode) == 0o640


def test_interval_rotation_waits_for_the_next_line_and_leaves_no_empty_file(tmp_path: Path) -> None:
    # JSON lines: a 0-byte notice.log is no valid log (parsezeeklogs refuses it): the file is created by its
    # first line, and a rotation that fell due while idle happens when the next line comes and starts the new file.
    clock = FakeClock()
    log = RotatingLog(str(tmp_path), "notice.log", rotation(interval=60), clock=clock)
    assert not (tmp_path / "notice.log").exists()
    log.write_line(line(0))
    clock.now += 59
    assert log.maybe_rotate() is None
    clock.now += 1
    log.write_line(line(1))  # due: rotates first, the line starts the new file
    assert rotated(tmp_path) == [f"notice.{stamp(T0)}.log"]
    assert seqs((tmp_path / "notice.log").read_bytes()) == [1]
    clock.now += 120
    assert log.maybe_rotate() is None  # idle: nothing rotated, nothing empty left
    assert seqs((tmp_path / "notice.log").read_bytes()) == [1]
    log.write_line(line(2))
    assert rotated(tmp_path) == [f"notice.{stamp(T0)}.log", f"notice.{stamp(T0 + 60)}.log"]
    log.close()
    assert all_lines(tmp_path) == [0, 1, 2]
    assert all(p.stat().st_size for p in tmp_path.iterdir())


def test_a_log_with_a_header_rotates_while_idle_and_is_never_without_it(tmp_path: Path) -> None:
    clock = FakeClock()
    header = Header(lambda t: f"#open {t:.0f}\n".encode(), lambda t: f"#close {t:.0f}\n".encode())
    log = RotatingLog(str(tmp_path), "notice.log", rotation(interval=60), clock=clock, header=header)
    assert (tmp_path / "notice.log").read_text() == f"#open {T0:.0f}\n"
    clock.now += 60
    assert log.maybe_rotate() is None  # only the header: empty, the interval starts again
    log.write_line(line(0))
    clock.now += 60
    first = log.maybe_rotate()
    assert first == str(tmp_path / f"notice.{stamp(T0 + 60)}.log")
    assert Path(first).read_text().splitlines()[::2] == [f"#open {T0:.0f}", f"#close {T0 + 120:.0f}"]
    assert (tmp_path / "notice.log").read_text() == f"#open {T0 + 120:.0f}\n"
    log.write_line(line(1))
    log.close()
    assert (tmp_path / "notice.log").read_text().splitlines()[-1] == f"#close {T0 + 120:.0f}"
    # a restart finds a non-empty log: it is rotated away (named by its last change), a fresh one has the header
    os.utime(tmp_path / "notice.log", (T0 + 500, T0 + 500))
    clock.now += 1000
    log = RotatingLog(str(tmp_path), "notice.log", rotation(interval=60), clock=clock, header=header)
    assert (tmp_path / "notice.log").read_text() == f"#open {clock.now:.0f}\n"
    assert (tmp_path / f"notice.{stamp(T0 + 500)}.log").read_text().count("#open") == 1
    log.close()
    data = [json.loads(t)["seq"] for p in tmp_path.iterdir() for t in p.read_text().splitlines()
            if not t.startswith("#")]
    assert sorted(data) == [0, 1]


def test_a_taken_name_gets_a_suffix_before_dot_log(tmp_path: Path) -> None:
    log = RotatingLog(str(tmp_path), "notice.log", rotation(), clock=FakeClock())
    (tmp_path / f"notice.{stamp(T0)}.log.gz").write_bytes(b"")  # a compressed one counts as taken
    names = []
    for i in range(3):
        log.write_line(line(i))
        names.append(os.path.basename(log.rotate()))
    log.close()
    assert names == [f"notice.{stamp(T0)}-{n}.log" for n in (1, 2, 3)]
    assert all_lines(tmp_path) == [0, 1, 2]


def test_the_path_never_disappears_while_rotating_fast(tmp_path: Path) -> None:
    log = RotatingLog(str(tmp_path), "notice.log", rotation(max_bytes=2 * LINE_SIZE))
    log.write_line(line(0))  # from its first line on
    done = threading.Event()
    checks = misses = 0

    def watch() -> None:
        nonlocal checks, misses
        while not done.is_set():
            try:
                os.close(os.open(log.path, os.O_RDONLY))
            except FileNotFoundError:
                misses += 1
            checks += 1

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for i in range(1, 600):
            log.write_line(line(i))
    finally:
        done.set()
        watcher.join()
        log.close()
    assert len(rotated(tmp_path)) == 299
    assert misses == 0 and checks > 0
    assert all_lines(tmp_path) == list(range(600))


def test_keep_deletes_the_oldest_rotated_files(tmp_path: Path) -> None:
    (tmp_path / f"notice.{stamp(T0 - 7200)}.log.gz").write_bytes(b"")  # from an earlier run
    (tmp_path / "notice.old.log").write_bytes(b"")  # not a rotated name: never touched
    clock = FakeClock()
    log = RotatingLog(str(tmp_path), "notice.log", rotation(keep=3), clock=clock)
    # a file is named after the time it was opened, i.e. the previous rotation: files 3 and 4
    # share a stamp, and the -1 suffix orders them
    for i, at in enumerate((1, 2, 3, 3, 4, 5)):
        log.write_line(line(i))
        clock.now = T0 + at
        log.rotate()
    log.close()
    assert rotated(tmp_path) == [f"notice.{stamp(T0 + 3)}-1.log", f"notice.{stamp(T0 + 3)}.log",
                                 f"notice.{stamp(T0 + 4)}.log"]
    assert all_lines(tmp_path) == [3, 4, 5]
    assert (tmp_path / "notice.old.log").exists()


def test_gzip_compresses_rotated_files_in_the_background(tmp_path: Path) -> None:
    clock = FakeClock()
    log = RotatingLog(str(tmp_path), "notice.log", rotation(max_bytes=50 * LINE_SIZE, gzip=True), clock=clock)
    for i in range(170):
        log.write_line(line(i))
        clock.now += 1
    assert log.wait_for_gzip(10)
    log.close()
    names = rotated(tmp_path)
    assert names == [f"notice.{stamp(T0 + t)}.log.gz" for t in (0, 50, 100)]
    for name, first in zip(names, (0, 50, 100), strict=True):
        assert seqs(gzip.decompress((tmp_path / name).read_bytes())) == list(range(first, first + 50))
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left
    assert all_lines(tmp_path) == list(range(170))


def test_a_restart_compresses_what_the_previous_run_left_plain(tmp_path: Path) -> None:
    log = RotatingLog(str(tmp_path), "notice.log", rotation(), clock=FakeClock())
    log.write_line(line(0))
    log.rotate()
    log.close()
    log = RotatingLog(str(tmp_path), "notice.log", rotation(gzip=True))
    assert log.wait_for_gzip(10)
    log.close()
    assert rotated(tmp_path) == [f"notice.{stamp(T0)}.log.gz"]


def test_stats_log_writes_json_lines_and_rotates_as_stats(tmp_path: Path) -> None:
    stats = StatsLog(str(tmp_path), "stats.log", rotation(interval=60))
    stats.write({"ts": 1.5, "flows": 3})
    stats.log.clock = FakeClock(time.time() + 61)
    stats.write({"ts": 2.5, "flows": 4})
    stats.close()
    [name] = rotated(tmp_path, "stats")
    assert name.startswith("stats.") and name.endswith(".log")
    assert json.loads((tmp_path / name).read_text()) == {"ts": 1.5, "flows": 3}
    assert json.loads((tmp_path / "stats.log").read_text()) == {"ts": 2.5, "flows": 4}


# --------------------------------------------------------------------------- tail -F under load


@contextlib.contextmanager
def tail_follow(path: str, poll: bool) -> Iterator[tuple[list[bytes], threading.Condition, int]]:
    """`tail -n +1 -F path` (inotify, or polling every 10 ms and looking for a new file at the name after two
    polls without new data, not GNU tail's default six); its output lines as they arrive, and its pid."""
    polling = ["---disable-inotify", "-s", "0.01", "--max-unchanged-stats=1"]
    argv = ["tail", "-n", "+1", "-F", *(polling if poll else []), path]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    stdout = proc.stdout
    lines: list[bytes] = []
    cond = threading.Condition()

    def read() -> None:
        for text in stdout:
            with cond:
                lines.append(text)
                cond.notify_all()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield lines, cond, proc.pid
    finally:
        proc.kill()
        proc.wait(5)
        reader.join(5)
        stdout.close()


def inotify_watched_inodes(pid: int) -> set[int]:
    """The inodes that process `pid` watches with inotify (its inotify descriptors' /proc fdinfo)."""
    inodes: set[int] = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:inotify":
                    info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
                    inodes.update(int(ino, 16) for ino in re.findall(r"^inotify wd:\d+ ino:([0-9a-f]+)", info, re.M))
    return inodes


def tail_settled(log: RotatingLog, lines: list[bytes], cond: threading.Condition, pid: int, poll: bool) -> None:
    """Wait until tail follows the log by name: it has printed line 0 (it has the file open), it watches the file
    and its directory (with inotify), and it has printed line 1, written after that. GNU tail sets its watches
    after its first read and then looks at the name once more; a rotation before that look (a fast writer on a
    busy machine) makes it take up the new file and drop the rest of the one it had open. That is tail starting,
    not following: rotations must be seen from here on."""
    with cond:
        assert cond.wait_for(lambda: len(lines) >= 1, 10), "tail printed nothing"
    if not poll:
        want = {os.stat(log.path).st_ino, os.stat(os.path.dirname(log.path)).st_ino}
        deadline = time.monotonic() + 10
        while not want <= inotify_watched_inodes(pid):
            assert time.monotonic() < deadline, "tail set no inotify watch on the log and its directory"
            time.sleep(0.002)
    log.write_line(line(1))
    with cond:
        assert cond.wait_for(lambda: len(lines) >= 2, 10), f"tail stuck at {len(lines)} lines"


@pytest.mark.skipif(shutil.which("tail") is None, reason="needs tail")
@pytest.mark.parametrize(("by_size", "poll"), [(True, False), (False, True)], ids=["size+inotify", "rotate+poll"])
def test_tail_follows_every_rotation_exactly_once(tmp_path: Path, by_size: bool, poll: bool) -> None:
    total, per_file = 50_000, 500
    log = RotatingLog(str(tmp_path), "notice.log", rotation(max_bytes=per_file * LINE_SIZE if by_size else 0))
    log.write_line(line(0))  # a JSON-lines log exists from its first line on
    with tail_follow(log.path, poll) as (lines, cond, pid):
        tail_settled(log, lines, cond, pid, poll)
        for i in range(2, total):
            if not by_size and i and i % per_file == 0:
                log.rotate()
            log.write_line(line(i))
            if i % per_file == 0:
                # Follow-by-name cannot see a file replaced before the reader noticed it exists, so each
                # new file's first line must reach tail; the other 499 follow at full speed and are
                # still unread when the next rotation renames the file away.
                with cond:
                    assert cond.wait_for(lambda i=i: len(lines) > i, 10), f"tail stuck at {len(lines)} lines"
        with cond:
            cond.wait_for(lambda: len(lines) >= total, 30)
        time.sleep(0.2)  # would reveal duplicates printed late
        with cond:
            seen = seqs(b"".join(lines))
    log.close()
    assert len(rotated(tmp_path)) == total // per_file - 1
    assert sorted(seen) == list(range(total)), f"{len(seen)} lines, {len(set(seen))} distinct"
    assert seen == list(range(total))
    assert all_lines(tmp_path) == list(range(total))


# --------------------------------------------------------------------------- SIGHUP reopen


def test_reopen_follows_an_external_rotation(tmp_path: Path) -> None:
    log = NoticeLog(str(tmp_path), "notice.log", "s")
    log.emit(sample_notice(n=1))
    os.rename(tmp_path / "notice.log", tmp_path / "notice.log.1")  # logrotate `create`
    (tmp_path / "notice.log").write_bytes(b"")
    log.emit(sample_notice(n=2))  # before SIGHUP: still the old file
    assert log.reopen() is True
    log.emit(sample_notice(n=3))
    assert log.reopen() is False
    log.close()
    ns = [json.loads(t)["n"] for t in (tmp_path / "notice.log.1").read_text().splitlines()]
    assert ns == [1, 2]
    assert [json.loads(t)["n"] for t in (tmp_path / "notice.log").read_text().splitlines()] == [3]


def test_reopen_recreates_a_deleted_file_and_keeps_the_fd_otherwise(tmp_path: Path) -> None:
    log = RotatingLog(str(tmp_path), "notice.log", None)
    log.write_line(line(6))  # a JSON-lines file exists from its first line on
    fd = log._fd
    assert log.reopen() is False and log._fd == fd
    os.unlink(log.path)
    assert log.reopen() is True
    log.write_line(line(7))
    log.close()
    assert seqs((tmp_path / "notice.log").read_bytes()) == [7]
    assert os.path.exists(tmp_path / "notice.log") and not rotated(tmp_path)


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize("recovery", ["space back", "rotate"])
def test_a_full_disk_holds_notices_and_writes_them_later(tmp_path: Path, recovery: str) -> None:
    # RLIMIT_FSIZE cuts writes short exactly like a full disk; a rotation gives an empty file.
    script = textwrap.dedent(f"""
        import json, os, resource, signal
        from icmpsensor.config.schema import RotationConfig
        from icmpsensor.output.noticelog import NoticeLog
        from icmpsensor.output.logfile import NoticeWriteError
        from testkit.synthetic import sample_notice
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (5000, hard))
        log = NoticeLog({str(tmp_path)!r}, "notice.log", "s", RotationConfig(0, 0.0, False, 0))
        failed = []
        for i in range(15):
            try:
                log.emit(sample_notice(n=i, msg="x" * 100))
            except NoticeWriteError as exc:
                failed.append(i)
                error = exc.strerror
        with open(log.path, "rb") as f:
            during = f.read()
        state = dict(failed=failed, error=error, backlog=log.backlog, lost=log.lost, errors=log.write_errors,
                     whole=during.endswith(b"\\n"), size=len(during))
        try:
            log.flush_backlog()
        except NoticeWriteError:
            state["still_full"] = True
        if {recovery!r} == "rotate":
            log.rotate()
        else:
            resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
        state["flushed"] = log.flush_backlog()
        log.emit(sample_notice(n=15, msg="x" * 100))
        state["after"] = log.backlog
        log.close()
        print(json.dumps(state))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stderr
    state = json.loads(out.stdout)
    failed = state["failed"]
    assert failed and failed == list(range(failed[0], 15))
    assert "notices held in memory for retry" in state["error"]
    assert state["backlog"] == len(failed) and state["lost"] == 0 and state.get("still_full")
    assert state["whole"] and state["size"] <= 5000
    assert state["flushed"] == len(failed) and state["after"] == 0
    files = sorted(tmp_path.iterdir())
    ns: list[int] = []
    for path in [p for p in files if p.name != "notice.log"] + [tmp_path / "notice.log"]:
        data = path.read_bytes()
        assert data.endswith(b"\n")
        ns += [json.loads(t)["n"] for t in data.decode().splitlines()]
    assert ns == list(range(16))  # in order, none lost, none twice
    assert len(files) == (2 if recovery == "rotate" else 1)


@pytest.mark.parametrize("due", ["size", "interval"])
def test_a_rotation_on_a_full_disk_never_leaves_an_empty_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             due: str) -> None:
    """A line that makes a rotation due goes into the fresh file as it is made: where that cannot be written, the
    rotation is undone. (The fresh file was renamed into place empty, then the line failed: a 0-byte notice.log
    beside the rotated one on a full disk, red team 2026-12-08.)"""
    from icmpsensor.output import logfile

    clock = FakeClock()
    log = RotatingLog(str(tmp_path), "notice.log", rotation(max_bytes=2 * LINE_SIZE) if due == "size"
                      else rotation(interval=60), clock=clock)
    log.write_line(line(0))
    log.write_line(line(1))
    clock.now += 61

    def disk_full(_fd: int, _data: bytes) -> None:
        raise NoticeWriteError(28, "No space left on device")

    monkeypatch.setattr(logfile, "append_whole_line", disk_full)
    with pytest.raises(NoticeWriteError):
        log.write_line(line(2))
    assert (tmp_path / "notice.log").read_bytes() == line(0) + line(1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notice.log"]  # the rotation undone
    monkeypatch.undo()
    clock.now += 2  # past the failed rotation's back-off
    log.write_line(line(2))  # space again: rotated, the line alone in the fresh file
    log.close()
    assert (tmp_path / "notice.log").read_bytes() == line(2)
    assert len(list(tmp_path.iterdir())) == 2


def test_backlog_is_bounded_and_counts_what_it_drops(tmp_path: Path) -> None:
    path = tmp_path / "notice.log"
    log = NoticeLog(str(tmp_path), "notice.log", "s", backlog_limit=5)
    log.emit(sample_notice(n=-1))  # the file exists from its first line on
    full = os.open("/dev/full", os.O_WRONLY)
    os.dup2(full, log.log._fd)  # every write to the open file now fails with ENOSPC, as on a full disk
    os.close(full)
    for i in range(8):
        with pytest.raises(NoticeWriteError, match="No space left on device"):
            log.emit(sample_notice(n=i))
    assert (log.backlog, log.lost, log.write_errors) == (5, 3, 8)
    path.rename(tmp_path / "notice.old")  # kept: a new file at the path cannot reuse its inode
    path.write_bytes(b"")
    assert log.reopen() is True
    assert log.flush_backlog() == 5
    log.emit(sample_notice(n=8))
    log.close()
    assert [json.loads(t)["n"] for t in path.read_text().splitlines()] == [3, 4, 5, 6, 7, 8]


def test_a_vanished_log_dir_raises_write_errors_and_loses_no_line(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    clock = FakeClock()
    log = RotatingLog(str(log_dir), "notice.log", rotation(interval=60), clock=clock)
    log.write_line(line(0))
    shutil.rmtree(log_dir)
    with pytest.raises(NoticeWriteError, match=re.escape(f"{log_dir}/notice.log: No such file")):
        log.rotate()
    with pytest.raises(NoticeWriteError, match="cannot reopen"):
        log.reopen()
    clock.now += 60
    with pytest.raises(NoticeWriteError, match="cannot reopen"):
        log.write_line(line(1))  # the open file is deleted: not written into (no one could read it), refused
    assert log.rotate_errors == 1 and log.size == LINE_SIZE
    log_dir.mkdir()
    log.write_line(line(2))  # the path can be opened again: a fresh file
    assert (log_dir / "notice.log").read_bytes() == line(2)
    log.close()


@pytest.mark.parametrize("how", ["unlinked", "replaced by a link", "directory removed"])
def test_a_notice_log_taken_away_while_open_loses_no_notice(tmp_path: Path, how: str) -> None:
    """The open file deleted (rm, `ln -sf` over it, the directory removed): a notice is not written into a file
    no one can read any more. The path is opened again; while it cannot be (a link there, no directory) the notice
    is held and counted, and written once it can."""
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    log = NoticeLog(str(log_dir), "notice.log", "s")
    log.emit(sample_notice(n=1))
    path = log_dir / "notice.log"
    if how == "unlinked":
        path.unlink()
    elif how == "replaced by a link":
        path.unlink()
        path.symlink_to(victim)
    else:
        shutil.rmtree(log_dir)
    if how == "unlinked":
        log.emit(sample_notice(n=2))  # a fresh file at the path
    else:
        with pytest.raises(NoticeWriteError):
            log.emit(sample_notice(n=2))
        assert (log.backlog, log.write_errors, log.lost) == (1, 1, 0)
        if how == "replaced by a link":
            path.unlink()
        else:
            log_dir.mkdir()
        assert log.flush_backlog() == 1
    log.emit(sample_notice(n=3))
    log.close()
    assert [json.loads(t)["n"] for t in path.read_text().splitlines()] == [2, 3]
    assert victim.read_text() == "untouched\n"


def test_an_unwritable_log_dir_makes_rotation_fail_as_a_write_error(tmp_path: Path) -> None:
    log = RotatingLog(str(tmp_path), "notice.log", rotation())
    log.write_line(line(0))
    tmp_path.chmod(0o500)
    as_root = os.geteuid() == 0
    try:
        if as_root:
            os.seteuid(65534)  # root ignores directory permissions
        try:
            with pytest.raises(NoticeWriteError, match=r"cannot rotate .*Permission denied"):
                log.rotate()
            log.write_line(line(1))
        finally:
            if as_root:
                os.seteuid(0)
    finally:
        tmp_path.chmod(0o700)
    log.close()
    assert rotated(tmp_path) == [] and seqs((tmp_path / "notice.log").read_bytes()) == [0, 1]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("planted", ["symlink", "fifo"])
def test_the_compressor_neither_follows_nor_waits_on_what_is_planted_at_a_rotated_name(
        tmp_path: Path, planted: str) -> None:
    """A rotated log's name is the sensor's to gzip only if it is a regular file: a link there is not read (its
    target, readable by the sensor, would be copied into a group-readable .gz), a FIFO there not waited on."""
    secret = tmp_path / "secret"
    secret.write_text("not the sensor's to publish\n")
    secret.chmod(0o600)
    rotated = tmp_path / "notice.2000-01-01-00-00-00.log"
    if planted == "symlink":
        rotated.symlink_to(secret)
    else:
        os.mkfifo(rotated)
    with pytest.raises(OSError):
        compress_file(str(rotated))
    assert not (tmp_path / (rotated.name + ".gz")).exists()
    assert secret.read_text() == "not the sensor's to publish\n"
    assert os.path.lexists(rotated)  # what was planted is left where it is


@pytest.mark.parametrize("name", ["notice.log", "stats.log"])
def test_a_log_planted_as_a_hard_link_is_refused_at_the_start_and_at_a_reopen(tmp_path: Path, name: str) -> None:
    """A hard link is a planted link too: opening it appends to the file it shares (notice.log so, red team,
    2026-12-08). Refused at the start (OutputError, exit 73) and at a reopen (the line held, counted)."""
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    os.link(victim, tmp_path / name)
    with pytest.raises(OutputError, match="hard link"):
        StatsLog(str(tmp_path), name, rotation()) if name == "stats.log" else \
            RotatingLog(str(tmp_path), name, rotation(), clock=FakeClock())
    (tmp_path / name).unlink()
    log = RotatingLog(str(tmp_path), name, rotation(), clock=FakeClock())
    log.write_line(line(0))
    (tmp_path / name).unlink()
    os.link(victim, tmp_path / name)
    with contextlib.suppress(OSError):
        log.reopen()
    with contextlib.suppress(OSError):
        log.write_line(line(1))
    assert victim.read_text() == "untouched\n"


def test_the_compressor_does_not_write_through_a_hard_link_planted_at_its_temporary_name(tmp_path: Path) -> None:
    """The .gz is written under a temporary name first: a hard link planted there must not be truncated and
    written through (it was opened with O_TRUNC, which O_NOFOLLOW does not stop for a hard link)."""
    victim = tmp_path / "victim"
    victim.write_text("not the sensor's\n")
    rotated = tmp_path / "notice.2000-01-01-00-00-00.log"
    rotated.write_text("a rotated line\n")
    os.link(victim, tmp_path / f".{rotated.name}.gz.tmp")
    compress_file(str(rotated))
    assert victim.read_text() == "not the sensor's\n"
    assert gzip.decompress((tmp_path / (rotated.name + ".gz")).read_bytes()) == b"a rotated line\n"
    assert not rotated.exists()


def test_a_log_directory_replaced_by_a_link_is_not_followed(tmp_path: Path) -> None:
    """`mv logs logs.old; ln -s elsewhere logs`, then a reopen (SIGHUP) or a rotation: nothing is opened, made,
    renamed or deleted through the link (O_NOFOLLOW covers only a path's last component); the open file, moved
    with its directory, goes on taking the lines."""
    logs, victim = tmp_path / "logs", tmp_path / "victim"
    logs.mkdir()
    victim.mkdir()
    (victim / "notice.log").write_text("theirs\n")
    (victim / "notice.2000-01-01-00-00-00.log").write_text("theirs too\n")
    clock = FakeClock()
    log = RotatingLog(str(logs), "notice.log", rotation(interval=60, keep=1), clock=clock)
    log.write_line(line(0))
    logs.rename(tmp_path / "logs.old")
    logs.symlink_to(victim)
    with pytest.raises(NoticeWriteError, match="not followed"):
        log.reopen()
    clock.now += 61
    with pytest.raises(NoticeWriteError, match="not followed"):
        log.rotate()
    log.write_line(line(1))
    log.close()
    assert sorted(p.name for p in victim.iterdir()) == ["notice.2000-01-01-00-00-00.log", "notice.log"]
    assert (victim / "notice.log").read_text() == "theirs\n"
    assert (tmp_path / "logs.old" / "notice.log").read_bytes() == line(0) + line(1)


@pytest.mark.parametrize("swapped", ["parent", "configured link repointed"])
def test_a_directory_higher_up_the_log_path_swapped_for_a_link_is_not_followed(tmp_path: Path, swapped: str) -> None:
    """`mv var var.old; ln -s elsewhere var` above `var/logs` (or a link configured in the path pointed elsewhere),
    then a reopen or a rotation: nothing is opened, made, renamed or deleted through the new link. Before, only
    the log directory's own name was checked, and the reopen created notice.log in the link's target."""
    top, victim = tmp_path / "var", tmp_path / "victim"
    (top / "logs").mkdir(parents=True)
    (victim / "logs").mkdir(parents=True)
    (victim / "logs" / "notice.2000-01-01-00-00-00.log").write_text("theirs\n")
    configured = top
    if swapped == "configured link repointed":
        configured = tmp_path / "link"
        configured.symlink_to(top)  # configured so: followed
    clock = FakeClock()
    log = RotatingLog(str(configured / "logs"), "notice.log", rotation(interval=60, keep=1), clock=clock)
    log.write_line(line(0))
    if swapped == "parent":
        top.rename(tmp_path / "var.old")
        top.symlink_to(victim)
    else:
        configured.unlink()
        configured.symlink_to(victim)
    (victim / "logs" / "notice.log").unlink(missing_ok=True)
    with pytest.raises(NoticeWriteError, match="not followed"):
        log.reopen()
    clock.now += 61
    with pytest.raises(NoticeWriteError, match="not followed"):
        log.rotate()
    log.close()
    assert sorted(p.name for p in (victim / "logs").iterdir()) == ["notice.2000-01-01-00-00-00.log"]


def test_a_log_path_with_links_configured_is_followed_while_they_stay(tmp_path: Path) -> None:
    """Links in the configured path (such as /var/log a link to /data/log) are followed, at the start and after:
    reopen and rotation work through them."""
    real = tmp_path / "data" / "logs"
    real.mkdir(parents=True)
    (tmp_path / "var").symlink_to(tmp_path / "data")
    clock = FakeClock()
    log = RotatingLog(str(tmp_path / "var" / "logs"), "notice.log", rotation(interval=60, keep=2), clock=clock)
    log.write_line(line(0))
    assert log.reopen() in (True, False)
    clock.now += 61
    rotated = log.rotate()
    log.write_line(line(1))
    log.close()
    assert os.path.realpath(rotated).startswith(str(real))
    assert (real / "notice.log").read_bytes() == line(1)
