"""journald output: one journal entry per notice, and the daemon's operational messages.

Entries go over journald's native protocol on a non-blocking socket (output/journalsocket.py: a stalled
journald must not stop the sensor). Availability is checked once, at start, by looking for the
socket; without it the sensor says so once on stderr and keeps writing notice.log.

Every entry has a fixed MESSAGE_ID, explained in the journal catalog (`journalctl -x`): a note's
comes from the note table (notice/types.py), an operational message's from the table below;
output/catalog.py renders both into packaging/journal-catalog/icmpsensor.catalog.
"""

from __future__ import annotations

import os
import syslog
import time
from dataclasses import dataclass

from icmpsensor.config.schema import JournalConfig
from icmpsensor.console import say
from icmpsensor.notice.policy import journal_priority
from icmpsensor.notice.record import Notice
from icmpsensor.notice.types import BY_NAME
from icmpsensor.output.journalsocket import JournalSocket, encode_entry

JOURNAL_SOCKET = "/run/systemd/journal/socket"
SYSLOG_IDENTIFIER = "icmpsensor"


@dataclass(frozen=True, slots=True)
class JournalMessage:
    """An operational message's MESSAGE_ID and its catalog entry."""

    message_id: str
    subject: str
    body: str


OPERATIONAL_MESSAGES: list[JournalMessage] = []


def _message(message_id: str, *, subject: str, body: str) -> str:
    OPERATIONAL_MESSAGES.append(JournalMessage(message_id, subject, body))
    return message_id


MSGID_STARTED = _message(
    'c28a1ef6ce804f0cb4f2b5195d391842',
    subject='icmpsensor started capturing',
    body="""\
The icmpsensor daemon has opened its capture interface (capture.interface in
/etc/icmpsensor/icmpsensor.yaml) and is reading packets; it has told systemd
it is ready. Notices go to /var/log/icmpsensor/notice.log (output.log_dir)
and to the journal.

Nothing needs to be done. If no traffic is ever reported, check that the
interface is the SPAN/mirror port and that it is up.
""",
)

MSGID_STOPPED = _message(
    '92fd69f2f0e842ec91c6eb754c5e89a1',
    subject='icmpsensor stopped',
    body="""\
The icmpsensor daemon stopped capturing, after evaluating every flow it was
still tracking and writing their notices. This follows `systemctl stop
icmpsensor`, a restart, or shutdown (SIGTERM or SIGINT).

Nothing needs to be done after a deliberate stop. While it is stopped, ICMP
exfiltration on the monitored link is not detected.
""",
)

MSGID_RELOADED = _message(
    '343714c842264f38a2a36e60040a11c0',
    subject='icmpsensor reloaded its configuration',
    body="""\
The icmpsensor daemon received SIGHUP (`systemctl reload icmpsensor`, or
logrotate's postrotate) and re-read /etc/icmpsensor/icmpsensor.yaml, and
reopened its log files. The new thresholds, switches and allowlists apply to
the flows it tracks and to new ones. Settings read only at start (capture
interface, BPF filter, buffer sizes, log directory and file names) change
only on a restart: the message lists any that differ and were not applied.

If the new file was invalid, there is no reload entry: an error entry
(MESSAGE_ID 90dbe942ae0a47af9d963dfd74b9fc32) says why, and the previous
configuration stays in force.

What to do: nothing, unless the message lists settings that need a restart:
then `systemctl restart icmpsensor` (open flows are evaluated and reported
before it stops).
""",
)

MSGID_STATS = _message(
    '31652f7a481240218a8e172ba3ef981c',
    subject='icmpsensor capture statistics',
    body="""\
Periodic counters of the icmpsensor daemon (every stats.interval seconds):
packets received, packets dropped by the kernel, by the interface and by the
sensor's own queue, decode errors by reason, flows tracked and evicted, and
notices written. The same record is appended to the stats log
(/var/log/icmpsensor/stats.log) and shown in `systemctl status icmpsensor`.

What to do: drops mean the sensor missed traffic and may miss an
exfiltration. Kernel drops: raise capture.buffer_size; queue drops: the
detector is too slow for the traffic, narrow capture.bpf_filter or give the
sensor more CPU; evictions: raise detection.max_flows.
""",
)

MSGID_LAGGING = _message(
    'd8776f5442dc4f1eb9ffb4d387573550',
    subject='icmpsensor detection is behind the wire',
    body="""\
The icmpsensor daemon takes packets from the capture later than they
arrive: by more than stats.lag_warning seconds (the message says how much).
Until the kernel's capture buffer and the sensor's queue are full nothing is
lost, but every notice comes that much late; past that, packets are dropped
and counted (and the capture-loss notice is raised past
stats.capture_loss_threshold). A second entry, at informational
priority, says when detection has caught up (under a second behind) and how
far behind it was at most.

Causes: a notice storm or a flood of packets from ever new sources (an
attacker can send one to blind a sensor), a burst larger than the sensor's
rate, or too little CPU. What to do: raise capture.workers (one process per
CPU shares the work by host pair), narrow capture.bpf_filter, or give the
sensor more CPU; stats.log's detection_lag and detection_lag_max, and the
metric icmpsensor_detection_lag_seconds, show the lag over time.
""",
)

MSGID_ERROR = _message(
    '90dbe942ae0a47af9d963dfd74b9fc32',
    subject='icmpsensor error',
    body="""\
The icmpsensor daemon hit an error. The message names it: a rejected
configuration reload (the old configuration stays in force), a notice that
could not be written to /var/log/icmpsensor (disk full, permissions), a
capture failure, or a notice the journal link could not classify.

What to do: read the message. For a configuration error run
`icmpsensor -c /etc/icmpsensor/icmpsensor.yaml --check-config`, fix the
file and reload. For write errors check free space and that
/var/log/icmpsensor belongs to user icmpsensor. If the daemon exited,
systemd restarts it (Restart=on-failure); `systemctl status icmpsensor`
shows the last lines.
""",
)


def journal_available(socket_path: str = JOURNAL_SOCKET) -> bool:
    return os.path.exists(socket_path)


class Journal:
    """Sends to journald when it is there; otherwise does nothing (after one warning on stderr). Never blocks:
    output/journalsocket.py (what journald does not take now waits in a bounded backlog, sent at the next entry
    or tick; `errors` counts the entries never delivered)."""

    def __init__(self, cfg: JournalConfig, socket_path: str = JOURNAL_SOCKET) -> None:
        self.cfg = cfg
        self.available = cfg.enabled and journal_available(socket_path)
        self._socket: JournalSocket | None = None
        if cfg.enabled and not self.available:
            say(f"icmpsensor: warning: journald socket {socket_path} not found; notices go to notice.log only")
        if self.available:
            self._socket = JournalSocket(socket_path)

    def reconfigure(self, cfg: JournalConfig) -> None:
        self.cfg = cfg

    @property
    def active(self) -> bool:
        """Whether send() sends anything (journald there and switched on)."""
        return self._socket is not None and self.cfg.enabled

    @property
    def errors(self) -> int:
        """Entries never delivered to journald (the backlog full or given up, or refused)."""
        return self._socket.dropped if self._socket is not None else 0

    @property
    def backlog(self) -> int:
        """Entries waiting for journald to take them."""
        return self._socket.backlog if self._socket is not None else 0

    def send(self, message: str, priority: int, **fields: object) -> None:
        if self._socket is None or not self.cfg.enabled:
            return
        self._socket.send(encode_entry({"MESSAGE": message, "PRIORITY": priority,
                                        "SYSLOG_IDENTIFIER": SYSLOG_IDENTIFIER, **fields}))

    def flush(self) -> None:
        """Send what waits, for as long as journald takes it (every tick)."""
        if self._socket is not None:
            self._socket.flush()

    def give_up(self) -> int:
        """At the stop: send what journald takes now, drop and count the rest; how many were dropped."""
        if self._socket is None:
            return 0
        self._socket.flush()
        return self._socket.give_up()

    def log(self, message: str, priority: int = syslog.LOG_INFO, message_id: str | None = None,
            **fields: object) -> None:
        """An operational message: to journald when available, else to stderr."""
        if self._socket is not None and self.cfg.enabled:
            if message_id is not None:
                fields["MESSAGE_ID"] = message_id
            self.send(message, priority, **fields)
        else:
            say(f"icmpsensor: {message}")


class JournalSink:
    """Every notice as one journal entry. After `deadline` (monotonic; set on shutdown) notices are skipped
    and counted: notice.log, written first, keeps every one, and the stop must not wait for journald."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.deadline: float | None = None
        self.skipped = 0

    def emit(self, notice: Notice) -> None:
        if not self.journal.active:
            return  # nothing would be sent: build nothing (a notice storm's flush without journald)
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.skipped += 1
            return
        self.journal.send(
            notice.msg,
            journal_priority(self.journal.cfg.priorities, notice.note),
            MESSAGE_ID=message_id(notice.note),
            NOTE=notice.note,
            SRC=notice.src,
            DST=notice.dst,
            UID=notice.uid,
            N=notice.n,
            BYTES_SENT=notice.bytes_sent,
            BYTES_RECEIVED=notice.bytes_received,
            START=f"{notice.start:.6f}",
            END=f"{notice.end:.6f}",
            SUB=notice.sub,
            **({"NOVEL_BYTES": notice.novel_bytes} if notice.novel_bytes >= 0 else {}),
            **({"EVIDENCE": notice.evidence} if notice.evidence else {}),
        )

    def close(self) -> None:
        pass


def message_id(note: str) -> str:
    """The MESSAGE_ID of a note's journal entries (the error id for a note the table lacks)."""
    known = BY_NAME.get(note)
    return known.message_id if known is not None else MSGID_ERROR
