"""The manual page icmpsensor.yaml(5), rendered from the configuration schema (config/schema.py), so that its
list of keys, defaults, ranges and restart marks cannot go stale:

    python -m icmpsensor.config.manpage > packaging/man/icmpsensor.yaml.5

a test holds the shipped page equal to this output (as the journal catalog is held to the note table).
"""

from __future__ import annotations

import math
import sys
from typing import Any

import yaml

from icmpsensor import __version__
from icmpsensor.config.fields import config_fields
from icmpsensor.config.kinds import (
    Bool,
    Choice,
    Fraction,
    Int,
    Kind,
    ListOf,
    Seconds,
    Section,
    Text,
)
from icmpsensor.config.schema import Config

HEAD = r""".\" icmpsensor.yaml(5): rendered by `python -m icmpsensor.config.manpage` from icmpsensor/config/schema.py.
.\" Do not edit: change the schema and render again (a test holds this file equal to the rendering).
.TH ICMPSENSOR.YAML 5 "" "icmpsensor {version}" "File Formats Manual"
.SH NAME
icmpsensor.yaml \- configuration of the icmpsensor ICMP exfiltration sensor
.SH SYNOPSIS
.B /etc/icmpsensor/icmpsensor.yaml
.SH DESCRIPTION
The configuration of
.BR icmpsensor (8):
a YAML mapping of sections, each a mapping of keys.
Any section or key may be left out to get its default; an empty file gives every default.
The shipped file lists every key with its default and a comment.
.PP
Validation is strict: an unknown key (with a "did you mean" hint), a wrong type (a boolean is not a number),
a value out of range, a bad address or hex string, or a duplicate key is refused with one line,
.IR FILE : LINE ": " KEY ": " PROBLEM ,
and exit status 78.
.B icmpsensor \-c
.I FILE
.B \-\-check\-config
checks a file;
.B \-\-print\-config
prints the effective configuration.
.PP
SIGHUP
.RB ( "systemctl reload icmpsensor" )
re-reads the file: a key marked
.I restart needed
below is read only at start (a reload reports its change and does not apply it); every other key applies at
once, and the flows the sensor tracks are kept.
An invalid file is refused and the running configuration stays in force.
.PP
Value types: a
.I number of seconds
may be written as an integer or a decimal;
.I true
and
.I false
are booleans; strings that YAML would read as another type must be quoted.
.SH KEYS
"""

TAIL = r""".SH FILES
.TP
.I /etc/icmpsensor/icmpsensor.yaml
the configuration the systemd unit starts the sensor with
.TP
.I /etc/icmpsensor/icmpsensor.yaml.dist
the shipped version, written by install.sh beside an edited file when the two differ
.SH SEE ALSO
.BR icmpsensor (8),
.BR systemctl (1),
.BR journalctl (1)
"""


def escape(text: str) -> str:
    """Text for a roff line: backslashes written \\e, a line starting with a control character protected."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text.startswith((".", "'")) else text


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def describe(kind: Kind) -> str:
    """The values a key takes, in words."""
    if isinstance(kind, Bool):
        return "true or false"
    if isinstance(kind, Int):
        return f"integer, {kind.low} to {kind.high}"
    if isinstance(kind, Seconds):
        high = "no limit" if math.isinf(kind.high) else f"at most {_number(kind.high)}"
        off = "; 0: off" if kind.zero_means_off else ""
        return f"seconds, greater than {_number(kind.low)}, {high}{off}"
    if isinstance(kind, Fraction):
        return "a fraction, 0 to 1; 0: off"
    if isinstance(kind, Choice):
        return "one of " + ", ".join(kind.choices)
    if isinstance(kind, ListOf):
        return f"a list of {kind.expected}"
    if isinstance(kind, Text):
        return "a string"
    raise TypeError(f"no description for {type(kind).__name__}")


def default_text(kind: Kind, value: Any) -> str:
    dumped = kind.dump(value)
    text = yaml.safe_dump(dumped, default_flow_style=True, width=math.inf, allow_unicode=True)
    return text.strip().removesuffix("...").strip()


def _keys(cls: type, prefix: str, restart: bool, out: list[str]) -> None:
    plain = [f for f in config_fields(cls) if not isinstance(f.kind, Section)]
    sections = [f for f in config_fields(cls) if isinstance(f.kind, Section)]
    instance = cls()
    for f in plain:
        kind = f.kind
        out.append(".TP")
        out.append(f"\\fB{escape(prefix + f.name)}\\fR")
        out.append(escape(f.doc) + ".")
        out.append(".br")
        extra = " Restart needed." if restart or f.restart else ""
        default = escape(default_text(kind, getattr(instance, f.name)))
        out.append(f"Value: {escape(describe(kind))}. Default: \\fB{default}\\fR.{extra}")
    for f in sections:
        name = prefix + f.name
        out.append(f".SS {escape(name)}")
        doc = f.doc
        out.append(escape(doc[:1].upper() + doc[1:]) + "." + (" The whole section is read only at start: "
                                                                "restart needed." if f.restart else ""))
        _keys(f.kind.cls, name + ".", restart or f.restart, out)


def render() -> str:
    lines: list[str] = []
    for f in config_fields(Config):
        assert isinstance(f.kind, Section), "every top-level key is a section"
        lines.append(f".SS {escape(f.name)}")
        lines.append(escape(f.doc[:1].upper() + f.doc[1:]) + ".")
        _keys(f.kind.cls, f.name + ".", f.restart, lines)
    return HEAD.replace("{version}", __version__) + "\n".join(lines) + "\n" + TAIL


def all_keys() -> list[str]:
    """Every key's dotted name (what the page must list)."""
    names: list[str] = []

    def walk(cls: type, prefix: str) -> None:
        for f in config_fields(cls):
            if isinstance(f.kind, Section):
                walk(f.kind.cls, f"{prefix}{f.name}.")
            else:
                names.append(prefix + f.name)

    walk(Config, "")
    return names


if __name__ == "__main__":
    sys.stdout.write(render())


