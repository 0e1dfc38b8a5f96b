"""Which signals the sensor takes, and what every other signal that would end it does instead.

The daemon stops on SIGTERM and SIGINT and reloads on SIGHUP (runmode/live.py). A signal whose default
action ends the process and which the sensor does not use (SIGUSR1, SIGUSR2, SIGALRM, ...: a stray
`kill -USR1`, a logrotate `postrotate` written for another daemon) must not end it without its flush: each
is ignored, and the daemon says so in its log. A replay (`-r`) stops on SIGTERM and SIGHUP as on SIGINT (its
workers too), exiting 128 + the signal's number. Workers take no signal: the main process drives them with
messages. (SIGPIPE is ignored in cli.main; SIGXFSZ, which Python ignores already, makes a write past the file
size limit fail with EFBIG, handled as any write error.)
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
RELOAD_SIGNAL = signal.SIGHUP
# Default action "terminate" (signal(7)), not used by the sensor
_UNUSED_NAMES = ("SIGUSR1", "SIGUSR2", "SIGALRM", "SIGVTALRM", "SIGPROF", "SIGIO", "SIGPWR", "SIGSTKFLT")
UNUSED_SIGNALS: tuple[int, ...] = tuple(
    [int(getattr(signal, name)) for name in _UNUSED_NAMES if hasattr(signal, name)]
    + list(range(signal.SIGRTMIN, signal.SIGRTMAX + 1)))

Handler = Callable[[int, FrameType | None], None]


def signal_name(signum: int) -> str:
    """SIGUSR1, or SIGRTMIN+3 for a real-time signal."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"SIGRTMIN+{signum - signal.SIGRTMIN}"


def take_unused(handler: Handler) -> None:
    """The daemon: every unused signal to `handler` (which logs it), none of them ending the process."""
    for signum in UNUSED_SIGNALS:
        signal.signal(signum, handler)


def ignore_all() -> None:
    """A worker process: it ignores every signal the daemon takes or ignores."""
    for signum in (*STOP_SIGNALS, RELOAD_SIGNAL, *UNUSED_SIGNALS):
        signal.signal(signum, signal.SIG_IGN)


class ReplayStopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP during a replay: it ends as Ctrl-C ends it, with 128 + the signal's number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal_name(signum))
        self.signum = signum


def _replay_stop(signum: int, _frame: FrameType | None) -> None:
    raise ReplayStopped(signum)


def replay_signals() -> None:
    """A replay (not a daemon): SIGTERM and SIGHUP stop it as SIGINT does; the unused signals are ignored."""
    signal.signal(signal.SIGTERM, _replay_stop)
    signal.signal(signal.SIGHUP, _replay_stop)
    for signum in UNUSED_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def interrupted_exit_code(exc: KeyboardInterrupt) -> int:
    """The shell's convention: 128 + the signal that stopped a replay (SIGINT: 130)."""
    return 128 + (exc.signum if isinstance(exc, ReplayStopped) else int(signal.SIGINT))
