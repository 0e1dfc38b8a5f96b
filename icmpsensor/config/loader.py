"""Reading a YAML config file into a validated `Config`, and writing one back (`--print-config`).

Every problem becomes one ConfigError line, `FILE:LINE: section.key: problem` (exit 78); a file that
cannot be read is an InputError (exit 66).

A file is parsed by libyaml when PyYAML has it (`yaml.__with_libyaml__`), an order of magnitude faster than
PyYAML's Python parser, which walks the shipped file's comments a character at a time. Anything libyaml or
the checks find wrong is read again by the Python parser, which finds and words the error as it always did:
the messages, and their lines, are PyYAML's (docs/design.md#configuration).
"""

from __future__ import annotations

import errno
import itertools
import os
import re
import stat
import time

import yaml
from yaml.nodes import MappingNode, Node

from icmpsensor.config.kinds import NULL_TAG, Problem, Section, parse_mapping
from icmpsensor.config.schema import Config
from icmpsensor.console import one_line
from icmpsensor.errors import ConfigError, InputError
from icmpsensor.output.rotatednames import RotatedNames

_LIBYAML = yaml.CSafeLoader if yaml.__with_libyaml__ else None

MAX_CONFIG_BYTES = 1 << 20
STREAM_TIMEOUT = 10.0  # seconds a FIFO or pipe given as the config gets to deliver its text
_LINE_BREAK = "\r\n|[\n\r\x85\u2028\u2029]"  # YAML's line breaks (compiled on the error path only)


def _config_error(path: str, line: int, key: str, problem: str) -> ConfigError:
    where = f"{path}:{line}: {key}: " if key else f"{path}:{line}: "
    return ConfigError(one_line(where + problem))


def _read_text(path: str, stream_timeout: float) -> str:
    try:
        data = _read_bytes(path, stream_timeout)
    except OSError as exc:
        raise InputError(one_line(f"config file {path}: {exc.strerror or exc}")) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise InputError(one_line(f"config file {path}: larger than {MAX_CONFIG_BYTES} bytes"))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise _config_error(path, line, "", "not UTF-8 text") from None


def _read_bytes(path: str, stream_timeout: float) -> bytes:
    """At most MAX_CONFIG_BYTES + 1 bytes of a regular file, or of a pipe or FIFO (`-c <(...)`) that delivers
    its text within `stream_timeout` seconds: opening never waits for a FIFO's writer."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory")
        if stat.S_ISREG(mode):
            os.set_blocking(fd, True)
            with os.fdopen(os.dup(fd), "rb") as stream:
                return stream.read(MAX_CONFIG_BYTES + 1)
        return _read_stream(fd, path, stream_timeout, waits_for_writer=stat.S_ISFIFO(mode))
    finally:
        os.close(fd)


def _read_stream(fd: int, path: str, timeout: float, *, waits_for_writer: bool) -> bytes:
    """A FIFO or pipe's text (`waits_for_writer`: its end of file may mean no writer yet, so it is waited for), or
    a character device's (/dev/null: its end of file is its end)."""
    import select  # only for a FIFO or a pipe

    chunks: list[bytes] = []
    size = 0
    deadline = time.monotonic() + timeout
    while size <= MAX_CONFIG_BYTES:
        left = deadline - time.monotonic()
        if left <= 0:
            raise InputError(one_line(f"config file {path}: nothing read within {timeout:g} s "
                                       "(a FIFO or pipe no one writes to)"))
        select.select([fd], [], [], min(left, 0.1))
        try:
            chunk = os.read(fd, MAX_CONFIG_BYTES + 1 - size)
        except BlockingIOError:  # a writer is there, its text is not yet
            continue
        if not chunk:
            if chunks or not waits_for_writer:
                break  # its writer is done, or a device's end
            time.sleep(0.05)  # no writer yet (or one that wrote nothing): wait for one, up to the deadline
            continue
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _compose(path: str, text: str) -> Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)  # type: ignore[no-any-return]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = exc.problem or exc.context or "invalid YAML"
    except yaml.reader.ReaderError as exc:
        line = len(re.findall(_LINE_BREAK, text[:exc.position])) + 1
        code = ord(exc.character) if isinstance(exc.character, str) else exc.character
        problem = f"character #x{code:04x}: {exc.reason}"
    except yaml.YAMLError as exc:
        line, problem = 1, str(exc).splitlines()[0]
    except RecursionError:
        line, problem = 1, "nested too deeply"
    raise _config_error(path, line, "", f"YAML syntax error: {problem}")


def load_config(path: str | None, stream_timeout: float = STREAM_TIMEOUT) -> Config:
    """Read and validate a YAML config file; None gives the built-in defaults. `stream_timeout`: the seconds a
    FIFO or pipe given as the file gets to deliver its text.

    Raises InputError if the file cannot be read and ConfigError (`file:line: key: problem`)
    if it is not a valid configuration.
    """
    if path is None:
        return Config()
    text = _read_text(path, stream_timeout)
    cfg = _load_libyaml(text)
    if cfg is None:
        cfg = _load(path, text)
    _check_output_names(path, text, cfg)
    cfg.source = path
    return cfg


def _check_output_names(path: str, text: str, cfg: Config) -> None:
    """Two outputs naming one file in the log directory (evidence.directory: notice.log) would race for it, and one
    named like another log's rotated copy would be compressed and deleted by that log's rotation (`keep`): refused
    at the key the file sets (the first of the two where it sets both)."""
    names = {"output.evidence.directory": cfg.output.evidence.directory, "output.notice_log": cfg.output.notice_log,
             "stats.log": cfg.stats.log}
    textfile = cfg.stats.prometheus_textfile
    if textfile and os.path.dirname(os.path.join(cfg.output.log_dir, textfile)) == os.path.normpath(
            cfg.output.log_dir):  # an absolute path elsewhere takes nothing from the log directory
        names["stats.prometheus_textfile"] = os.path.basename(textfile)
    for (key, name), (other, other_name) in itertools.combinations(names.items(), 2):
        if name == other_name:
            root = _compose(path, text)  # it parsed: no error now
            line = _key_line(root, key)
            told, named, line = (key, other, line) if line is not None else (other, key, _key_line(root, other))
            raise _config_error(path, line or 1, told, f"names the same file in output.log_dir as {named} ({name!r})")
    for (key, name), (other, other_name) in itertools.permutations(names.items(), 2):
        if other in ("output.notice_log", "stats.log") and RotatedNames(other_name).claims(name):  # the logs rotated
            line = _key_line(_compose(path, text), key)
            raise _config_error(path, line or 1, key, f"names a rotated copy of {other} ({name!r}): its rotation "
                                "would compress and delete it")


def _key_line(root: Node | None, dotted: str) -> int | None:
    """The line of the key `dotted` (section.key) in the composed file, None where the file does not set it."""
    node = root
    for part in dotted.split("."):
        if not isinstance(node, MappingNode):
            return None
        found = [(k, v) for k, v in node.value if getattr(k, "value", None) == part]
        if not found:
            return None
        key_node, node = found[0]
    return int(key_node.start_mark.line) + 1


def _load_libyaml(text: str) -> Config | None:
    """The configuration as libyaml reads it, or None: no libyaml, or something is wrong (then `_load`
    finds it again and says what). (libyaml stops at 1,000 levels of nesting: its recursion is bounded.)"""
    if _LIBYAML is None:
        return None
    try:
        root = yaml.compose(text, Loader=_LIBYAML)
        if root is None:
            return Config()
        if not isinstance(root, MappingNode):
            return None
        cfg: Config = parse_mapping(Config, root, "")
    except Exception:  # whatever it is, the Python parser and the checks meet it again, and report it
        return None
    return cfg


def _load(path: str, text: str) -> Config:
    root = _compose(path, text)
    if root is not None and not isinstance(root, MappingNode) and root.tag != NULL_TAG:
        raise _config_error(path, 1, "", "top level must be a mapping of sections")
    try:
        cfg: Config = parse_mapping(Config, root, "") if root is not None else Config()
    except Problem as problem:
        raise _config_error(path, problem.line, problem.key, problem.problem) from None
    except (ArithmeticError, ValueError, TypeError, RecursionError) as exc:  # a value no kind foresaw
        raise _config_error(path, 1, "", f"cannot read the configuration ({type(exc).__name__}: {exc})") from None
    return cfg


def config_to_yaml(cfg: Config) -> str:
    """The effective configuration as YAML that load_config reads back to an equal Config."""
    data = Section(Config).dump(cfg)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
