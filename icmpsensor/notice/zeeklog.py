"""A notice as a notice.log record, in Zeek's two formats: JSON lines and the ASCII writer's TSV.

`FIELDS` is the one list of the record's columns, in Zeek's order: Zeek's own `Notice::Info` columns
(with the conn id of the flow: for ICMP the type and its counterpart or code stand in the ports),
then `community_id` (as Zeek's policy/frameworks/notice/community-id.zeek adds it), then the sensor's
own: the flow's numbers that `sub` spells out (`flow.*`) and the evidence pcap. `row()` gives the
values in that order (None: unset); each format writes them from there. JSON leaves unset fields
out, as Zeek's JSON writer does; TSV writes them `-`, an empty string `(empty)`, an empty set
`(empty)`, sets comma-joined, times as Zeek writes a `time` (epoch seconds, six decimals).

TSV strings are escaped as Zeek's ASCII writer escapes them (zeek/src/Desc.cc, util.cc): a backslash
is doubled, the separator (tab) and, inside a set, the set separator become `\\xNN`; a string equal
to `-` or `(empty)` gets its first byte escaped; control characters (C0, DEL, C1), private-use and
U+FFF0..U+FFFF characters become `\\xNN` bytes, and once one does, so does every other non-ASCII byte
of that piece of the string (pieces run between backslashes and separators).
"""

from __future__ import annotations

import functools
import time
from json.encoder import encode_basestring_ascii
from typing import TYPE_CHECKING

from icmpsensor.notice.connid import community_id, conn_ports

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from icmpsensor.notice.record import Notice

ACTIONS = ("Notice::ACTION_LOG",)
SUPPRESS_FOR = 0.0  # the sensor raises each note once per flow: nothing is suppressed
PATH = "notice"
SEPARATOR = "\t"
SET_SEPARATOR = ","
EMPTY_FIELD = "(empty)"
UNSET_FIELD = "-"
META_PREFIX = "#"
OPEN_CLOSE_FORMAT = "%Y-%m-%d-%H-%M-%S"  # #open / #close, local time (as the ASCII writer's Timestamp())

# (name, Zeek type), in the order of the record
FIELDS: tuple[tuple[str, str], ...] = (
    ("ts", "time"),
    ("uid", "string"),
    ("id.orig_h", "addr"),
    ("id.orig_p", "port"),
    ("id.resp_h", "addr"),
    ("id.resp_p", "port"),
    ("fuid", "string"),
    ("file_mime_type", "string"),
    ("file_desc", "string"),
    ("proto", "enum"),
    ("note", "enum"),
    ("msg", "string"),
    ("sub", "string"),
    ("src", "addr"),
    ("dst", "addr"),
    ("p", "port"),
    ("n", "count"),
    ("peer_descr", "string"),
    ("actions", "set[enum]"),
    ("email_dest", "set[string]"),
    ("suppress_for", "interval"),
    ("community_id", "string"),
    ("flow.bytes_sent", "count"),
    ("flow.bytes_received", "count"),
    ("flow.novel_bytes", "count"),
    ("flow.packets", "count"),
    ("flow.start", "time"),
    ("flow.end", "time"),
    ("flow.tool", "string"),
    ("flow.channels", "set[string]"),
    ("flow.peers", "count"),
    ("evidence", "string"),
)


def row(notice: Notice, peer_descr: str) -> tuple[object, ...]:
    """The record's values in FIELDS order; None where the field is unset."""
    n = notice
    src, dst = n.src or None, n.dst or None
    if n.icmp_type >= 0 and src is not None and dst is not None:
        ipv6 = ":" in src
        orig_p, resp_p, _ = conn_ports(n.icmp_type, n.icmp_code, ipv6)
        cid: str | None = community_id(src, dst, ipv6, n.icmp_type, n.icmp_code)
    else:
        orig_p = resp_p = cid = None
    if src is None and dst is None:  # about no flow (the daemon's CaptureLoss): no proto, no flow numbers
        return (
            n.ts, n.uid or None, None, None, None, None, None, None, None, None, n.note, n.msg, n.sub, None, None,
            None, n.n, peer_descr, ACTIONS, (), SUPPRESS_FOR, None, None, None, None, None, None, None, None, None,
            None, n.evidence or None,
        )
    return (
        n.ts, n.uid or None, src, orig_p, dst, resp_p, None, None, None, "icmp", n.note, n.msg, n.sub, src, dst,
        resp_p, n.n, peer_descr, ACTIONS, (), SUPPRESS_FOR, cid, n.bytes_sent, n.bytes_received,
        n.novel_bytes if n.novel_bytes >= 0 else None, n.n, n.start, n.end, n.tool or None,
        tuple(n.channels.split(",")) if n.channels else None, n.peers or None, n.evidence or None,
    )


def record(notice: Notice, peer_descr: str) -> dict[str, object]:
    """The record as a dict, every field (None: unset)."""
    return dict(zip(_NAMES, row(notice, peer_descr), strict=True))


# -- JSON ------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=256)
def _json_set(values: tuple[str, ...]) -> str:
    return "[" + ",".join(map(encode_basestring_ascii, values)) + "]"


_NAMES = tuple(name for name, _ in FIELDS)


def _json_piece(index: int, name: str, zeek_type: str) -> str:
    """The expression that writes field `index` (`v{index}`) as JSON, as json.dumps(ensure_ascii=True) does:
    numbers by their repr (inline, no call), strings escaped, sets as arrays; nothing when unset."""
    key = encode_basestring_ascii(name) + ":"
    value = f"v{index}"
    if zeek_type in ("time", "interval", "double", "count", "port", "int"):
        text = f"f'{key}{{{value}!r}}'"
    elif zeek_type.startswith("set["):
        text = f"'{key}' + _json_set({value})"
    else:
        text = f"'{key}' + _str({value})"
    return f"({text} if {value} is not None else '')"


def _build_json_line() -> Callable[[Notice, str], str]:
    """json_line, written out from FIELDS once (one f-string per field: a notice storm's flush renders
    100,000 lines in a few hundred milliseconds)."""
    values = ", ".join(f"v{i}" for i in range(len(FIELDS)))
    pieces = [_json_piece(i, name, ztype) for i, (name, ztype) in enumerate(FIELDS)]
    source = (
        "def json_line(notice, peer_descr):\n"
        f"    ({values},) = row(notice, peer_descr)\n"
        "    return '{' + ','.join([p for p in (" + ", ".join(pieces) + ",) if p]) + '}\\n'\n"
    )
    namespace: dict[str, object] = {"row": row, "_json_set": _json_set, "_str": encode_basestring_ascii}
    exec(compile(source, f"<{__name__}.json_line>", "exec"), namespace)
    function = namespace["json_line"]
    function.__doc__ = "One JSON object and its newline: json.dumps(..., separators=(',', ':')) of the set fields."
    return function  # type: ignore[return-value]


json_line = _build_json_line()


# -- TSV -------------------------------------------------------------------------------------------

def _is_bad_char(ch: str) -> bool:
    """A character Zeek's writer (util::escape_utf8 / check_ok_utf8) will not write as UTF-8."""
    o = ord(ch)
    return o < 0x20 or 0x7F <= o <= 0x9F or 0xE000 <= o <= 0xF8FF or 0xFFF0 <= o <= 0xFFFF or 0xD800 <= o <= 0xDFFF


def _escape_piece(piece: str) -> str:
    """A stretch without backslashes or separators: kept, unless it holds a character Zeek escapes; then
    every non-ASCII-printable byte of it is written \\xNN."""
    if not any(map(_is_bad_char, piece)):
        return piece
    out = []
    for ch in piece:
        if " " <= ch <= "~":
            out.append(ch)
        else:
            out.extend(f"\\x{b:02x}" for b in ch.encode("utf-8", "surrogatepass"))
    return "".join(out)


def _escape(text: str, specials: str) -> str:
    out: list[str] = []
    piece_start = 0
    for i, ch in enumerate(text):
        if ch == "\\" or ch in specials:
            out.append(_escape_piece(text[piece_start:i]))
            out.append("\\\\" if ch == "\\" else f"\\x{ord(ch):02x}")
            piece_start = i + 1
    out.append(_escape_piece(text[piece_start:]))
    return "".join(out)


def tsv_string(text: str, *, in_set: bool = False) -> str:
    """A string cell (or set element) as Zeek's ASCII writer writes it."""
    if not text:
        return EMPTY_FIELD
    if text.isascii() and text.isprintable() and "\\" not in text and not (in_set and SET_SEPARATOR in text):
        escaped = text  # the common case: nothing to escape
    else:
        escaped = _escape(text, SEPARATOR + SET_SEPARATOR if in_set else SEPARATOR)
    if text in (UNSET_FIELD, EMPTY_FIELD):
        return f"\\x{ord(text[0]):02x}" + text[1:]
    return escaped


def tsv_set(values: Iterable[str]) -> str:
    cells = [tsv_string(v, in_set=True) for v in values]
    return SET_SEPARATOR.join(cells) if cells else EMPTY_FIELD


def _tsv_time(value: float) -> str:
    return f"{value:.6f}"


def _tsv_encoder(zeek_type: str) -> Callable[[object], str]:
    if zeek_type in ("time", "interval"):
        return _tsv_time  # type: ignore[return-value]
    if zeek_type in ("count", "port", "int", "addr"):
        return str
    if zeek_type.startswith("set["):
        return tsv_set  # type: ignore[return-value]
    return tsv_string  # type: ignore[return-value]


_TSV = tuple(_tsv_encoder(ztype) for _, ztype in FIELDS)


def tsv_escape_line(line: str) -> str:
    """A data line that would start with the meta prefix gets that byte escaped (the writer's DoWrite)."""
    return f"\\x{ord(META_PREFIX):02x}{line[1:]}" if line.startswith(META_PREFIX) else line


def tsv_line(notice: Notice, peer_descr: str) -> str:
    """One TSV row and its newline."""
    line = SEPARATOR.join([UNSET_FIELD if value is None else enc(value)
                           for enc, value in zip(_TSV, row(notice, peer_descr), strict=True)]) + "\n"
    return tsv_escape_line(line)


def _stamp(t: float) -> str:
    return time.strftime(OPEN_CLOSE_FORMAT, time.localtime(t or time.time()))


def tsv_header(opened_at: float) -> str:
    """The header block of a new TSV notice.log opened at `opened_at` (0: now)."""
    return (
        f"{META_PREFIX}separator \\x{ord(SEPARATOR):02x}\n"
        f"{META_PREFIX}set_separator{SEPARATOR}{SET_SEPARATOR}\n"
        f"{META_PREFIX}empty_field{SEPARATOR}{EMPTY_FIELD}\n"
        f"{META_PREFIX}unset_field{SEPARATOR}{UNSET_FIELD}\n"
        f"{META_PREFIX}path{SEPARATOR}{PATH}\n"
        f"{META_PREFIX}open{SEPARATOR}{_stamp(opened_at)}\n"
        f"{META_PREFIX}fields{SEPARATOR}{SEPARATOR.join(_NAMES)}\n"
        f"{META_PREFIX}types{SEPARATOR}{SEPARATOR.join(ztype for _, ztype in FIELDS)}\n"
    )


def tsv_footer(closed_at: float) -> str:
    """The line that ends a TSV log when it is rotated or closed (0: now)."""
    return f"{META_PREFIX}close{SEPARATOR}{_stamp(closed_at)}\n"
