"""journald output: one journal entry per notice, and the daemon's operational messages.

systemd-python's `journal.send` silently succeeds when there is no journal socket, so
availability is checked once, at start, by looking for the socket; without it the
sensor says so once on stderr and keeps writing notice.log.
"""

from __future__ import annotations

import os
import sys
import syslog

from icmpsensor.config import JournalConfig
from icmpsensor.notices import (
    NOTE_ASYM_PAYLOAD,
    NOTE_ASYM_PAYLOAD_FLOW,
    NOTE_DATA_EXFIL,
    NOTE_EXFIL_SUMMARY,
    NOTE_NON_ECHO_PAYLOAD,
    NOTE_SLOW_EXFIL,
    NOTE_TUNNEL,
    NOTE_UNPAIRED_ECHO_REPLY,
    Notice,
)

JOURNAL_SOCKET = "/run/systemd/journal/socket"
SYSLOG_IDENTIFIER = "icmpsensor"

# Fixed MESSAGE_IDs, explained in packaging/journal-catalog/icmpsensor.catalog (journalctl -x).
MESSAGE_IDS: dict[str, str] = {
    NOTE_DATA_EXFIL: "461816d2d78c4b66b4d0abfe1a4d1ca1",
    NOTE_UNPAIRED_ECHO_REPLY: "0b69892a922443d093c46849395b8546",
    NOTE_ASYM_PAYLOAD: "296e2e65a569404882f917adf61fec79",
    NOTE_ASYM_PAYLOAD_FLOW: "2493125d9b434e148351bceda2b30d21",
    NOTE_TUNNEL: "3bb57f191cb54b16a290204639d8f5bd",
    NOTE_NON_ECHO_PAYLOAD: "ce6fbc0248374d8681be5762395a8f97",
    NOTE_SLOW_EXFIL: "8273cf300b01473598ff4ca9d61e88bc",
    NOTE_EXFIL_SUMMARY: "f226f48e8cf146909fbdb8aa6f63dbc8",
}
# The key of each note under journald.priorities in the config.
PRIORITY_KEYS: dict[str, str] = {
    NOTE_DATA_EXFIL: "data_exfil",
    NOTE_UNPAIRED_ECHO_REPLY: "unpaired_echo_reply",
    NOTE_ASYM_PAYLOAD: "asym_payload",
    NOTE_ASYM_PAYLOAD_FLOW: "asym_payload_flow",
    NOTE_TUNNEL: "tunnel",
    NOTE_NON_ECHO_PAYLOAD: "non_echo_payload",
    NOTE_SLOW_EXFIL: "slow_exfil",
    NOTE_EXFIL_SUMMARY: "exfil_summary",
}
MSGID_STARTED = "c28a1ef6ce804f0cb4f2b5195d391842"
MSGID_STOPPED = "92fd69f2f0e842ec91c6eb754c5e89a1"
MSGID_RELOADED = "343714c842264f38a2a36e60040a11c0"
MSGID_STATS = "31652f7a481240218a8e172ba3ef981c"
MSGID_ERROR = "90dbe942ae0a47af9d963dfd74b9fc32"

_PRIORITY_VALUES = {
    "emerg": syslog.LOG_EMERG,
    "alert": syslog.LOG_ALERT,
    "crit": syslog.LOG_CRIT,
    "err": syslog.LOG_ERR,
    "warning": syslog.LOG_WARNING,
    "notice": syslog.LOG_NOTICE,
    "info": syslog.LOG_INFO,
    "debug": syslog.LOG_DEBUG,
}


def journal_available(socket_path: str = JOURNAL_SOCKET) -> bool:
    return os.path.exists(socket_path)


class Journal:
    """Sends to journald when it is there; otherwise does nothing (after one warning on stderr)."""

    def __init__(self, cfg: JournalConfig, socket_path: str = JOURNAL_SOCKET) -> None:
        self.cfg = cfg
        self.available = cfg.enabled and journal_available(socket_path)
        self.errors = 0
        self._send = None
        if cfg.enabled and not self.available:
            print(
                f"icmpsensor: warning: journald socket {socket_path} not found; "
                "notices go to notice.log only",
                file=sys.stderr,
            )
        if self.available:
            from systemd import journal

            self._send = journal.send

    def reconfigure(self, cfg: JournalConfig) -> None:
        self.cfg = cfg

    def send(self, message: str, priority: int, **fields: object) -> None:
        if self._send is None or not self.cfg.enabled:
            return
        try:
            self._send(
                message,
                PRIORITY=str(priority),
                SYSLOG_IDENTIFIER=SYSLOG_IDENTIFIER,
                **{k: str(v) for k, v in fields.items()},
            )
        except OSError:
            self.errors += 1

    def log(self, message: str, priority: int = syslog.LOG_INFO, message_id: str | None = None,
            **fields: object) -> None:
        """An operational message: to journald when available, else to stderr."""
        if self._send is not None and self.cfg.enabled:
            if message_id is not None:
                fields["MESSAGE_ID"] = message_id
            self.send(message, priority, **fields)
        else:
            print(f"icmpsensor: {message}", file=sys.stderr, flush=True)


class JournalSink:
    """Every notice as one journal entry."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def priority_of(self, note: str) -> int:
        level = getattr(self.journal.cfg.priorities, PRIORITY_KEYS.get(note, ""), "warning")
        return _PRIORITY_VALUES[level]

    def emit(self, notice: Notice) -> None:
        self.journal.send(
            notice.msg,
            self.priority_of(notice.note),
            MESSAGE_ID=MESSAGE_IDS.get(notice.note, MSGID_ERROR),
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
