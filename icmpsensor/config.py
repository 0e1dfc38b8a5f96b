"""The sensor's configuration: dataclasses, the YAML loader that validates them, and a dumper.

Every configurable key is a dataclass field whose metadata holds a *kind* (how a YAML
node is checked and turned into the value, and back) and a one-line doc. The field
default is the only place a default lives. Adding a key means adding one field;
adding a section means adding one dataclass and one `field(default_factory=..., metadata=_section(...))`
on `Config`.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import math
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network
from typing import Any, TypeVar

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from icmpsensor.errors import ConfigError, InputError

T = TypeVar("T")

_KIND = "icmpsensor.kind"
_DOC = "icmpsensor.doc"
MAX_CONFIG_BYTES = 1 << 20

_TAG = "tag:yaml.org,2002:"
NULL_TAG, BOOL_TAG, INT_TAG, FLOAT_TAG, STR_TAG = (_TAG + t for t in ("null", "bool", "int", "float", "str"))
_NOUNS = {BOOL_TAG: "boolean", INT_TAG: "integer", FLOAT_TAG: "float", _TAG + "timestamp": "timestamp"}
_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")


# --------------------------------------------------------------------------- kinds


class _Problem(Exception):
    """A value is invalid; load_config turns it into a ConfigError with the file name."""

    def __init__(self, node: Node, key: str, problem: str) -> None:
        super().__init__(problem)
        self.line = node.start_mark.line + 1
        self.key = key
        self.problem = problem


class Kind:
    """How one config key is read from a YAML node and written back."""

    def parse(self, node: Node, key: str) -> Any:
        raise NotImplementedError

    def dump(self, value: Any) -> Any:
        return value


def _clip(text: str, limit: int = 60) -> str:
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
        return f"string {_clip(node.value)!r}"
    noun = _NOUNS.get(node.tag)
    if noun is None:
        return f"value {_clip(node.value)!r} tagged {node.tag.replace(_TAG, '!!')}"
    return f"{noun} {_clip(node.value)}"


def _construct(node: ScalarNode, key: str) -> Any:
    try:
        return SafeConstructor().construct_object(node)
    except (ValueError, KeyError, TypeError, ArithmeticError, yaml.YAMLError):
        # e.g. an explicit `!!int abc` or `!!bool maybe`
        raise _Problem(node, key, f"cannot read {_describe(node)}") from None


def _scalar(node: Node, key: str, tags: tuple[str, ...], expected: str) -> Any:
    if not isinstance(node, ScalarNode) or node.tag not in tags:
        hint = ""
        if isinstance(node, ScalarNode) and node.tag != NULL_TAG and tags == (STR_TAG,):
            hint = " (quote it to use it as text)"
        raise _Problem(node, key, f"expected {expected}, got {_describe(node)}{hint}")
    return _construct(node, key)


@dataclass(frozen=True)
class Bool(Kind):
    def parse(self, node: Node, key: str) -> bool:
        return bool(_scalar(node, key, (BOOL_TAG,), "a boolean (true or false)"))


@dataclass(frozen=True)
class Int(Kind):
    low: int
    high: int

    def parse(self, node: Node, key: str) -> int:
        value = _scalar(node, key, (INT_TAG,), "an integer")
        if not self.low <= value <= self.high:
            raise _Problem(node, key, f"must be between {self.low} and {self.high}, got {_clip(node.value)}")
        return int(value)


@dataclass(frozen=True)
class Seconds(Kind):
    """A positive duration in seconds: low < value <= high; an integer is accepted."""

    low: float
    high: float
    zero_means_off: bool = False  # 0 is accepted too, meaning "never"

    def parse(self, node: Node, key: str) -> float:
        value = float(_scalar(node, key, (INT_TAG, FLOAT_TAG), "a number of seconds"))
        if self.zero_means_off and value == 0:
            return 0.0
        if not (math.isfinite(value) and self.low < value <= self.high):
            off = " (or 0 for off)" if self.zero_means_off else ""
            raise _Problem(
                node,
                key,
                f"must be greater than {self.low:g} and at most {self.high:g}{off}, got {_clip(node.value)}",
            )
        return value


@dataclass(frozen=True)
class Choice(Kind):
    choices: tuple[str, ...]

    def parse(self, node: Node, key: str) -> str:
        if isinstance(node, ScalarNode) and node.tag == STR_TAG and node.value in self.choices:
            return str(node.value)
        got = (
            repr(_clip(node.value))
            if isinstance(node, ScalarNode) and node.tag == STR_TAG
            else _describe(node)
        )
        raise _Problem(node, key, f"must be one of {', '.join(self.choices)}, got {got}")


@dataclass(frozen=True)
class Text(Kind):
    """A string; `check` returns a problem description or None."""

    check: Callable[[str], str | None]

    def parse(self, node: Node, key: str) -> str:
        value = str(_scalar(node, key, (STR_TAG,), "a string"))
        problem = self.check(value)
        if problem is not None:
            raise _Problem(node, key, problem)
        return value


@dataclass(frozen=True)
class ListOf(Kind):
    """A YAML list (null or absent = empty) read into a tuple; items are parsed from their source text."""

    item: Callable[[str], Any]
    item_dump: Callable[[Any], str]
    expected: str

    def parse(self, node: Node, key: str) -> tuple[Any, ...]:
        if isinstance(node, ScalarNode) and node.tag == NULL_TAG:
            return ()
        if not isinstance(node, SequenceNode):
            raise _Problem(node, key, f"expected a list of {self.expected}, got {_describe(node)}")
        return tuple(self._item(child, f"{key}[{i}]") for i, child in enumerate(node.value))

    def _item(self, node: Node, key: str) -> Any:
        # The source text, not the resolved value: YAML 1.1 reads `1234` or `1:2:3:4:5:6:7:8` as integers.
        if not isinstance(node, ScalarNode):
            raise _Problem(node, key, f"expected {self.expected}, got {_describe(node)}")
        try:
            return self.item(node.value)
        except ValueError as exc:
            raise _Problem(node, key, str(exc)) from None

    def dump(self, value: Any) -> Any:
        return [self.item_dump(v) for v in value]


@dataclass(frozen=True)
class Section(Kind):
    """A mapping of keys read into the dataclass `cls` (null = all defaults)."""

    cls: type

    def parse(self, node: Node, key: str) -> Any:
        return _parse_mapping(self.cls, node, key)

    def dump(self, value: Any) -> Any:
        return {f.name: f.metadata[_KIND].dump(getattr(value, f.name)) for f in config_fields(self.cls)}


def config_fields(cls: type) -> list[dataclasses.Field[Any]]:
    """The fields of a config dataclass that are YAML keys, in documented order."""
    return [f for f in dataclasses.fields(cls) if _KIND in f.metadata]


def _key(default: T, kind: Kind, doc: str) -> T:
    return field(default=default, metadata={_KIND: kind, _DOC: doc})


def _section(cls: type, doc: str) -> dict[str, Any]:
    """Metadata for a section field: `field(default_factory=cls, metadata=_section(cls, doc))`."""
    return {_KIND: Section(cls), _DOC: doc}


# --------------------------------------------------------------------------- value checks


def _non_empty(value: str) -> str | None:
    if not value:
        return "must not be empty"
    return "must not contain a NUL character" if "\0" in value else None


def _sensor_name(value: str) -> str | None:
    if not value:
        return "must not be empty"
    if not value.isprintable():
        return f"must contain only printable characters, got {_clip(value)!r}"
    return f"must be at most 128 characters, got {len(value)}" if len(value) > 128 else None


def _file_name(value: str) -> str | None:
    if value in ("", ".", ".."):
        return f"must be a file name, got {value!r}"
    if "/" in value or "\0" in value:
        return f"must be a file name without '/', got {_clip(value)!r}"
    return None


def parse_network(text: str) -> IPv4Network | IPv6Network:
    """An address (-> /32 or /128) or a CIDR network without host bits."""
    if "%" in text:
        raise ValueError(f"{_clip(text)!r}: scoped IPv6 addresses are not supported")
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
        raise ValueError(f"{_clip(text)!r} is not an IP address or CIDR network") from None
    raise ValueError(f"{text!r} has host bits set (did you mean {loose}?)")


_HEX_SEPARATORS = re.compile(r"[\s:]+")


def parse_hex(text: str) -> bytes:
    """Hex digits, case-insensitive, optionally separated by whitespace or ':'."""
    digits = _HEX_SEPARATORS.sub("", text)
    if not digits:
        raise ValueError("must be a non-empty hex string")
    if any(c not in string.hexdigits for c in digits):
        raise ValueError(
            f"{_clip(text)!r} is not a hex string (0-9 and a-f, optionally separated by ' ' or ':')"
        )
    if len(digits) % 2:
        raise ValueError(f"{_clip(text)!r} has an odd number of hex digits ({len(digits)})")
    return bytes.fromhex(digits)


# --------------------------------------------------------------------------- the configuration


@dataclass
class NoticeSwitches:
    data_exfil: bool = _key(True, Bool(), "raise ICMP::ICMP_DataExfil")
    unpaired_echo_reply: bool = _key(False, Bool(), "raise ICMP::ICMP_UnpairedEchoReply")
    asym_payload: bool = _key(True, Bool(), "raise ICMP::ICMP_AsymPayload")
    asym_payload_flow: bool = _key(True, Bool(), "raise ICMP::ICMP_AsymPayloadFlow")
    tunnel: bool = _key(True, Bool(), "raise ICMP::ICMP_Tunnel (standard profile)")
    non_echo_payload: bool = _key(True, Bool(), "raise ICMP::ICMP_NonEchoPayload (standard profile)")
    slow_exfil: bool = _key(True, Bool(), "raise ICMP::ICMP_SlowExfil (standard profile)")
    exfil_summary: bool = _key(True, Bool(), "raise ICMP::ICMP_ExfilSummary (standard profile)")


@dataclass
class DetectionConfig:
    profile: str = _key(
        "standard", Choice(("standard", "original")), "standard: novelty-based detection; original: the Zeek script"
    )
    alerting: str = _key(
        "auto", Choice(("auto", "realtime", "flow_end")), "when notices fire; auto: realtime unless profile original"
    )
    novel_bytes_threshold: int = _key(
        400, Int(0, 2**40), "standard: DataExfil when novel bytes sent in a flow exceed this"
    )
    timestamp_tolerance: float = _key(
        300.0, Seconds(0, 366 * 86400), "seconds a benign ping's embedded clock may differ from the capture's"
    )
    nonecho_bytes_threshold: int = _key(
        0, Int(0, 2**31), "standard: NonEchoPayload when unexplained non-echo bytes in a flow exceed this"
    )
    slow_exfil_min_bytes: int = _key(
        2000, Int(1, 2**40), "standard: SlowExfil when a host pair's novel bytes in the window reach this"
    )
    slow_exfil_window: float = _key(86400.0, Seconds(0, 30 * 86400), "seconds a host pair's novel bytes add up")
    max_pairs: int = _key(100_000, Int(1, 100_000_000), "host pairs remembered for slow exfiltration")
    exfil_bytes_threshold: int = _key(
        1500, Int(0, 2**40), "original: DataExfil when a flow's request payload bytes exceed this"
    )
    changed_requests_threshold: int = _key(
        5, Int(0, 2**31), "requests whose payload changed must exceed this count"
    )
    reply_differs_threshold: int = _key(
        5, Int(0, 2**31), "replies differing from the request must exceed this"
    )
    reply_pairing: str = _key(
        "auto",
        Choice(("auto", "matched", "last_request")),
        "compare a reply with its request (id+seq) or the last one; auto: matched unless profile original",
    )
    idle_timeout: float = _key(300.0, Seconds(0, 86400), "seconds without packets before a flow is evaluated")
    max_flows: int = _key(100_000, Int(1, 100_000_000), "flows tracked at once")
    max_pending_requests: int = _key(
        100_000, Int(1, 100_000_000), "outstanding echo requests remembered for pairing"
    )
    ignore_default_pings: bool = _key(True, Bool(), "skip the default Linux/macOS and Windows ping payloads")
    notices: NoticeSwitches = field(
        default_factory=NoticeSwitches, metadata=_section(NoticeSwitches, "which notices are raised")
    )

    @property
    def matched_pairing(self) -> bool:
        if self.reply_pairing == "auto":
            return self.profile != "original"
        return self.reply_pairing == "matched"

    @property
    def realtime(self) -> bool:
        if self.alerting == "auto":
            return self.profile != "original"
        return self.alerting == "realtime"


class _NetworkIndex:
    """Networks of one address family grouped by netmask, for one set lookup per prefix length."""

    def __init__(self, networks: list[IPv4Network | IPv6Network]) -> None:
        by_mask: dict[int, set[int]] = {}
        for net in networks:
            by_mask.setdefault(int(net.netmask), set()).add(int(net.network_address))
        self.tables = tuple((mask, frozenset(nets)) for mask, nets in by_mask.items())

    def contains(self, addr: int) -> bool:
        return any(addr & mask in nets for mask, nets in self.tables)


@dataclass
class AllowlistConfig:
    hosts: tuple[IPv4Network | IPv6Network, ...] = _key(
        (), ListOf(parse_network, str, "addresses or CIDR networks"), "hosts never reported"
    )
    payloads: tuple[bytes, ...] = _key((), ListOf(parse_hex, bytes.hex, "hex strings"), "payloads ignored")

    def __post_init__(self) -> None:
        self._indexed_hosts: tuple[IPv4Network | IPv6Network, ...] | None = None
        self._v4 = self._v6 = _NetworkIndex([])

    def host_allowed(self, packed_addr: bytes) -> bool:
        """True if the packed address (4 or 16 bytes) lies inside an allowlisted network."""
        if self._indexed_hosts is not self.hosts:  # rebuilt only if `hosts` was replaced
            self._v4 = _NetworkIndex([n for n in self.hosts if n.version == 4])
            self._v6 = _NetworkIndex([n for n in self.hosts if n.version == 6])
            self._indexed_hosts = self.hosts
        size = len(packed_addr)
        if size == 4:
            return self._v4.contains(int.from_bytes(packed_addr, "big"))
        if size == 16:
            return self._v6.contains(int.from_bytes(packed_addr, "big"))
        return False


@dataclass
class DecodeConfig:
    verify_checksums: bool = _key(True, Bool(), "drop ICMP/ICMPv6 messages with a bad checksum")
    fragment_timeout: float = _key(30.0, Seconds(0, 600), "seconds to wait for the fragments of a datagram")
    max_fragmented_datagrams: int = _key(4096, Int(1, 1_000_000), "datagrams being reassembled at once")


# Echo and every other ICMP / ICMPv6 message, IPv6 with extension headers in front of the
# ICMPv6 header (which `icmp6` alone misses) and IPv6 fragments, bare or behind one or two
# 802.1Q / 802.1ad VLAN tags.
_L3_FILTER = (
    "(icmp or (ip6 and (ip6[6] == 58 or ip6[6] == 0 or ip6[6] == 43 or ip6[6] == 44"
    " or ip6[6] == 60 or ip6[6] == 51)))"
)
DEFAULT_BPF_FILTER = f"{_L3_FILTER} or (vlan and ({_L3_FILTER} or (vlan and {_L3_FILTER})))"


def _bpf_filter(value: str) -> str | None:
    if not value.strip():
        return "must not be empty (use 'icmp or icmp6' or the default)"
    import pcapy  # only when a filter is configured: keeps `--check-config` usable without libpcap quirks

    try:
        pcapy.compile(pcapy.DLT_EN10MB, 65535, value, 1, 0)
    except pcapy.PcapError as exc:
        return f"filter {_clip(value)!r} does not compile: {exc}"
    return None


def _interface_name(value: str) -> str | None:
    if len(value) > 15 or "/" in value or any(c.isspace() for c in value) or "\0" in value:
        return f"{_clip(value)!r} is not a valid interface name (at most 15 characters, no '/' or spaces)"
    return None


@dataclass
class CaptureConfig:
    interface: str = _key("", Text(_interface_name), "interface to capture on; empty: only -i or -r")
    bpf_filter: str = _key(DEFAULT_BPF_FILTER, Text(_bpf_filter), "BPF capture filter")
    snaplen: int = _key(65535, Int(64, 262144), "bytes captured per packet")
    promiscuous: bool = _key(True, Bool(), "put the interface in promiscuous mode")
    buffer_size: int = _key(32 * 1024 * 1024, Int(1024 * 1024, 2**31 - 1), "kernel capture buffer, bytes")
    batch_size: int = _key(512, Int(1, 65536), "packets read per batch")
    queue_batches: int = _key(1024, Int(2, 1_000_000), "batches the capture->detector queue holds")
    workers: int = _key(
        1, Int(1, 64), "capture+detector processes sharing the interface (kernel PACKET_FANOUT_HASH group)"
    )


_PRIORITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")


@dataclass
class NotePriorities:
    data_exfil: str = _key("warning", Choice(_PRIORITIES), "journald priority of ICMP::ICMP_DataExfil")
    unpaired_echo_reply: str = _key(
        "warning", Choice(_PRIORITIES), "journald priority of ICMP::ICMP_UnpairedEchoReply"
    )
    asym_payload: str = _key("warning", Choice(_PRIORITIES), "journald priority of ICMP::ICMP_AsymPayload")
    asym_payload_flow: str = _key(
        "warning", Choice(_PRIORITIES), "journald priority of ICMP::ICMP_AsymPayloadFlow"
    )
    tunnel: str = _key("warning", Choice(_PRIORITIES), "journald priority of ICMP::ICMP_Tunnel")
    non_echo_payload: str = _key("warning", Choice(_PRIORITIES), "journald priority of ICMP::ICMP_NonEchoPayload")
    slow_exfil: str = _key("warning", Choice(_PRIORITIES), "journald priority of ICMP::ICMP_SlowExfil")
    exfil_summary: str = _key("notice", Choice(_PRIORITIES), "journald priority of ICMP::ICMP_ExfilSummary")


@dataclass
class JournalConfig:
    enabled: bool = _key(True, Bool(), "send notices and operational messages to journald")
    priorities: NotePriorities = field(
        default_factory=NotePriorities, metadata=_section(NotePriorities, "journald priority per note")
    )


@dataclass
class RotationConfig:
    max_bytes: int = _key(100 * 1024 * 1024, Int(0, 2**50), "rotate notice.log at this size; 0: never")
    interval: float = _key(3600.0, Seconds(0, 366 * 86400, zero_means_off=True), "rotate every N s; 0: never")
    gzip: bool = _key(False, Bool(), "gzip rotated files")
    keep: int = _key(48, Int(0, 1_000_000), "rotated files kept; 0: keep all")


@dataclass
class StatsConfig:
    interval: float = _key(60.0, Seconds(0, 86400, zero_means_off=True), "seconds between stats records; 0: off")
    log: str = _key("stats.log", Text(_file_name), "stats file name inside output.log_dir")


@dataclass
class EvidenceConfig:
    enabled: bool = _key(True, Bool(), "write an evidence pcap (and carried bytes) for every alerted flow")
    directory: str = _key("evidence", Text(_file_name), "evidence directory name inside output.log_dir")
    packets_before: int = _key(32, Int(0, 100_000), "packets kept per suspicious flow before its first notice")
    packets_after: int = _key(1000, Int(0, 10_000_000), "packets written after the first notice, at most")
    max_file_bytes: int = _key(4 * 1024 * 1024, Int(1024, 2**40), "largest evidence pcap, bytes")
    max_total_bytes: int = _key(256 * 1024 * 1024, Int(1024, 2**50), "evidence kept on disk; oldest deleted")
    max_flows_buffered: int = _key(4096, Int(1, 10_000_000), "suspicious flows whose packets are buffered")


@dataclass
class OutputConfig:
    log_dir: str = _key(".", Text(_non_empty), "directory for notice.log")
    notice_log: str = _key("notice.log", Text(_file_name), "notice log file name inside log_dir")
    stdout: bool = _key(False, Bool(), "also print each notice as a JSON line on stdout")
    rotation: RotationConfig = field(
        default_factory=RotationConfig, metadata=_section(RotationConfig, "notice.log rotation")
    )
    evidence: EvidenceConfig = field(
        default_factory=EvidenceConfig, metadata=_section(EvidenceConfig, "evidence of alerted flows")
    )


@dataclass
class SensorConfig:
    name: str = _key("icmpsensor", Text(_sensor_name), "peer_descr of every notice")


@dataclass
class Config:
    sensor: SensorConfig = field(default_factory=SensorConfig, metadata=_section(SensorConfig, "this sensor"))
    detection: DetectionConfig = field(
        default_factory=DetectionConfig, metadata=_section(DetectionConfig, "thresholds and notices")
    )
    allowlist: AllowlistConfig = field(
        default_factory=AllowlistConfig, metadata=_section(AllowlistConfig, "traffic never reported")
    )
    decode: DecodeConfig = field(
        default_factory=DecodeConfig, metadata=_section(DecodeConfig, "packet decoding")
    )
    output: OutputConfig = field(
        default_factory=OutputConfig, metadata=_section(OutputConfig, "where notices go")
    )
    capture: CaptureConfig = field(
        default_factory=CaptureConfig, metadata=_section(CaptureConfig, "live capture")
    )
    journald: JournalConfig = field(
        default_factory=JournalConfig, metadata=_section(JournalConfig, "journald output")
    )
    stats: StatsConfig = field(default_factory=StatsConfig, metadata=_section(StatsConfig, "statistics"))
    source: str | None = None  # the file it was loaded from; None for the built-in defaults


# --------------------------------------------------------------------------- loading and dumping


def _parse_mapping(cls: type, node: Node, prefix: str) -> Any:
    if isinstance(node, ScalarNode) and node.tag == NULL_TAG:
        return cls()
    if not isinstance(node, MappingNode):
        raise _Problem(node, prefix, f"expected a mapping (section), got {_describe(node)}")
    fields = {f.name: f for f in config_fields(cls)}
    first_line: dict[str, int] = {}
    values: dict[str, Any] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, ScalarNode):
            raise _Problem(key_node, prefix, f"keys must be plain names, got {_describe(key_node)}")
        name = str(key_node.value)
        dotted = f"{prefix}.{name}" if prefix else name
        if name in first_line:
            raise _Problem(key_node, dotted, f"duplicate key (first defined on line {first_line[name]})")
        first_line[name] = key_node.start_mark.line + 1
        if name not in fields:
            raise _Problem(key_node, dotted, _unknown(name, list(fields), "key" if prefix else "section"))
        values[name] = fields[name].metadata[_KIND].parse(value_node, dotted)
    return cls(**values)


def _unknown(name: str, known: list[str], noun: str) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f"unknown {noun} (did you mean {close[0]!r}?)" if close else f"unknown {noun}"


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
        cfg: Config = _parse_mapping(Config, root, "") if root is not None else Config()
    except _Problem as problem:
        raise _config_error(path, problem.line, problem.key, problem.problem) from None
    cfg.source = path
    return cfg


def config_to_yaml(cfg: Config) -> str:
    """The effective configuration as YAML that load_config reads back to an equal Config."""
    data = Section(Config).dump(cfg)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
