"""How a config key is read from YAML and checked: the value kinds, and the checks of text values.

A *kind* turns one YAML node into a value (or a `Problem` naming the line and what is wrong) and
back into YAML for `--print-config`.
"""

from __future__ import annotations

import math
import re

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from icmpsensor.config.fields import config_fields

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~4 ms of every start
if TYPE_CHECKING:
    from collections.abc import Callable
    from ipaddress import IPv4Network, IPv6Network
    from typing import Any

_TAG = "tag:yaml.org,2002:"
NULL_TAG, BOOL_TAG, INT_TAG, FLOAT_TAG, STR_TAG = (_TAG + t for t in ("null", "bool", "int", "float", "str"))
_NOUNS = {BOOL_TAG: "boolean", INT_TAG: "integer", FLOAT_TAG: "float", _TAG + "timestamp": "timestamp"}


class Problem(Exception):
    """A value is invalid; load_config turns it into a ConfigError with the file name."""

    def __init__(self, node: Node, key: str, problem: str) -> None:
        super().__init__(problem)
        self.line = node.start_mark.line + 1
        self.key = key
        self.problem = problem


class Kind:
    """How one config key is read from a YAML node and written back. (Plain classes, not dataclasses:
    they are built at import, and `--check-config` should start fast.)"""

    def parse(self, node: Node, key: str) -> Any:
        raise NotImplementedError

    def dump(self, value: Any) -> Any:
        return value


def clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _describe(node: Node) -> str:
    """Name a node's type and value for a 'got ...' phrase."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag == NULL_TAG:
        return "null"
    if node.tag == STR_TAG:
        return f"string {clip(node.value)!r}"
    noun = _NOUNS.get(node.tag)
    if noun is None:
        return f"value {clip(node.value)!r} tagged {node.tag.replace(_TAG, '!!')}"
    return f"{noun} {clip(node.value) or repr('')}"  # empty: only with an explicit tag (`!!int ''`)


def _construct(node: ScalarNode, key: str) -> Any:
    try:
        return SafeConstructor().construct_object(node)
    except (ValueError, LookupError, TypeError, ArithmeticError, yaml.YAMLError):
        # e.g. an explicit `!!int abc` or `!!bool maybe`; `!!int ''`: PyYAML's constructor indexes the empty text
        raise Problem(node, key, f"cannot read {_describe(node)}") from None


def _scalar(node: Node, key: str, tags: tuple[str, ...], expected: str) -> Any:
    if not isinstance(node, ScalarNode) or node.tag not in tags:
        hint = ""
        if isinstance(node, ScalarNode) and node.tag != NULL_TAG and tags == (STR_TAG,):
            hint = " (quote it to use it as text)"
        raise Problem(node, key, f"expected {expected}, got {_describe(node)}{hint}")
    return _construct(node, key)


class Bool(Kind):
    def parse(self, node: Node, key: str) -> bool:
        return bool(_scalar(node, key, (BOOL_TAG,), "a boolean (true or false)"))


class Int(Kind):
    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high

    def parse(self, node: Node, key: str) -> int:
        value = _scalar(node, key, (INT_TAG,), "an integer")
        if not self.low <= value <= self.high:
            raise Problem(node, key, f"must be between {self.low} and {self.high}, got {clip(node.value)}")
        return int(value)


class Seconds(Kind):
    """A positive duration in seconds: low < value <= high; an integer is accepted; `zero_means_off`: 0 is
    accepted too, meaning "never"."""

    def __init__(self, low: float, high: float, zero_means_off: bool = False) -> None:
        self.low, self.high, self.zero_means_off = low, high, zero_means_off

    def parse(self, node: Node, key: str) -> float:
        number = _scalar(node, key, (INT_TAG, FLOAT_TAG), "a number of seconds")
        try:
            value = float(number)
        except OverflowError:  # an integer too large for a float: out of range like any other
            value = math.inf if number > 0 else -math.inf
        if self.zero_means_off and value == 0:
            return 0.0
        if not (math.isfinite(value) and self.low < value <= self.high):
            off = " (or 0 for off)" if self.zero_means_off else ""
            raise Problem(
                node,
                key,
                f"must be greater than {self.low:g} and at most {self.high:g}{off}, got {clip(node.value)}",
            )
        return value


class Fraction(Kind):
    """A share: 0 <= value <= 1 (0 and 1 may be written as integers); 0 means off."""

    def parse(self, node: Node, key: str) -> float:
        number = _scalar(node, key, (INT_TAG, FLOAT_TAG), "a fraction between 0 and 1")
        try:
            value = float(number)
        except OverflowError:  # an integer too large for a float
            value = math.inf
        if not 0.0 <= value <= 1.0:  # NaN fails too
            raise Problem(node, key, f"must be between 0 (off) and 1, got {clip(node.value)}")
        return value


class Choice(Kind):
    def __init__(self, choices: tuple[str, ...]) -> None:
        self.choices = choices

    def parse(self, node: Node, key: str) -> str:
        if isinstance(node, ScalarNode) and node.tag == STR_TAG and node.value in self.choices:
            return str(node.value)
        got = (
            repr(clip(node.value))
            if isinstance(node, ScalarNode) and node.tag == STR_TAG
            else _describe(node)
        )
        raise Problem(node, key, f"must be one of {', '.join(self.choices)}, got {got}")


class Text(Kind):
    """A string; `check` returns a problem description or None."""

    def __init__(self, check: Callable[[str], str | None]) -> None:
        self.check = check

    def parse(self, node: Node, key: str) -> str:
        value = str(_scalar(node, key, (STR_TAG,), "a string"))
        problem = self.check(value)
        if problem is not None:
            raise Problem(node, key, problem)
        return value


class ListOf(Kind):
    """A YAML list (null or absent = empty) read into a tuple; items are parsed from their source text."""

    def __init__(self, item: Callable[[str], Any], item_dump: Callable[[Any], str], expected: str) -> None:
        self.item, self.item_dump, self.expected = item, item_dump, expected

    def parse(self, node: Node, key: str) -> tuple[Any, ...]:
        if isinstance(node, ScalarNode) and node.tag == NULL_TAG:
            return ()
        if not isinstance(node, SequenceNode):
            raise Problem(node, key, f"expected a list of {self.expected}, got {_describe(node)}")
        return tuple(self._item(child, f"{key}[{i}]") for i, child in enumerate(node.value))

    def _item(self, node: Node, key: str) -> Any:
        # The source text, not the resolved value: YAML 1.1 reads `1234` or `1:2:3:4:5:6:7:8` as integers.
        if not isinstance(node, ScalarNode):
            raise Problem(node, key, f"expected {self.expected}, got {_describe(node)}")
        try:
            return self.item(node.value)
        except ValueError as exc:
            raise Problem(node, key, str(exc)) from None

    def dump(self, value: Any) -> Any:
        return [self.item_dump(v) for v in value]


class Section(Kind):
    """A mapping of keys read into the section class `cls` (config/fields.py; null = all defaults)."""

    def __init__(self, cls: type) -> None:
        self.cls = cls

    def parse(self, node: Node, key: str) -> Any:
        return parse_mapping(self.cls, node, key)

    def dump(self, value: Any) -> Any:
        return {f.name: f.kind.dump(getattr(value, f.name)) for f in config_fields(self.cls)}  # type: ignore[union-attr]


def parse_mapping(cls: type, node: Node, prefix: str) -> Any:
    """A YAML mapping read into the section class `cls`: every key known, none twice (null: defaults)."""
    if isinstance(node, ScalarNode) and node.tag == NULL_TAG:
        return cls()
    if not isinstance(node, MappingNode):
        raise Problem(node, prefix, f"expected a mapping (section), got {_describe(node)}")
    fields = {f.name: f for f in config_fields(cls)}
    first_line: dict[str, int] = {}
    values: dict[str, Any] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, ScalarNode):
            raise Problem(key_node, prefix, f"keys must be plain names, got {_describe(key_node)}")
        name = str(key_node.value)
        dotted = f"{prefix}.{name}" if prefix else name
        if name in first_line:
            raise Problem(key_node, dotted, f"duplicate key (first defined on line {first_line[name]})")
        first_line[name] = key_node.start_mark.line + 1
        if name not in fields:
            raise Problem(key_node, dotted, _unknown(name, list(fields), "key" if prefix else "section"))
        values[name] = fields[name].kind.parse(value_node, dotted)  # type: ignore[union-attr]
    return cls(**values)


def _unknown(name: str, known: list[str], noun: str) -> str:
    import difflib  # only on this error path: `--check-config` of a good file starts faster without it

    close = difflib.get_close_matches(name, known, n=1)
    return f"unknown {noun} (did you mean {close[0]!r}?)" if close else f"unknown {noun}"


# --------------------------------------------------------------------------- value checks


def non_empty(value: str) -> str | None:
    if not value:
        return "must not be empty"
    return "must not contain a NUL character" if "\0" in value else None


def sensor_name(value: str) -> str | None:
    if not value:
        return "must not be empty"
    if not value.isprintable():
        return f"must contain only printable characters, got {clip(value)!r}"
    return f"must be at most 128 characters, got {len(value)}" if len(value) > 128 else None


NAME_MAX = 255  # bytes of a file name (Linux)


def file_name(value: str) -> str | None:
    if value in ("", ".", ".."):
        return f"must be a file name, got {value!r}"
    if "/" in value or "\0" in value:
        return f"must be a file name without '/', got {clip(value)!r}"
    if not value.isprintable():
        return f"must contain only printable characters, got {clip(value)!r}"
    size = len(value.encode("utf-8", "surrogateescape"))
    return f"must be at most {NAME_MAX} bytes, got {size}" if size > NAME_MAX else None


def textfile_path(value: str) -> str | None:
    """Empty (off), or a path ending in .prom (the only files node_exporter's textfile collector reads)."""
    if not value:
        return None
    if "\0" in value:
        return "must not contain a NUL character"
    if not value.endswith(".prom") or value.rsplit("/", 1)[-1] == ".prom":
        return f"must be a file name ending in .prom (node_exporter reads only *.prom), got {clip(value)!r}"
    return None


def parse_network(text: str) -> IPv4Network | IPv6Network:
    """An address (-> /32 or /128) or a CIDR network without host bits."""
    import ipaddress  # only where an allowlist names hosts

    if "%" in text:
        raise ValueError(f"{clip(text)!r}: scoped IPv6 addresses are not supported")
    try:
        return ipaddress.ip_network(ipaddress.ip_address(text))
    except ValueError:
        pass
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"{clip(text)!r} is not an IP address or CIDR network") from None
    raise ValueError(f"{text!r} has host bits set (did you mean {loose}?)")


_HEX_SEPARATORS = re.compile(r"[\s:]+")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")  # string.hexdigits, without importing string


def parse_hex(text: str) -> bytes:
    """Hex digits, case-insensitive, optionally separated by whitespace or ':'."""
    digits = _HEX_SEPARATORS.sub("", text)
    if not digits:
        raise ValueError("must be a non-empty hex string")
    if any(c not in _HEX_DIGITS for c in digits):
        raise ValueError(
            f"{clip(text)!r} is not a hex string (0-9 and a-f, optionally separated by ' ' or ':')"
        )
    if len(digits) % 2:
        raise ValueError(f"{clip(text)!r} has an odd number of hex digits ({len(digits)})")
    return bytes.fromhex(digits)


def bpf_filter(value: str) -> str | None:
    if not value.strip():
        return "must not be empty (use 'icmp or icmp6' or the default)"
    from icmpsensor.source.bpf import compile_problem  # only when a filter is configured: libpcap loaded then

    problem = compile_problem(value)
    return None if problem is None else f"filter {clip(value)!r} does not compile: {problem}"


def interface_name(value: str) -> str | None:
    if len(value) > 15 or "/" in value or any(c.isspace() for c in value) or "\0" in value:
        return f"{clip(value)!r} is not a valid interface name (at most 15 characters, no '/' or spaces)"
    return None
