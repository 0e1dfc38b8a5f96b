"""`detection.profile: original` — the Zeek detector of BEHAVIOUR.md, re-created.

Same notes, thresholds (compared with `>`), switches and benign-payload check as the
original. Replies are compared with the last request seen (`reply_pairing:
last_request`, the original's way; `auto` means that here) or with the request they
answer (`matched`, the correction). Notices fire when a flow ends (idle timeout,
eviction, end of input) with `alerting: flow_end` (`auto` here), or as soon as their
condition holds with `realtime`.
"""

from __future__ import annotations

from icmpsensor.decode.packet import IcmpPacket
from icmpsensor.detect.flows import Flow, FlowDetector
from icmpsensor.notice.record import Notice
from icmpsensor.notice.types import ASYM_PAYLOAD, ASYM_PAYLOAD_FLOW, DATA_EXFIL

# The two default ping payloads the original ignores: the tail of the Linux/macOS
# 56-byte fill and the 32-byte Windows payload.
LINUX_PING_TAIL = bytes(range(0x20, 0x38))
WINDOWS_PING_PAYLOAD = b"abcdefghijklmnopqrstuvwabcdefghi"


def is_default_ping(payload: bytes) -> bool:
    """The original's benign-payload test (deliberately as loose as the original's)."""
    size = len(payload)
    if size == 56:
        return payload[32:] == LINUX_PING_TAIL
    return size == 32 and payload == WINDOWS_PING_PAYLOAD


class OriginalDetector(FlowDetector):
    def _ignored(self, payload: bytes) -> bool:
        if self.cfg.ignore_default_pings and is_default_ping(payload):
            self.stats.ignored_payloads += 1
            return True
        return super()._ignored(payload)

    def _packet(self, pkt: IcmpPacket, due: list[Notice]) -> None:
        if pkt.is_echo_request:
            self.stats.echo_requests += 1
            flow = self._on_request(pkt)
        elif pkt.is_echo_reply:
            self.stats.echo_replies += 1
            flow = self._on_reply(pkt, due)
        else:
            self.stats.other_icmp += 1
            return
        if flow is not None and self._realtime:
            self._evaluate(flow, pkt.ts, due)

    def _on_request(self, pkt: IcmpPacket) -> Flow | None:
        payload = pkt.payload
        if self._ignored(payload):
            return None
        flow = self._flow(pkt)
        flow.n += 1
        flow.orig_bytes += len(payload)
        self.last_novel = len(payload)  # the original has no novelty: every counted byte is suspect
        digest = hash(payload)
        if flow.last_request is not None and digest != flow.last_request:
            flow.changed_requests += 1
        flow.last_request = digest
        if self._matched:
            self._remember_request(pkt, digest)
        return flow

    def _on_reply(self, pkt: IcmpPacket, due: list[Notice]) -> Flow | None:
        payload = pkt.payload
        if self._ignored(payload):
            return None
        request_flow = self._request_flow(pkt)
        flow = self._flow(pkt)
        flow.n += 1
        flow.resp_bytes += len(payload)
        self.last_novel = len(payload)
        if request_flow is not None:
            request_flow.received_bytes += len(payload)
        if self._matched:
            compared = self._answered_request(pkt)
        else:
            compared = None if request_flow is None else request_flow.last_request
        if compared is None:
            self._unpaired(pkt, flow, due)
        elif compared != hash(payload):
            flow.reply_differs += 1
        return flow

    def _flow_ended(self, flow: Flow, ts: float, due: list[Notice]) -> None:
        if not self._realtime:
            self._evaluate(flow, ts, due)

    def _evaluate(self, flow: Flow, ts: float, due: list[Notice]) -> None:
        """Raise each note whose condition holds (once per flow when alerting in real time)."""
        if flow.allowlisted:
            return
        cfg = self.cfg
        enabled = self._enabled
        many_changes = flow.changed_requests > cfg.changed_requests_threshold
        if enabled & DATA_EXFIL.bit and many_changes and flow.orig_bytes > cfg.exfil_bytes_threshold:
            self._raise(flow, ts, DATA_EXFIL, "Exfil of size {requests} seen between {src} and {dst}. {span}", due)
        if enabled & ASYM_PAYLOAD.bit and flow.reply_differs > cfg.reply_differs_threshold:
            self._raise(flow, ts, ASYM_PAYLOAD, "{flow.reply_differs} ICMP echo replies from {src} to {dst} differed "
                        "from the request they were compared with. {span}", due)
        if enabled & ASYM_PAYLOAD_FLOW.bit and many_changes:
            self._raise(flow, ts, ASYM_PAYLOAD_FLOW, "ICMP echo request payload changed {flow.changed_requests} times "
                        "between {src} and {dst}. {span}", due)
