"""The configuration: one class per section (config/fields.py: it behaves as a dataclass), one field per key.

Every key is a field declared with its default, its *kind* (config/kinds.py: how a YAML node is checked
and turned into the value, and back), a one-line doc, and whether it is read only at start
(`restart=True`: a reload reports a change instead of applying it). The field default is the only
place a default lives. Adding a key means adding one field; adding a section means adding one
class and one `section(...)` field on `Config`.
"""

from __future__ import annotations

from icmpsensor.config import capturefilter
from icmpsensor.config.fields import ConfigSection, Key, config_fields, make_section
from icmpsensor.config.kinds import (
    Bool,
    Choice,
    Fraction,
    Int,
    ListOf,
    Seconds,
    Section,
    Text,
    bpf_filter,
    file_name,
    interface_name,
    non_empty,
    parse_hex,
    parse_network,
    sensor_name,
    textfile_path,
)
from icmpsensor.notice.types import NOTE_TYPES

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~4 ms of every start
if TYPE_CHECKING:
    from ipaddress import IPv4Network, IPv6Network
    from typing import Any, TypeVar

    from icmpsensor.config.kinds import Kind

    T = TypeVar("T")


def key(default: T, kind: Kind, doc: str, *, restart: bool = False) -> T:
    return Key(default, kind, doc, restart=restart)  # type: ignore[return-value]  # the class holds the default


def section(cls: type[T], doc: str, *, restart: bool = False) -> T:
    """A section field: `name: Cls = section(Cls, doc)` (restart: the whole section is read only at start)."""
    return Key(None, Section(cls), doc, restart=restart, default_factory=cls)  # type: ignore[return-value]


# One switch per note type (notice/types.py), named as the note's `switch`.
NoticeSwitches = make_section(
    "NoticeSwitches", __name__, {n.switch: (bool, key(n.on, Bool(), n.switch_doc)) for n in NOTE_TYPES},
)


class DetectionConfig(ConfigSection):
    profile: str = key(
        "standard", Choice(("standard", "original")), "standard: novelty-based detection; original: the Zeek script",
        restart=True,  # a reload keeps the running detector and its flows
    )
    alerting: str = key(
        "auto", Choice(("auto", "realtime", "flow_end")), "when notices fire; auto: realtime unless profile original"
    )
    novel_bytes_threshold: int = key(
        256, Int(0, 2**40), "standard: DataExfil when novel bytes sent in a flow exceed this"
    )
    small_secret_bytes: int = key(
        128, Int(0, 2**40), "standard: DataExfil also when a flow's novel bytes reach this, carried by at least "
        "small_secret_payloads payloads (0: off)"
    )
    small_secret_payloads: int = key(
        2, Int(1, 2**31), "standard: ... the changed echo payloads (requests and replies) small_secret_bytes needs"
    )
    timestamp_tolerance: float = key(
        300.0, Seconds(0, 366 * 86400), "seconds a benign ping's embedded clock may differ from the capture's"
    )
    clock_jitter: float = key(
        0.010, Seconds(0, 10), "standard: seconds a ping's embedded clock may move against the capture clock "
        "between a flow's requests for free (the jitter from the sender to the sensor)"
    )
    nonecho_bytes_threshold: int = key(
        0, Int(0, 2**31), "standard: NonEchoPayload when unexplained non-echo bytes in a flow exceed this"
    )
    slow_exfil_min_bytes: int = key(
        2000, Int(1, 2**40), "standard: SlowExfil when a host pair's novel bytes in the window reach this"
    )
    slow_exfil_window: float = key(86400.0, Seconds(0, 30 * 86400), "seconds a host pair's novel bytes add up")
    spread_min_bytes: int = key(
        1024, Int(1, 2**40), "standard: ExfilSpread when one host's novel bytes to (or from) many peers reach this"
    )
    spread_min_peers: int = key(
        16, Int(2, 2**31), "standard: ... over at least this many peers within slow_exfil_window"
    )
    aggregate_interval: float = key(
        60.0, Seconds(0, 86400, zero_means_off=True),
        "notice storms: seconds per aggregation interval (0: never aggregate)"
    )
    aggregate_max_notices: int = key(
        10, Int(0, 2**31), "notices of one note to one host (or from one) per interval written as they come; "
        "the rest become one notice with counts (0: never aggregate)"
    )
    aggregate_max_per_note: int = key(
        100, Int(0, 2**31), "notices of one note per interval written as they come whatever their hosts (a storm "
        "that repeats no host); the rest become one notice with counts (0: no such quota)"
    )
    aggregate_sample: int = key(
        8, Int(0, 1000), "peers named in an aggregated notice, drawn at random weighted by the bytes they sent"
    )
    max_pairs: int = key(100_000, Int(1, 100_000_000), "host pairs remembered for slow exfiltration")
    exfil_bytes_threshold: int = key(
        1500, Int(0, 2**40), "original: DataExfil when a flow's request payload bytes exceed this"
    )
    changed_requests_threshold: int = key(
        5, Int(0, 2**31), "requests whose payload changed must exceed this count"
    )
    reply_differs_threshold: int = key(
        5, Int(0, 2**31), "replies differing from the request must exceed this"
    )
    reply_pairing: str = key(
        "auto",
        Choice(("auto", "matched", "last_request")),
        "compare a reply with its request (id+seq) or the last one; auto: matched unless profile original",
    )
    idle_timeout: float = key(300.0, Seconds(0, 86400), "seconds without packets before a flow is evaluated")
    max_flows: int = key(100_000, Int(1, 100_000_000), "flows tracked at once")
    max_pending_requests: int = key(
        100_000, Int(1, 100_000_000), "outstanding echo requests remembered for pairing"
    )
    ignore_default_pings: bool = key(True, Bool(), "skip the default Linux/macOS and Windows ping payloads")
    notices: NoticeSwitches = section(NoticeSwitches, "which notices are raised")

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


class AllowlistConfig(ConfigSection):
    hosts: tuple[IPv4Network | IPv6Network, ...] = key(
        (), ListOf(parse_network, str, "addresses or CIDR networks"), "hosts never reported"
    )
    payloads: tuple[bytes, ...] = key((), ListOf(parse_hex, bytes.hex, "hex strings"), "payloads ignored")


class DecodeConfig(ConfigSection):
    verify_checksums: bool = key(True, Bool(), "count ICMP/ICMPv6 messages with a bad checksum (analysed all the "
                                 "same: a receiver's packet capture reads them) and drop IPv4 headers with one")
    fragment_timeout: float = key(30.0, Seconds(0, 600), "seconds to wait for the fragments of a datagram",
                                  restart=True)
    max_fragmented_datagrams: int = key(4096, Int(1, 1_000_000), "datagrams being reassembled at once", restart=True)


# Echo and every other ICMP / ICMPv6 message, IPv6 with extension headers in front of the ICMPv6 header (which `icmp6`
# alone misses) and IPv6 fragments, bare or behind one or two 802.1Q / 802.1ad VLAN tags, and inside the
# encapsulations the decoder opens (config/capturefilter.py).
DEFAULT_BPF_FILTER = capturefilter.DEFAULT_BPF_FILTER
BUILTIN_FILTER = "default"  # capture.bpf_filter's name for DEFAULT_BPF_FILTER (its text is ~25 KB)


def _bpf_filter(value: str) -> str | None:
    """A filter compiles (kinds.bpf_filter); the default is known to (tests/unit/test_capture_filter.py runs it),
    so that checking the shipped file does not import pcapy."""
    return None if value in (BUILTIN_FILTER, DEFAULT_BPF_FILTER) else bpf_filter(value)


class CaptureConfig(ConfigSection):
    interface: str = key("", Text(interface_name), "interface to capture on; empty: only -i or -r", restart=True)
    bpf_filter: str = key(BUILTIN_FILTER, Text(_bpf_filter),
                          f"BPF capture filter (tcpdump syntax); {BUILTIN_FILTER}: the built-in one, ICMP and ICMPv6 "
                          "bare, behind one or two VLAN tags and inside MPLS, PPPoE, IP-in-IP, GRE (ERSPAN), VXLAN "
                          "and Geneve (python -m icmpsensor.config.capturefilter prints it)", restart=True)
    snaplen: int = key(65535, Int(1518, 262144), "bytes captured per packet (a frame cut shorter is counted "
                       "truncated, never analysed: at least a full Ethernet frame with a VLAN tag)", restart=True)
    promiscuous: bool = key(True, Bool(), "put the interface in promiscuous mode", restart=True)
    buffer_size: int = key(32 * 1024 * 1024, Int(1024 * 1024, 2**31 - 1), "kernel capture buffer, bytes",
                           restart=True)
    batch_size: int = key(512, Int(1, 65536), "packets read per batch", restart=True)
    queue_batches: int = key(1024, Int(2, 1_000_000), "batches the capture->detector queue holds", restart=True)
    queue_bytes: int = key(128 * 1024 * 1024, Int(1024 * 1024, 2**40),
                           "bytes of frames the capture->detector queue holds (with each batch's records and "
                           "overhead); an empty queue takes one batch whatever its size", restart=True)
    workers: int = key(1, Int(1, 64), "capture+detector processes sharing the interface (kernel PACKET_FANOUT_HASH "
                       "group)", restart=True)
    reopen_timeout: float = key(0.0, Seconds(0, 366 * 86400, zero_means_off=True),
                                "seconds a failed capture (interface down, driver reset) is reopened for, flows kept; "
                                "0: for ever", restart=True)

    @property
    def filter_expression(self) -> str:
        """The filter libpcap compiles: bpf_filter, the built-in one's text for its name."""
        return DEFAULT_BPF_FILTER if self.bpf_filter == BUILTIN_FILTER else self.bpf_filter


PRIORITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")


# One journald priority per note type (notice/types.py), named as the note's `switch`.
NotePriorities = make_section(
    "NotePriorities", __name__,
    {n.switch: (str, key(n.priority, Choice(PRIORITIES), f"journald priority of {n.name}")) for n in NOTE_TYPES},
)


class JournalConfig(ConfigSection):
    enabled: bool = key(True, Bool(), "send notices and operational messages to journald", restart=True)
    priorities: NotePriorities = section(NotePriorities, "journald priority per note")


class RotationConfig(ConfigSection):
    max_bytes: int = key(100 * 1024 * 1024, Int(0, 2**50), "rotate notice.log at this size; 0: never")
    interval: float = key(3600.0, Seconds(0, 366 * 86400, zero_means_off=True), "rotate every N s; 0: never")
    gzip: bool = key(False, Bool(), "gzip rotated files")
    keep: int = key(48, Int(0, 1_000_000), "rotated files kept; 0: keep all")


class StatsConfig(ConfigSection):
    interval: float = key(60.0, Seconds(0, 86400, zero_means_off=True), "seconds between stats records; 0: off")
    log: str = key("stats.log", Text(file_name), "stats file name inside output.log_dir", restart=True)
    prometheus_textfile: str = key(
        "", Text(textfile_path), "Prometheus textfile (node_exporter's textfile collector) rewritten with every stats "
        "record; a path ending in .prom, relative: inside output.log_dir; empty: off", restart=True,
    )
    capture_loss_threshold: float = key(
        0.1, Fraction(), "CaptureLoss notice when the kernel and queue drops of a stats interval exceed this share "
        "of the packets received in it; 0: off",
    )
    lag_warning: float = key(
        10.0, Seconds(1, 86400, zero_means_off=True), "a journal warning when detection falls this many seconds "
        "behind the wire (live), and a note when it has caught up (under 1 s: hence more than 1); 0: off",
    )


class EvidenceConfig(ConfigSection):
    enabled: bool = key(True, Bool(), "write an evidence pcap (and carried bytes) for every alerted flow")
    directory: str = key("evidence", Text(file_name), "evidence directory name inside output.log_dir")
    packets_before: int = key(32, Int(0, 100_000), "packets kept per suspicious flow before its first notice")
    packets_after: int = key(1000, Int(0, 10_000_000), "packets written after the first notice, at most")
    max_file_bytes: int = key(4 * 1024 * 1024, Int(1024, 2**40), "largest evidence pcap, bytes")
    max_total_bytes: int = key(256 * 1024 * 1024, Int(1024, 2**50), "evidence kept on disk; oldest deleted")
    max_flows_buffered: int = key(4096, Int(1, 10_000_000), "suspicious flows whose packets are buffered")
    max_buffer_bytes: int = key(
        64 * 1024 * 1024, Int(64 * 1024, 2**40),
        "bytes the buffered packets may hold (frames, payloads, overhead); beyond: least recently active flows dropped"
    )
    max_files_per_minute: int = key(
        600, Int(1, 1_000_000), "new evidence files (a .pcap and its .bin) per minute of packet time; beyond: counted"
    )


class OutputConfig(ConfigSection):
    log_dir: str = key(".", Text(non_empty), "directory for notice.log", restart=True)
    notice_log: str = key("notice.log", Text(file_name), "notice log file name inside log_dir", restart=True)
    format: str = key("json", Choice(("json", "tsv")), "notice.log format: json (JSON lines) or tsv (Zeek's default "
                      "ASCII format: header, tab-separated columns)", restart=True)
    stdout: bool = key(False, Bool(), "also print each notice as a JSON line on stdout", restart=True)
    rotation: RotationConfig = section(RotationConfig, "notice.log rotation")
    evidence: EvidenceConfig = section(EvidenceConfig, "evidence of alerted flows", restart=True)


class SensorConfig(ConfigSection):
    name: str = key("icmpsensor", Text(sensor_name), "peer_descr of every notice")


class Config(ConfigSection):
    sensor: SensorConfig = section(SensorConfig, "this sensor")
    detection: DetectionConfig = section(DetectionConfig, "thresholds and notices")
    allowlist: AllowlistConfig = section(AllowlistConfig, "traffic never reported")
    decode: DecodeConfig = section(DecodeConfig, "packet decoding")
    output: OutputConfig = section(OutputConfig, "where notices go")
    capture: CaptureConfig = section(CaptureConfig, "live capture")
    journald: JournalConfig = section(JournalConfig, "journald output")
    stats: StatsConfig = section(StatsConfig, "statistics")
    source: str | None = None  # the file it was loaded from; None for the built-in defaults


def restart_only_changes(running: Config, new: Config) -> list[str]:
    """The keys read only at start (`restart=True`) whose value differs in `new`; `new` gets the running
    values back, so that a reload applies everything else."""
    return _keep_restart_only(running, new, "")


def _keep_restart_only(running: Any, new: Any, prefix: str) -> list[str]:
    changed = []
    for f in config_fields(type(running)):
        name = f"{prefix}{f.name}"
        old_value, new_value = getattr(running, f.name), getattr(new, f.name)
        if f.restart:
            if old_value != new_value:
                changed.append(name)
                setattr(new, f.name, old_value)
        elif isinstance(f.kind, Section):
            changed += _keep_restart_only(old_value, new_value, name + ".")
    return changed

