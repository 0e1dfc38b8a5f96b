"""Exit codes and the exceptions that map to them.

Every error a user can cause ends the program with one line on stderr and one of
these codes (sysexits.h values where one fits); never with a traceback.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_NOINPUT = 66  # a capture file or config file that cannot be read
EXIT_OSERR = 71  # out of memory (the process's limit: ulimit -v, a unit's MemoryMax=), or no thread could start
EXIT_CANTCREAT = 73  # the log directory cannot be written
EXIT_NOPERM = 77  # not allowed to capture (needs root or CAP_NET_RAW)
EXIT_CONFIG = 78  # the configuration is invalid


class SensorError(Exception):
    """An error with a one-line, user-facing message and an exit code."""

    exit_code = EXIT_INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(SensorError):
    exit_code = EXIT_USAGE


class InputError(SensorError):
    """A capture or config file is missing, unreadable or of an unsupported kind."""

    exit_code = EXIT_NOINPUT


class OutputError(SensorError):
    """The log directory or a log file cannot be created or written."""

    exit_code = EXIT_CANTCREAT


class ConfigError(SensorError):
    """The configuration is invalid; the message reads `file:line: key: problem`."""

    exit_code = EXIT_CONFIG


class ResourceError(SensorError):
    """The system refused memory or a thread (a limit reached): nothing the input did wrong, nothing to retry."""

    exit_code = EXIT_OSERR


def resource_error(exc: BaseException) -> ResourceError | None:
    """The ResourceError an exception is (MemoryError; CPython's RuntimeError when no thread can be started), or
    None."""
    if isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and "can't start new thread" in str(exc)):
        return ResourceError("out of memory (the process's limit reached: `ulimit -v`, the unit's MemoryMax=): "
                             f"{type(exc).__name__}{f': {exc}' if str(exc) else ''}")
    return None


class CaptureError(SensorError):
    """The interface cannot be captured on (no such device, down, already active...)."""

    exit_code = EXIT_NOINPUT


class CapturePermissionError(CaptureError):
    exit_code = EXIT_NOPERM
