"""Reading a YAML config file into a validated `Config`, and writing one back (`--print-config`).

Every problem becomes one ConfigError line, `FILE:LINE: section.key: problem` (exit 78); a file that
cannot be read is an InputError (exit 66).
"""

from __future__ import annotations

import re

import yaml
from yaml.nodes import MappingNode, Node

from icmpsensor.config.kinds import NULL_TAG, Problem, Section, parse_mapping
from icmpsensor.config.schema import Config
from icmpsensor.errors import ConfigError, InputError

MAX_CONFIG_BYTES = 1 << 20
_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")


def _one_line(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _config_error(path: str, line: int, key: str, problem: str) -> ConfigError:
    where = f"{path}:{line}: {key}: " if key else f"{path}:{line}: "
    return ConfigError(_one_line(where + problem))


def _read_text(path: str) -> str:
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise InputError(_one_line(f"config file {path}: {exc.strerror or exc}")) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise InputError(_one_line(f"config file {path}: larger than {MAX_CONFIG_BYTES} bytes"))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise _config_error(path, line, "", "not UTF-8 text") from None


def _compose(path: str, text: str) -> Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)  # type: ignore[no-any-return]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = exc.problem or exc.context or "invalid YAML"
    except yaml.reader.ReaderError as exc:
        line = len(_LINE_BREAK.findall(text, 0, exc.position)) + 1
        code = ord(exc.character) if isinstance(exc.character, str) else exc.character
        problem = f"character #x{code:04x}: {exc.reason}"
    except yaml.YAMLError as exc:
        line, problem = 1, str(exc).splitlines()[0]
    except RecursionError:
        line, problem = 1, "nested too deeply"
    raise _config_error(path, line, "", f"YAML syntax error: {problem}")


def load_config(path: str | None) -> Config:
    """Read and validate a YAML config file; None gives the built-in defaults.

    Raises InputError if the file cannot be read and ConfigError (`file:line: key: problem`)
    if it is not a valid configuration.
    """
    if path is None:
        return Config()
    root = _compose(path, _read_text(path))
    if root is not None and not isinstance(root, MappingNode) and root.tag != NULL_TAG:
        raise _config_error(path, 1, "", "top level must be a mapping of sections")
    try:
        cfg: Config = parse_mapping(Config, root, "") if root is not None else Config()
    except Problem as problem:
        raise _config_error(path, problem.line, problem.key, problem.problem) from None
    cfg.source = path
    return cfg


def config_to_yaml(cfg: Config) -> str:
    """The effective configuration as YAML that load_config reads back to an equal Config."""
    data = Section(Config).dump(cfg)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
