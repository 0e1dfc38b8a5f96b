"""The notice types, each declared once: its Zeek name, config switch, default priority, journald
MESSAGE_ID and catalog text (as a Zeek script declares its notes with `redef enum Notice::Type`).

Adding a note type means adding one entry here and raising it in a detector: the config keys
(`detection.notices.<switch>`, `journald.priorities.<switch>`), the journald MESSAGE_ID and the
journal catalog (packaging/journal-catalog, rendered by `python -m icmpsensor.output.catalog`)
all come from this table.
"""

from __future__ import annotations


class NoteType:
    """One note type, immutable, compared by value. (A plain class, not a frozen dataclass: `--check-config`
    reads this table, and importing dataclasses would cost it ~10 ms.)"""

    __slots__ = ("bit", "body", "message_id", "name", "on", "priority", "profiles", "subject", "switch")
    name: str  # the note as Zeek writes it in notice.log, e.g. "ICMP::ICMP_DataExfil"
    switch: str  # its key under detection.notices and journald.priorities
    on: bool  # raised unless switched off
    priority: str  # default journald priority
    profiles: str  # "both", or "standard" for notes only the standard profile raises
    message_id: str  # journald MESSAGE_ID, explained in the catalog
    subject: str  # catalog: Subject (with @FIELD@ placeholders)
    body: str  # catalog: the explanation
    bit: int  # its bit in a flow's set of raised notes

    _FIELDS = ("name", "switch", "on", "priority", "profiles", "message_id", "subject", "body", "bit")

    def __init__(self, name: str, switch: str, on: bool, priority: str, profiles: str, message_id: str,
                 subject: str, body: str, bit: int) -> None:
        for field, value in zip(self._FIELDS, (name, switch, on, priority, profiles, message_id, subject, body, bit),
                                strict=True):
            object.__setattr__(self, field, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}: a NoteType is immutable")

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, field) for field in self._FIELDS)

    def __eq__(self, other: object) -> bool:
        return self._values() == other._values() if isinstance(other, NoteType) else NotImplemented

    def __hash__(self) -> int:
        return hash(self._values())

    def __reduce__(self) -> tuple[type[NoteType], tuple[object, ...]]:  # pickle and copy
        return NoteType, self._values()

    def __repr__(self) -> str:
        return "NoteType(" + ", ".join(f"{field}={getattr(self, field)!r}" for field in self._FIELDS) + ")"

    @property
    def switch_doc(self) -> str:
        return f"raise {self.name}" + (" (standard profile)" if self.profiles == "standard" else "")


NOTE_TYPES: list[NoteType] = []


def _note(name: str, switch: str, *, on: bool, priority: str, profiles: str, message_id: str, subject: str,
          body: str) -> NoteType:
    note = NoteType(name, switch, on, priority, profiles, message_id, subject, body, 1 << len(NOTE_TYPES))
    NOTE_TYPES.append(note)
    return note


DATA_EXFIL = _note(
    'ICMP::ICMP_DataExfil', 'data_exfil', on=True, priority='warning', profiles='both',
    message_id='461816d2d78c4b66b4d0abfe1a4d1ca1',
    subject='ICMP data exfiltration suspected from @SRC@ to @DST@',
    body="""\
icmpsensor raised the notice ICMP::ICMP_DataExfil for the flow @SRC@ -> @DST@
(uid @UID@): data is being carried inside ICMP echo ("ping") packets, as a
file transfer or a tunnel does. @BYTES_SENT@ bytes of payload went out in @N@
messages between @START@ and @END@ (epoch seconds); @BYTES_RECEIVED@ bytes
of echo-reply payload came back.

With the standard profile (the default) it fires as soon as the bytes @SRC@
sent that no exact benign ping template, no earlier payload and no answered
request explains (NOVEL_BYTES=@NOVEL_BYTES@) exceed
detection.novel_bytes_threshold, or reach detection.small_secret_bytes over
more than one changed payload (a small secret); the totals are those at that
moment, and an
ICMP::ICMP_ExfilSummary entry with the final totals follows when the flow
ends. With the original profile it fires when the flow ends and its request
payload bytes exceed detection.exfil_bytes_threshold while its request payload
changed more than detection.changed_requests_threshold times.

What to do: find the process on @SRC@ that sends these ICMP packets and what
it sent to @DST@ (the same flow appears in /var/log/icmpsensor/notice.log
under uid @UID@, with an evidence capture when enabled). If the traffic is
legitimate (a monitoring tool with variable payloads), add the host to
allowlist.hosts, or its payload to allowlist.payloads, in
/etc/icmpsensor/icmpsensor.yaml and run `systemctl reload icmpsensor`.
""",
)

UNPAIRED_ECHO_REPLY = _note(
    'ICMP::ICMP_UnpairedEchoReply', 'unpaired_echo_reply', on=False, priority='warning', profiles='both',
    message_id='0b69892a922443d093c46849395b8546',
    subject='ICMP echo reply from @SRC@ to @DST@ without a request',
    body="""\
icmpsensor raised the notice ICMP::ICMP_UnpairedEchoReply: an echo reply went
from @SRC@ to @DST@ for which the sensor saw no echo request. Echo replies
that answer nothing are a way to carry data into or out of a network without
a visible request.

It fires immediately, for each such reply, when detection.notices.
unpaired_echo_reply is true (it is off by default). It is noisy when the
mirror port sees only one direction of the traffic, when the sensor was just
started, or when requests were forgotten (detection.max_pending_requests,
detection.idle_timeout).

What to do: first check that the SPAN/mirror port carries both directions.
If it does, find what on @SRC@ emits ICMP echo replies unprompted. Switch the
notice off with detection.notices.unpaired_echo_reply: false and
`systemctl reload icmpsensor` if it only produces noise.
""",
)

ASYM_PAYLOAD = _note(
    'ICMP::ICMP_AsymPayload', 'asym_payload', on=True, priority='warning', profiles='both',
    message_id='296e2e65a569404882f917adf61fec79',
    subject='ICMP echo replies from @SRC@ to @DST@ differ from their requests',
    body="""\
icmpsensor raised the notice ICMP::ICMP_AsymPayload for the flow @SRC@ ->
@DST@ (uid @UID@): more echo replies than detection.reply_differs_threshold
carried a payload different from the request they answer (an honest host
echoes the request payload back unchanged). @BYTES_SENT@ bytes were sent in
@N@ messages between @START@ and @END@ (epoch seconds). This is how data is
sent back over an ICMP tunnel, in the replies.

It fires when the replying flow is evaluated (idle for detection.idle_timeout
seconds, evicted, or the sensor stops). Which request a reply is compared
with is set by detection.reply_pairing.

What to do: find the process on @SRC@ that answers pings with its own
payloads, and the requests from @DST@ that it answers. If the sensor uses
reply_pairing: last_request, bursts of honest pings also trigger this notice;
the default, matched, does not.
""",
)

ASYM_PAYLOAD_FLOW = _note(
    'ICMP::ICMP_AsymPayloadFlow', 'asym_payload_flow', on=True, priority='warning', profiles='both',
    message_id='2493125d9b434e148351bceda2b30d21',
    subject='ICMP echo requests from @SRC@ to @DST@ with changing payloads',
    body="""\
icmpsensor raised the notice ICMP::ICMP_AsymPayloadFlow for the flow @SRC@ ->
@DST@ (uid @UID@): the echo-request payload changed more than
detection.changed_requests_threshold times among its @N@ requests
(@BYTES_SENT@ bytes of payload between @START@ and @END@, epoch seconds).
Ordinary ping tools send the same payload every time; a changing payload
means data is being carried. When the byte count is large too, the same flow
also gets ICMP::ICMP_DataExfil.

It fires when the flow is evaluated (idle for detection.idle_timeout seconds,
evicted, or the sensor stops).

What to do: look at what on @SRC@ sends these pings to @DST@. A small number
of bytes is often a covert channel's control traffic or a probe; legitimate
tools with variable payloads can be listed in allowlist.payloads or
allowlist.hosts (then `systemctl reload icmpsensor`).
""",
)

TUNNEL = _note(
    'ICMP::ICMP_Tunnel', 'tunnel', on=True, priority='warning', profiles='standard',
    message_id='3bb57f191cb54b16a290204639d8f5bd',
    subject='ICMP tunnel or exfiltration tool recognised from @SRC@ to @DST@',
    body="""\
icmpsensor raised the notice ICMP::ICMP_Tunnel for the flow @SRC@ -> @DST@
(uid @UID@): the packets have the wire format of a known ICMP tunnelling or
exfiltration tool (ptunnel, ptunnel-ng, hans, icmptunnel, icmptx, pingtunnel,
icmpsh, icmpdoor, PyExfil, DET, Egress-Assess, Icmp-File-Transfer, hping3
file mode, nping with a payload). The tool and the evidence are in the
notice's sub field (SUB=@SUB@).

What to do: treat @SRC@ as compromised or as running an unauthorised tunnel;
find the process that sends the ICMP packets. Switch: detection.notices.tunnel.
""",
)

NON_ECHO_PAYLOAD = _note(
    'ICMP::ICMP_NonEchoPayload', 'non_echo_payload', on=True, priority='warning', profiles='standard',
    message_id='ce6fbc0248374d8681be5762395a8f97',
    subject='Data carried in ICMP messages other than echo from @SRC@ to @DST@',
    body="""\
icmpsensor raised the notice ICMP::ICMP_NonEchoPayload for the flow @SRC@ ->
@DST@ (uid @UID@): ICMP messages other than echo carried bytes their layout
does not explain: extra bytes after a timestamp, information or address-mask
message, any payload on an unassigned or deprecated type, an echo with a
non-zero code, or an error message (unreachable, time exceeded...) whose
quoted datagram cannot be a packet @DST@ sent. The reason is in the message.

What to do: no standard software sends such messages; find the process on
@SRC@ that crafts them. Threshold: detection.nonecho_bytes_threshold; switch:
detection.notices.non_echo_payload.
""",
)

SLOW_EXFIL = _note(
    'ICMP::ICMP_SlowExfil', 'slow_exfil', on=True, priority='warning', profiles='standard',
    message_id='8273cf300b01473598ff4ca9d61e88bc',
    subject='Slow ICMP data exfiltration from @SRC@ to @DST@',
    body="""\
icmpsensor raised the notice ICMP::ICMP_SlowExfil: @SRC@ sent @DST@ at least
detection.slow_exfil_min_bytes of novel data in ICMP within
detection.slow_exfil_window seconds, spread over packets too far apart for
any single flow to reach detection.novel_bytes_threshold ("low and slow").

What to do: as for ICMP::ICMP_DataExfil: find the process on @SRC@ that sends
the ICMP packets. Switch: detection.notices.slow_exfil.
""",
)

EXFIL_SUMMARY = _note(
    'ICMP::ICMP_ExfilSummary', 'exfil_summary', on=True, priority='notice', profiles='standard',
    message_id='f226f48e8cf146909fbdb8aa6f63dbc8',
    subject='End of a reported ICMP exfiltration flow from @SRC@ to @DST@',
    body="""\
icmpsensor raised the notice ICMP::ICMP_ExfilSummary: the flow @SRC@ -> @DST@
(uid @UID@), for which notices were raised while it ran, has ended (idle
timeout, eviction or sensor stop). It carries the flow's final totals:
@BYTES_SENT@ bytes sent (@NOVEL_BYTES@ novel), @BYTES_RECEIVED@ received, in
@N@ messages between @START@ and @END@ (epoch seconds), in the original
detector's notice format.

What to do: nothing more than for the notices raised while the flow ran (same
uid); this entry says the transfer has stopped and how large it was in the
end. Switch: detection.notices.exfil_summary.
""",
)

EXFIL_SPREAD = _note(
    'ICMP::ICMP_ExfilSpread', 'exfil_spread', on=True, priority='warning', profiles='standard',
    message_id='33c5d5fb0bb44591a8fc28138099d27f',
    subject='ICMP data spread over many peers by @SRC@ or towards @DST@',
    body="""\
icmpsensor raised the notice ICMP::ICMP_ExfilSpread: one host sent novel data
in ICMP to many destinations (a file in small pieces to hundreds of
addresses, hping3 --rand-dest, a sweep carrying data), or many sources sent
novel data to one destination, each flow under the per-flow thresholds. The
message names the host, the number of peers and the novel bytes
within detection.slow_exfil_window: at least
detection.spread_min_bytes over at least detection.spread_min_peers peers.
Ordinary monitoring (one host pinging many with a known ping, or with one
constant payload) adds no novel bytes and does not raise it.

What to do: as for ICMP::ICMP_DataExfil, on the host the message names.
Switch: detection.notices.exfil_spread.
""",
)

CAPTURE_LOSS = _note(
    # Zeek's own note for the same condition (policy/misc/capture-loss.zeek: a share of the traffic lost in
    # a measurement interval above CaptureLoss::too_much_loss, 0.1 by default), so that notice policies,
    # dashboards and rules written for Zeek's notice.log pick it up unchanged.
    'CaptureLoss::Too_Much_Loss', 'capture_loss', on=True, priority='warning', profiles='both',
    message_id='be9f050ad5c24ba1914441d7dc171fa3',
    subject='icmpsensor missed too much of the traffic it should have seen',
    body="""\
icmpsensor raised the notice CaptureLoss::Too_Much_Loss: in the last stats
interval (stats.interval seconds) the share of the packets the kernel
received for the sensor that were dropped before detection (by the kernel:
its capture buffer was full; by the sensor's queue: the detector was too
slow) exceeded stats.capture_loss_threshold. The message gives the share; sub
gives the interface, the interval and the counts. Traffic that was dropped
was not inspected: an exfiltration in it may have gone unreported. The
notice is raised at most once per stats interval, by the daemon itself (it
has no source or destination host).

What to do: kernel drops: raise capture.buffer_size; queue drops: narrow
capture.bpf_filter, raise capture.workers, or give the sensor more CPU
(stats.log and the Prometheus textfile, stats.prometheus_textfile, show
which). Drops the interface itself counts (interface_dropped) are not a
capture loss and are not counted. Threshold: stats.capture_loss_threshold
(0 switches the check off); switch: detection.notices.capture_loss.
""",
)

BY_NAME: dict[str, NoteType] = {note.name: note for note in NOTE_TYPES}
