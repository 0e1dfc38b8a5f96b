"""Line-oriented log files that rotate themselves the way Zeek names its logs.

Every line goes out in one write() on an O_APPEND descriptor, so readers never see
interleaved lines; a write the disk cuts short is truncated away again before the
error is reported. Rotation links the current file to `notice.YYYY-MM-DD-HH-MM-SS.log`
(local time the file was opened) and renames a fresh file over `notice.log`: the path
never disappears, and `tail -F` drains the old file before it follows the new one.

A fresh file is always renamed into place with its first content already in it, so no reader
ever sees a log without its header: a log with one (Zeek's TSV format: `Header`) starts with it,
is ended with its footer (`#close`) when it is rotated or closed, and a file found non-empty at
start is rotated away first (Zeek rotates a leftover log too). A log without one (JSON lines) is
created by its first line, and a rotation that falls due is carried out when the next line comes
(written to the new file at once), so that no empty log is left lying (a 0-byte file is no log
a parser can read).
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import os
import shutil
import stat
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from icmpsensor.config.schema import RotationConfig
from icmpsensor.errors import OutputError
from icmpsensor.output.rotatednames import RotatedNames

LOG_MODE = 0o640
MAX_RETRY_DELAY = 60.0  # seconds between attempts while rotation keeps failing
GZIP_STOP_TIMEOUT = 30.0


class NoticeWriteError(OSError):
    """A line could not be written whole; nothing partial was left behind."""


_APPEND_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK


def open_append(path: str, mode: int = LOG_MODE) -> int:
    """Open `path` for appending, creating it; OutputError (exit 73) naming the path if that fails or the
    path is not a regular file: a link planted there is never followed, and a FIFO never waits for a reader."""
    try:
        return append_fd(path, mode)
    except OSError as exc:
        raise OutputError(f"cannot open log file {path}: {exc.strerror or exc}") from None


def append_fd(path: str, mode: int = LOG_MODE) -> int:
    """`open_append`'s descriptor, with OSError as the failure (for reopening while running)."""
    return _regular_fd(path, _APPEND_FLAGS, mode)


def read_fd(path: str) -> int:
    """A regular file at `path` opened for reading, as append_fd opens one for writing."""
    return _regular_fd(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)


def _regular_fd(path: str, flags: int, mode: int = 0) -> int:
    """`path` opened with `flags` (O_NOFOLLOW | O_NONBLOCK among them: a link there is not followed, a FIFO not
    waited on) if it is a regular file of one name, then blocking; OSError naming what it is otherwise. A hard link
    is a planted link too (O_NOFOLLOW does not see it): lines appended to it would land in the file it shares, and a
    rotated name's would be copied into a .gz (red team, 2026-12-08). The sensor's own rotation links the file to
    its rotated name only until a fresh file is renamed over the path, and opens neither name in between."""
    try:
        fd = os.open(path, flags, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "is a symbolic link (not followed)") from None
        if exc.errno == errno.ENXIO:
            raise OSError(errno.ENXIO, "is a FIFO with no reader, not a regular file") from None
        raise
    st = os.fstat(fd)
    problem = "" if stat.S_ISREG(st.st_mode) else "not a regular file"
    if not problem and st.st_nlink > 1:
        problem = f"is a file with {st.st_nlink} hard links (another name shares it: not written through)"
    if problem:
        os.close(fd)
        raise OSError(errno.EINVAL, problem)
    os.set_blocking(fd, True)
    return fd


def create_new(path: str, mode: int, flags: int = 0) -> int:
    """A new, empty file at `path`, opened for writing (with `flags` more): what was there is removed first (left
    over by a crash, or planted), and the file is made with O_EXCL | O_NOFOLLOW, so that nothing there, a link
    symbolic or hard, is ever written through. For the files written under a temporary name, then renamed."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC | flags, mode)


def verify_directory(path: str) -> int:
    """A directory the sensor may create files in and delete its own from: a real directory (not a link),
    owned by this user and writable by nobody else. Its descriptor (files are then opened relative to it);
    OutputError (exit 73) naming the path otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        reason = "is a symbolic link (not followed)" if exc.errno in (errno.ELOOP, errno.ENOTDIR) and \
            os.path.islink(path) else exc.strerror or str(exc)
        raise OutputError(f"directory {path}: {reason}") from None
    st = os.fstat(fd)
    problem = ""
    if st.st_uid != os.geteuid():
        problem = f"owned by uid {st.st_uid}, not by this user"
    elif st.st_mode & 0o022:
        problem = f"writable by others (mode {stat.S_IMODE(st.st_mode):o})"
    if problem:
        os.close(fd)
        raise OutputError(f"directory {path}: {problem}")
    return fd


def append_whole_line(fd: int, line: bytes) -> None:
    """Append `line` with one write; on a short write, remove the fragment and raise."""
    try:
        written = os.write(fd, line)
    except OSError as exc:
        raise NoticeWriteError(exc.errno, exc.strerror) from None
    if written != len(line):
        # O_APPEND put the fragment at the end: cut exactly that much off again. Only on
        # this rare path do we stat, so a normal line costs one system call.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, os.fstat(fd).st_size - written)
        raise NoticeWriteError(errno.ENOSPC, f"short write ({written} of {len(line)} bytes)")


def _prefixes(path: str) -> list[str]:
    """The absolute path's directories from the top down, itself last: /a, /a/b, /a/b/c (not resolved)."""
    parts = os.path.abspath(path).split(os.sep)[1:]
    return [os.sep + os.sep.join(parts[:n]) for n in range(1, len(parts) + 1)]


def _link_target(path: str) -> str | None:
    """Where the link at `path` points; None if it is no link (OSError if it cannot be looked at)."""
    try:
        return os.readlink(path)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            return None
        raise


def links_on_path(path: str) -> dict[str, str]:
    """The links on the way to `path` (each directory of it, itself included) and where each points."""
    links = {}
    for prefix in _prefixes(path):
        with contextlib.suppress(OSError):
            target = _link_target(prefix)
            if target is not None:
                links[prefix] = target
    return links


PATH_MAX, NAME_MAX = 4096, 255  # linux/limits.h


def check_log_dir(log_dir: str) -> None:
    """The log directory must exist and be writable, and the paths of the files in it (made from its absolute path:
    a name of up to NAME_MAX bytes in a directory of it) under PATH_MAX and UTF-8; otherwise exit 73 with its
    name."""
    if not os.path.isdir(log_dir):
        raise OutputError(f"log directory {log_dir}: does not exist or is not a directory")
    if not os.access(log_dir, os.W_OK | os.X_OK):
        raise OutputError(f"log directory {log_dir}: not writable")
    try:
        absolute = os.path.abspath(log_dir)
    except OSError as exc:  # the working directory's own path is past what getcwd() returns
        raise OutputError(f"log directory {log_dir}: its absolute path cannot be read ({exc.strerror})") from None
    length = len(os.fsencode(absolute))
    if length + 2 * (1 + NAME_MAX) >= PATH_MAX:
        raise OutputError(f"log directory {log_dir}: its absolute path is too long ({length} bytes: the paths of "
                          f"the files in it must stay under PATH_MAX, {PATH_MAX} bytes)")
    try:
        absolute.encode("utf-8")
    except UnicodeEncodeError:  # bytes the file system gave that are not UTF-8 (surrogate-escaped)
        raise OutputError(f"log directory {log_dir!r}: its path is not UTF-8 (the notices name files in it: "
                          "notice.log's evidence field would not be valid UTF-8 JSON)") from None


def _write_error(exc: OSError, what: str) -> NoticeWriteError:
    return NoticeWriteError(exc.errno or errno.EIO, f"{what}: {exc.strerror or exc}")


@dataclass(frozen=True)
class Header:
    """What a log format puts first in each file and last when it ends: each given the time (epoch seconds)."""

    first: Callable[[float], bytes]
    last: Callable[[float], bytes]


# --------------------------------------------------------------------------- background gzip


class Compressor:
    """Gzips closed log files on a background thread, so the writer never waits for zlib."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: deque[str] = deque()
        self._busy = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.errors = 0
        self.last_error: str | None = None

    def submit(self, path: str) -> None:
        with self._cond:
            if path in self._pending:
                return
            self._pending.append(path)
            self._stopping = False
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="icmpsensor-gzip", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def drain(self, timeout: float) -> bool:
        """Wait until every submitted file is compressed; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)

    def stop(self, timeout: float = GZIP_STOP_TIMEOUT) -> None:
        """Finish the queue (bounded by `timeout`) and end the thread; leftovers are redone at the next start."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._stopping)
                if not self._pending:
                    return
                path = self._pending.popleft()
                self._busy = True
            try:
                compress_file(path)
            except OSError as exc:
                self.errors += 1
                self.last_error = f"cannot gzip {path}: {exc.strerror or exc}"
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()


def compress_file(path: str) -> None:
    """Write `path`.gz via a temporary name, then remove `path`; the plain file stays if anything fails."""
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}.gz.tmp")
    try:
        src = open(read_fd(path), "rb")  # noqa: SIM115 - closed below, after its times are copied
    except FileNotFoundError:
        return  # pruned (keep) before its turn came
    with src:
        st = os.fstat(src.fileno())
        try:
            fd = create_new(tmp, LOG_MODE)
            with open(fd, "wb") as raw:
                with gzip.GzipFile(filename=name, mode="wb", fileobj=raw, mtime=int(st.st_mtime)) as gz:
                    shutil.copyfileobj(src, gz, 1 << 20)
                raw.flush()
                os.fsync(raw.fileno())
            os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
            os.rename(tmp, path + ".gz")
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    try:
        os.unlink(path)
    except FileNotFoundError:
        # keep-N deleted this file while it was being compressed: its .gz must go too
        with contextlib.suppress(OSError):
            os.unlink(path + ".gz")


# --------------------------------------------------------------------------- the rotating log


class RotatingLog:
    """A log file that rotates itself by size and/or age (`rotation` None: never); `header` for a format
    whose files begin and end with one (Zeek TSV), None for JSON lines."""

    def __init__(self, log_dir: str, file_name: str, rotation: RotationConfig | None, *,
                 clock: Callable[[], float] = time.time, header: Header | None = None) -> None:
        self.log_dir = log_dir
        self.file_name = file_name
        self.path = os.path.join(log_dir, file_name)
        self.rotation = rotation
        self.names = RotatedNames(file_name)
        self.clock = clock
        self.rotate_errors = 0
        self.last_rotate_error: str | None = None
        self._lock = threading.RLock()  # reentrant: a stray call from a signal handler must not deadlock
        self._compressor = Compressor()
        self._retry_at = 0.0
        self._retry_delay = 1.0
        self._fd = -1
        self._size = 0
        self._opened_at = 0.0
        self._ino: tuple[int, int] = (0, 0)
        self.header = header
        self._header_size = 0  # bytes of the current file that are its header (a file no bigger is empty)
        self._links = links_on_path(log_dir)  # configured so: followed; put there (or pointed elsewhere) later: not
        self._open_at_start()
        self._resume_housekeeping()

    def _open_at_start(self) -> None:
        """Open what is at the path (never following a link: exit 73). Without a header, a missing file
        is left for the first line to create; with one, a fresh file gets it and a non-empty one is
        rotated away first (its open time: its last change)."""
        try:
            os.lstat(self.path)
        except FileNotFoundError:
            if self.header is None:
                self._opened_at = self.clock()
                return
        except OSError as exc:
            raise OutputError(f"cannot open log file {self.path}: {exc.strerror or exc}") from None
        self._adopt(open_append(self.path))
        if self.header is None:
            return
        try:
            if self._size:
                self._opened_at = os.fstat(self._fd).st_mtime
                self._rotate(footer=False)
            else:
                self._header_size = self._size = self._append(self.header.first(self._opened_at))
        except NoticeWriteError as exc:
            raise OutputError(f"cannot start log file {self.path}: {exc.strerror}") from None

    def _append(self, data: bytes) -> int:
        append_whole_line(self._fd, data)
        return len(data)

    # -- writing

    def write_line(self, line: bytes) -> None:
        """Append one whole line, rotating first if it is due; NoticeWriteError if it cannot be written."""
        with self._lock:
            if self._fd < 0:  # the first line creates the file
                self._adopt(self._fresh_file(line))
                return
            if os.fstat(self._fd).st_nlink == 0:
                # deleted (rm, `ln -sf` over it, its directory removed): no one could read a line written there.
                # The path again, or NoticeWriteError (a link there, no directory): the caller holds the line.
                self._reopen()
            if self._rotation_due(len(line)):
                # The line goes into the fresh file as it is made (no empty file is ever renamed into place: on a
                # full disk the rotation is undone instead). A failed rotation must not cost the line: it goes to
                # the current file, and maybe_rotate() reports the failure when it retries.
                first = line if self.header is None else b""
                with contextlib.suppress(NoticeWriteError):
                    if self._rotate_due(first) is not None and first:
                        return
            append_whole_line(self._fd, line)
            self._size += len(line)

    @property
    def size(self) -> int:
        """Bytes in the current file (counted, not stat'ed)."""
        return self._size

    @property
    def opened_at(self) -> float:
        return self._opened_at

    # -- rotation

    def maybe_rotate(self) -> str | None:
        """Rotate if the interval has elapsed (call about once a second); the rotated path, or None.

        An empty file is not rotated: its interval starts again instead; nor is a log without a
        header (its next line rotates it, so that no empty file is left). Raises NoticeWriteError
        when a due rotation fails (retried later, at a growing interval up to a minute).
        """
        with self._lock:
            if self.header is None and self._size:
                return None
            return self._rotate_due() if self._rotation_due(0) else None

    def rotate(self) -> str:
        """Rotate now; the rotated file's path. NoticeWriteError if it fails (the current file stays)."""
        with self._lock:
            return self._rotate_or_back_off()

    def _rotation_due(self, incoming: int) -> bool:
        rot = self.rotation
        if rot is None:
            return False
        now = self.clock()
        if now < self._retry_at:
            return False
        if rot.interval > 0 and now - self._opened_at >= rot.interval:
            return True
        return rot.max_bytes > 0 and self._size > self._header_size and self._size + incoming > rot.max_bytes

    def _rotate_due(self, first_line: bytes = b"") -> str | None:
        if self._size <= self._header_size:  # nothing to keep: only the interval restarts
            self._opened_at = self.clock()
            return None
        return self._rotate_or_back_off(first_line)

    def _rotate_or_back_off(self, first_line: bytes = b"") -> str:
        try:
            rotated = self._rotate(first_line)
        except NoticeWriteError as exc:
            self.rotate_errors += 1
            self.last_rotate_error = exc.strerror
            self._retry_at = self.clock() + self._retry_delay
            self._retry_delay = min(self._retry_delay * 2, MAX_RETRY_DELAY)
            raise
        self._retry_at, self._retry_delay = 0.0, 1.0
        return rotated

    def _rotate(self, first_line: bytes = b"", *, footer: bool = True) -> str:
        """Link the current file to its rotated name, end it (footer), and rename a fresh file over the path
        (with the header, or else `first_line`, in it)."""
        if self._fd < 0:
            raise NoticeWriteError(errno.ENOENT, f"cannot rotate {self.path}: no file yet")
        if self._current_identity("rotate") != self._ino:
            self._reopen()  # replaced behind our back: rotate what is at the path now
        rotated = self._link_rotated()
        ended = self._size
        try:
            if footer and self.header is not None:
                self._append(self.header.last(self.clock()))
            now = self.clock()
            fd = self._fresh_file(self.header.first(now) if self.header is not None else first_line)
        except NoticeWriteError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, ended)  # the footer goes again: the file goes on
            with contextlib.suppress(OSError):
                os.unlink(rotated)
            raise
        old = self._fd
        self._adopt(fd)
        if self.header is not None:
            self._header_size = self._size  # the fresh file holds its header only
        os.close(old)
        self._after_rotation(rotated)
        return rotated

    def _check_directory(self, doing: str) -> None:
        """NoticeWriteError if the log directory's path leads through a link that was not there (or pointed
        elsewhere) at the start, the directory itself included (O_NOFOLLOW covers only a path's last component),
        or is no longer a directory. Checked before a name in it is opened, made, renamed or deleted."""
        try:
            for prefix in _prefixes(self.log_dir):
                target = _link_target(prefix)
                if target is not None and target != self._links.get(prefix):
                    raise NoticeWriteError(errno.ENOTDIR, f"cannot {doing} {self.path}: {prefix} has been replaced "
                                                          "by a link, which is not followed")
            is_dir = stat.S_ISDIR(os.stat(self.log_dir).st_mode)
        except FileNotFoundError:
            return  # removed: what is done in it fails on its own
        except OSError as exc:
            raise _write_error(exc, f"cannot {doing} {self.path}") from None
        if not is_dir:
            raise NoticeWriteError(errno.ENOTDIR, f"cannot {doing} {self.path}: {self.log_dir} is no longer a "
                                                  "directory")

    def _link_rotated(self) -> str:
        """Hard-link the current file to its first free rotated name; that path."""
        self._check_directory("rotate")
        try:
            for _attempt in range(100):
                rotated = os.path.join(self.log_dir, self.names.free_name(self.log_dir, self._opened_at))
                with contextlib.suppress(FileExistsError):  # taken between the scan and the link
                    os.link(self.path, rotated)
                    return rotated
        except OSError as exc:
            raise _write_error(exc, f"cannot rotate {self.path}") from None
        raise NoticeWriteError(errno.EEXIST, f"cannot rotate {self.path}: no free rotated name")

    def _fresh_file(self, content: bytes) -> int:
        """A new file holding `content`, renamed over the path (atomically: the path never disappears, a
        link put there is replaced, not followed); its fd."""
        self._check_directory("write")
        tmp = os.path.join(self.log_dir, f".{self.file_name}.{os.getpid()}.new")
        fd = -1
        try:
            fd = create_new(tmp, LOG_MODE, os.O_APPEND)
            if content:
                append_whole_line(fd, content)
            os.rename(tmp, self.path)
        except OSError as exc:
            if fd >= 0:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            raise _write_error(exc, f"cannot write {self.path}") from None
        return fd

    def _after_rotation(self, rotated: str) -> None:
        rot = self.rotation
        if rot is not None and rot.gzip:
            self._compressor.submit(rotated)
        self._prune()

    def _prune(self) -> None:
        """Delete the oldest rotated files beyond `keep` (0 keeps all); failures are not errors."""
        keep = self.rotation.keep if self.rotation is not None else 0
        if keep <= 0:
            return
        with contextlib.suppress(OSError):
            self._check_directory("prune")
            files = self.names.scan(self.log_dir)
            for old in files[: max(0, len(files) - keep)]:
                for name in (old.base, old.base + ".gz"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(self.log_dir, name))

    def _resume_housekeeping(self) -> None:
        """At start: compress rotated files a previous run left plain, and apply `keep`."""
        rot = self.rotation
        if rot is None:
            return
        if rot.gzip:
            with contextlib.suppress(OSError):
                self._check_directory("compress")
                for old in self.names.scan(self.log_dir):
                    plain = os.path.join(self.log_dir, old.base)
                    if os.path.exists(plain):
                        self._compressor.submit(plain)
        self._prune()

    # -- reopening (SIGHUP) and configuration

    def reopen(self) -> bool:
        """Reopen the path if the open file is no longer there (logrotate `create`); True if reopened.

        Raises NoticeWriteError if the path cannot be (re)created; the old file stays open then.
        """
        with self._lock:
            if self._fd < 0 or self._current_identity("reopen") == self._ino:
                return False
            self._reopen()
            return True

    def _reopen(self) -> None:
        """Open the file at the path now, ending the old one (footer); an empty one gets the header."""
        self._check_directory("reopen")
        try:
            fd = append_fd(self.path)
        except OSError as exc:
            raise _write_error(exc, f"cannot reopen {self.path}") from None
        old = self._fd
        if old >= 0 and self.header is not None:
            with contextlib.suppress(NoticeWriteError):
                self._append(self.header.last(self.clock()))
        self._adopt(fd)
        if old >= 0:
            os.close(old)
        if self.header is not None and not self._size:
            self._header_size = self._size = self._append(self.header.first(self._opened_at))

    def reconfigure(self, rotation: RotationConfig | None) -> None:
        with self._lock:
            self.rotation = rotation
            self._retry_at, self._retry_delay = 0.0, 1.0
            self._resume_housekeeping()

    def _adopt(self, fd: int) -> None:
        """Make `fd` the current file: the one fstat of its life."""
        st = os.fstat(fd)
        self._fd = fd
        self._size = st.st_size
        self._header_size = 0
        self._ino = (st.st_dev, st.st_ino)
        self._opened_at = self.clock()

    def _current_identity(self, doing: str) -> tuple[int, int] | None:
        """(st_dev, st_ino) of the file at the path now; None if there is none."""
        try:
            st = os.lstat(self.path)  # a link put in its place is not the open file
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _write_error(exc, f"cannot {doing} {self.path}") from None
        return st.st_dev, st.st_ino

    # -- the end

    def wait_for_gzip(self, timeout: float) -> bool:
        """Wait until the background compression is idle; False on timeout."""
        return self._compressor.drain(timeout)

    @property
    def gzip_errors(self) -> int:
        return self._compressor.errors

    def close(self, gzip_timeout: float = GZIP_STOP_TIMEOUT) -> None:
        """Close the file, then let pending compression finish (at most `gzip_timeout` seconds)."""
        with self._lock:
            if self._fd >= 0:
                if self.header is not None:
                    with contextlib.suppress(NoticeWriteError):
                        self._append(self.header.last(self.clock()))
                os.close(self._fd)
                self._fd = -1
        self._compressor.stop(gzip_timeout)


class LogFile:
    """A log that owns a RotatingLog: rotation, reopen and reconfiguration are the RotatingLog's."""

    def __init__(self, log_dir: str, file_name: str, rotation: RotationConfig | None, *,
                 clock: Callable[[], float] = time.time, header: Header | None = None) -> None:
        check_log_dir(log_dir)
        self.log = RotatingLog(log_dir, file_name, rotation, clock=clock, header=header)
        self.path = self.log.path

    def maybe_rotate(self) -> str | None:
        return self.log.maybe_rotate()

    def rotate(self) -> str:
        return self.log.rotate()

    def reopen(self) -> bool:
        return self.log.reopen()

    def reconfigure(self, rotation: RotationConfig | None) -> None:
        self.log.reconfigure(rotation)

    def close(self) -> None:
        self.log.close()
