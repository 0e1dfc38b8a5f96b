"""Capacity accounting: the bits a sender controlled beyond what a benign model of each field predicts.

The payload is measured in novel bytes (novelty.py, fingerprints.py). Every other field a sender sets
is measured here, in bits, against the way benign senders fill it; the detector adds the bits to the
flow's novel bytes (eight to a byte) and remembers which channel carried them:

* ``ident``/``seq`` — benign: one identifier per run, the sequence number one up per packet (in either
  byte order: hping3 writes host order) or by the same stride as the step before (fping -l numbers
  every packet it sends, to all its targets in turn), small gaps (lost replies) and repeats free. A
  step of d costs log2(1 + |d| - SEQ_FREE) bits. A new run
  (new identifier) is free within the run budget (RUN_BUDGET), and costs its identifier's and first
  sequence number's bits beyond it.
* ``time`` — a benign template's embedded clock (fingerprints.Benign.embedded_time): the offset
  embedded - capture stays put within a run, up to the sender-to-sensor jitter
  (``detection.clock_jitter``, the `jitter` argument). A change of the offset beyond it costs
  log2(1 + excess / TIME_UNIT) bits.
* ``length`` — benign: one payload size per run. A change of d bytes within a run costs
  log2(1 + |d|) bits; a new size at a new run is free within the run and parameter budgets.
* ``pattern`` — a template's per-run constant (a ``ping -p`` pattern, a fill byte): a new one at a new
  run is free within the run and parameter budgets, else it costs its bytes.
* ``fields`` — an unknown implementation's changing bytes: where a payload differs from the
  sender's previous one in a few short places, each place is read as an integer field (2, 4 or 8
  bytes, either byte order) and costs the bits it moved beyond a counter (+1) or a clock (seconds,
  milliseconds, microseconds, nanoseconds, or their sub-second part, or seconds as an IEEE double, against
  the capture clock, up to the same jitter). A place in decimal text (ASCII digits, at most one
  point: ``seq=000042``, ``t=1700000000.123456``, an ISO time) is also read as the number it spells,
  a counter or a clock at any power-of-ten rate, its seconds and minutes wrapping at 60.
  Data in such a field moves it at random and costs about its full width.
* ``options`` — IPv4 options and IPv6 hop-by-hop / destination options (decode keeps them,
  padding left out): their bytes, once per flow while they repeat, except Router Alert.
* ``nd-options``, ``extension``, ``quote`` — see nonecho.py.

Run budget: a monitoring system that starts a new short run every few seconds (``ping -c 1`` from
cron, Home Assistant's icmplib pings) changes identifier, sometimes size and pattern, at every run.
RUN_BUDGET run changes per flow are free, refilled at one per RUN_REFILL seconds; past that every run
change is charged. A new run that also changes the size or the pattern takes a token from a second,
smaller budget (PARAM_BUDGET, refilled one per PARAM_REFILL seconds). Known limit: data hidden in run
changes at or below those cadences is not counted.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass

from icmpsensor import accelerators
from icmpsensor.detect import nonecho

SEQ_FREE = 2  # sequence steps up to this far from +1 (lost replies, a repeat) cost nothing
TIME_UNIT = 1e-5  # resolution at which a larger move is charged (10 µs)
RUN_BUDGET = 10.0  # run changes free at once ...
RUN_REFILL = 5.0  # ... and one more per this many seconds
RUN_PAUSE = 5.0  # a flow quiet this long whose sequence number then jumps forward starts a new run (Windows)
# A new run that also changes the template's parameters (its size, its -p pattern) from the run before:
# PARAM_BUDGET such changes per flow are free, refilled at one per PARAM_REFILL seconds. Monitoring
# repeats its parameters run after run; `ping -c 1 -s SIZE` or `-p PATTERN` looped with new values does not.
PARAM_BUDGET = 10.0
PARAM_REFILL = 60.0
# A request whose few changed places may read as counters or clocks (field_bits) is the Python detector's (~40 µs,
# the reading itself in C): a flood of such requests ran at 0.009 of the mix with the reading in Python (red team,
# 2026-12-08). FIELD_READINGS of them at once, refilled one per FIELD_READING_REFILL seconds of packet time, over all
# flows; past that the differing bytes are charged as they are, in C (never less than fields carry: a flood over the
# budget may alert on a benign counter or clock), and counted (DetectorStats.fields_unread).
FIELD_READINGS = 1000.0
FIELD_READING_REFILL = 0.002
RUNS_REMEMBERED = 16  # runs side by side in one flow (several pingers on one host) followed each
MAX_FIELD_PLACES = 4  # a payload that differs in more places is charged byte for byte
MAX_FIELD_BYTES = 8
MAX_DECIMAL_DIGITS = 20  # a place in decimal text is read as numbers of at most this many digits each
MAX_DECIMAL_PLACE = 32  # ... in a place at most this long (an ISO time's changed part, its separators included)
_DECIMAL = frozenset(b"0123456789.")
_DECIMAL_RATES = tuple(10.0**k for k in range(10))  # a decimal clock: seconds with k decimals (ms, µs, ns: 3, 6, 9)
_CLOCK_RATES = (1.0, 1e3, 1e6, 1e9)  # seconds, ms, µs, ns per second of capture time
_COUNTER_FREE = 2
SAME_INSTANT = 5e-5  # two clocks of one payload whose send times differ by up to this much tell one (read one
# after the other, or a wall clock slewed against a monotonic one by NTP at 50 ppm)

Clock = tuple[float, float]  # a free clock reading: (its send time's offset from the capture clock, resolution), s
Reading = tuple[float, Clock | None]  # (bits, the clock the reading is, if a free one)


@dataclass(slots=True)
class FlowChannels:
    """A flow's capacity state beyond its last request's fields (created when first needed, so that a
    one-packet flow of a flood costs nothing more)."""

    other_size: int = -1  # the size before the last one (a path MTU probe alternates two)
    stride: int = 1  # the last step of the sequence number (fping -l counts every packet, all targets)
    run_due: float = 0.0  # token buckets (take_token): free run changes, free parameter changes ...
    param_due: float = 0.0
    pad_due: float = 0.0  # ... and free icmplib paddings
    carry: float = 0.0  # bits not yet a whole byte
    options: bytes = b""  # the last IP options seen
    # other runs side by side: identifier -> (last seq, size, time of its last request)
    runs: dict[int, tuple[int, int, float]] | None = None
    charged: dict[str, int] | None = None  # bytes charged per channel (the payload's are the rest)


Charges = list[tuple[str, float]]  # (channel, bits)


def request_header(state: FlowChannels, last: tuple[int, int, int], ident: int, seq: int, size: int,
                   now: float, gap: float) -> tuple[Charges, bool]:
    """What an echo request's identifier, sequence number and size carried beyond a ping's, given the flow's
    previous request's (`last`: identifier, seq, size) and the seconds since it (`gap`); and whether it was
    free to start a new run.

    Runs side by side (two pingers on one host) are followed each: the run left is remembered
    (RUNS_REMEMBERED), a known one is resumed; a new one takes a token from the run budget. So does a
    sequence number that moved on, either way, while its run paused for RUN_PAUSE: Windows ping.exe keeps
    identifier 1 and one sequence counter for the whole machine, so a script pinging host after host finds each
    host's counter moved on by the other hosts' runs; and behind a NAT one identifier's runs are those of several
    machines, each with its own counter, ahead of or behind the last."""
    last_ident, last_seq, last_size = last
    other_size = state.other_size
    if size != last_size:
        state.other_size = last_size
    if ident != last_ident:
        runs = state.runs
        if runs is None:
            runs = state.runs = {}
        runs[last_ident] = (last_seq, last_size, now - gap)
        if len(runs) > RUNS_REMEMBERED:
            del runs[next(iter(runs))]
        resumed = runs.pop(ident, None)
        if resumed is None:
            free, state.run_due = take_token(state.run_due, now, RUN_BUDGET, RUN_REFILL)
            if free:
                if size not in (last_size, other_size) and all(size != run[1] for run in runs.values()) \
                        and not param_change_free(state, now):  # a size none of the recent runs used
                    return [("length", length_bits(size, last_size))], True
                return [], True
            return [("ident", new_run_bits(ident, seq, last_ident, last_seq)),
                    ("length", length_bits(size, last_size))], False
        last_seq, last_size, left_at = resumed
        gap = now - left_at  # the run's own pause
    step = seq_delta(seq, last_seq)
    seq_cost = min(seq_bits(seq, last_seq), step_bits(step - state.stride))
    if seq_cost and gap >= RUN_PAUSE:
        free, state.run_due = take_token(state.run_due, now, RUN_BUDGET, RUN_REFILL)
        if free:  # the counter moved on between runs: a new run, the steps within it one up again
            seq_cost, step = 0.0, 1
    state.stride = step
    return [("seq", seq_cost), ("length", length_bits(size, last_size, other_size))], True


def options_bits(state: FlowChannels, options: bytes, now: float = 0.0, ipv6: bool = False,
                 tolerance: float = 300.0) -> float:
    """IP options count their bytes once while they repeat (option_bytes)."""
    if options == state.options:
        return 0.0
    state.options = options
    return 8.0 * option_bytes(options, now, ipv6, tolerance)


def pattern_bits(state: FlowChannels, session: bytes | None, new_session: bytes | None, run_free: bool,
                 now: float, random_per_run: bool = False) -> float:
    """A template's per-run constant that changed with a new run costs its bytes, unless the run was free
    (the run budget) and so was the change (the parameter budget; `random_per_run`: a template that draws
    it afresh every run, fingerprints.RANDOM_SESSION_TEMPLATES, needs only the run budget)."""
    if session is None or new_session is None or new_session == session:
        return 0.0
    if run_free and (random_per_run or param_change_free(state, now)):
        return 0.0
    return 8.0 * len(new_session)


def param_change_free(state: FlowChannels, now: float) -> bool:
    """Whether a new run may change the template's parameters for free (the parameter budget)."""
    free, state.param_due = take_token(state.param_due, now, PARAM_BUDGET, PARAM_REFILL)
    return free


def random_padding(payload: bytes, seq: int) -> bool:
    """Whether a request is laid out as a random-padding monitoring library's (icmplib_layout, pythonping_layout)."""
    return icmplib_layout(payload, seq) or pythonping_layout(payload, seq)


def padding_free(state: FlowChannels, now: float) -> bool:
    """Whether a request in a random_padding layout is within the flow's monitoring budget (one for both
    libraries). Asked only of such a request: the flow's FlowChannels is made then (a flood's flows make none)."""
    free, state.pad_due = take_token(state.pad_due, now, ICMPLIB_BURST, ICMPLIB_REFILL)
    return free


def charge(state: FlowChannels, channel: str, bits: float) -> int:
    """Add `bits` carried by `channel`: the whole bytes they complete (with the bits carried over), which
    the caller adds to the flow's novel bytes."""
    bits += state.carry
    whole = int(bits // 8)
    state.carry = bits - 8 * whole
    if whole:
        charged = state.charged
        if charged is None:
            charged = state.charged = {}
        charged[channel] = charged.get(channel, 0) + whole
    return whole


def step_bits(delta: int, free: int = SEQ_FREE) -> float:
    """Bits in an integer that moved `delta` away from its predicted value, the first `free` free."""
    excess = abs(delta) - free
    return math.log2(1 + excess) if excess > 0 else 0.0


def seq_delta(seq: int, expected: int) -> int:
    """seq - expected on the 16-bit circle, in -32768..32767."""
    return (seq - expected + 0x8000) % 0x10000 - 0x8000


def _swap16(value: int) -> int:
    return (value & 0xFF) << 8 | (value >> 8 & 0xFF)


def seq_bits(seq: int, last_seq: int) -> float:
    """Bits in a sequence number within a run: one up from the last is free, in network byte order or in
    host byte order on a little-endian sender (hping3 writes it so: antirez/hping sendicmp.c)."""
    step = min(abs(seq_delta(seq, last_seq + 1)), abs(seq_delta(_swap16(seq), _swap16(last_seq) + 1)))
    return step_bits(step)


def new_run_bits(ident: int, seq: int, last_ident: int, last_seq: int) -> float:
    """What a run change carries: the new identifier (against the old one: pid and kernel ping-socket
    identifiers count up) and the first sequence number (0, 1, or the old run's next: Windows counts on)."""
    ident_bits = step_bits(seq_delta(ident, last_ident), 16)
    first = min(abs(seq_delta(seq, 0)), abs(seq_delta(seq, 1)), abs(seq_delta(seq, last_seq + 1)))
    return ident_bits + step_bits(first)


def time_bits(offset: float, last_offset: float, jitter: float) -> float:
    """Bits in an embedded clock whose offset to the capture clock moved from last_offset to offset, of
    which `jitter` seconds are free."""
    excess = abs(offset - last_offset) - jitter
    return math.log2(1 + excess / TIME_UNIT) if excess > 0 else 0.0


def length_bits(size: int, last_size: int, other_size: int = -1) -> float:
    """Bits in a payload size within a run: none for the size before or the one before that (a path MTU
    probe alternates two sizes), else log2(1 + the change)."""
    if size in (last_size, other_size):
        return 0.0
    return math.log2(1 + abs(size - last_size))


def take_token(due: float, now: float, burst: float, refill: float) -> tuple[bool, float]:
    """A token bucket of `burst` tokens refilled one per `refill` seconds, kept as one float per flow
    (GCRA's theoretical arrival time `due`): (free?, the new `due`) after asking for one token at `now`."""
    due = max(due, now)
    if due - now <= (burst - 1) * refill:
        return True, due + refill
    return False, due


def _places(a: bytes, b: bytes) -> list[tuple[int, int]] | None:
    """The runs [start, end) of positions where equal-length a and b differ (gaps of one equal byte joined,
    and the digits of one decimal number), or None when there are more than MAX_FIELD_PLACES or one is
    longer than MAX_FIELD_BYTES (decimal text: MAX_DECIMAL_PLACE)."""
    n = len(a)
    x = (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(n, "big")
    places: list[tuple[int, int]] = []
    i = 0
    while i < n:
        if not x[i]:
            i += 1
            continue
        start = i
        while i < n and (x[i] or (i + 1 < n and x[i + 1])):
            i += 1
        if places and _DECIMAL.issuperset(a[places[-1][1] : start]) \
                and _decimal_segments(a, b, places[-1][0], i) is not None:
            start = places.pop()[0]  # the same decimal number: "21.000899" -> "22.000818" is one place
        elif len(places) == MAX_FIELD_PLACES:
            return None
        if i - start > MAX_FIELD_BYTES and _decimal_segments(a, b, start, i) is None:
            return None
        places.append((start, i))
    return places


def _decimal_segments(a: bytes, b: bytes, start: int, end: int) -> list[tuple[int, int]] | None:
    """The runs of decimal text (ASCII digits and points, in both payloads) in the place [start, end), if
    the place is only those and separators the two payloads share (``12:00:59`` -> ``12:01:00``)."""
    if end - start > MAX_DECIMAL_PLACE:
        return None
    segments: list[tuple[int, int]] = []
    first = -1
    for i in range(start, end):
        if a[i] in _DECIMAL and b[i] in _DECIMAL:
            if first < 0:
                first = i
            continue
        if a[i] != b[i]:
            return None
        if first >= 0:
            segments.append((first, i))
            first = -1
    if first >= 0:
        segments.append((first, end))
    return segments or None


def _decimal_number(a: bytes, b: bytes, start: int, end: int) -> tuple[int, int, int] | None:
    """(new, old, digits): the numbers the decimal text around [start, end) spells (the same span in both
    payloads: ASCII digits with at most one point, at the same position)."""
    lo, hi, n = start, end, len(a)
    while lo > 0 and a[lo - 1] in _DECIMAL and b[lo - 1] in _DECIMAL:
        lo -= 1
    while hi < n and a[hi] in _DECIMAL and b[hi] in _DECIMAL:
        hi += 1
    new, old = a[lo:hi], b[lo:hi]
    if new.count(b".") > 1 or old.count(b".") > 1 or old.find(b".") != new.find(b"."):
        return None  # a number has one point at most, at the same place in both
    new, old = new.replace(b".", b""), old.replace(b".", b"")
    if not 0 < len(new) <= MAX_DECIMAL_DIGITS:
        return None
    return int(new), int(old), len(new)


def _decimal_place_cost(a: bytes, b: bytes, start: int, end: int, dt: float, jitter: float) -> Reading:
    """The place [start, end) read as decimal text, a number per segment (inf: it is not); the clock of a
    one-number place. No two places read the same number: _places joins the places of one number."""
    segments = _decimal_segments(a, b, start, end)
    if segments is None:
        return math.inf, None
    cost, clock = 0.0, None
    for seg_start, seg_end in segments:
        number = _decimal_number(a, b, seg_start, seg_end)
        if number is None:
            return math.inf, None
        bits, clock = _decimal_cost(*number, dt, jitter)
        cost += bits
    return cost, clock if len(segments) == 1 else None


def _decimal_cost(new: int, old: int, digits: int, dt: float, jitter: float) -> Reading:
    """The cheapest reading of a decimal number as a counter (+1; minutes wrap at 60, hours at 24) or a
    clock at a power-of-ten rate (its whole range, its part within a second, or within a minute)."""
    delta = new - old
    cost = step_bits(delta - 1, _COUNTER_FREE)
    for wrap in (60, 24):
        if new < wrap and old < wrap:
            cost = min(cost, step_bits((delta - 1 + wrap // 2) % wrap - wrap // 2, _COUNTER_FREE))
    if not cost:
        return 0.0, None
    clock = None
    room = 10**digits
    for rate in _DECIMAL_RATES:
        free = rate * jitter + 1
        residual = delta - rate * dt
        cost, clock = _cheaper(cost, clock, residual, free, rate)
        for wrap in (rate, 60 * rate):  # the part within a second (a µs field), within a minute (ISO's seconds)
            if wrap > 1 and new < wrap and old < wrap and room >= wrap:
                cost, clock = _cheaper(cost, clock, (residual + wrap / 2) % wrap - wrap / 2, free, rate)
    return cost, clock


def _cheaper(cost: float, clock: Clock | None, residual: float, free: float, rate: float) -> Reading:
    """The reading so far or a clock reading off by `residual` units of 1/`rate` s, whichever costs less; a
    clock that costs nothing keeps what it says of the send time (its offset from the capture clock)."""
    bits = _excess_bits(residual, free)
    if bits >= cost:
        return cost, clock
    return bits, None if bits else (residual / rate, 1.0 / rate)


def _field_cost(a: bytes, b: bytes, start: int, end: int, dt: float, jitter: float) -> Reading:
    """The cheapest reading of the differing place [start, end) as a 2-, 4- or 8-byte integer field, little-
    or big-endian, that counts by one or runs with the capture clock (dt seconds, up to `jitter` seconds off),
    and the clock that reading is (None: a counter, or no reading for free)."""
    best, best_clock = 8.0 * (end - start), None
    for width in (2, 4, 8):
        lo = start - start % width
        if end > lo + width or lo + width > len(a):
            continue
        for order in ("little", "big"):
            new = int.from_bytes(a[lo : lo + width], order)  # type: ignore[arg-type]
            old = int.from_bytes(b[lo : lo + width], order)  # type: ignore[arg-type]
            delta = new - old
            cost, clock = step_bits(delta - 1, _COUNTER_FREE), None
            if not cost:
                return 0.0, None
            for rate in _CLOCK_RATES:
                free = rate * jitter + 1
                residual = delta - rate * dt
                cost, clock = _cheaper(cost, clock, residual, free, rate)
                # a sub-second part (tv_usec, tv_nsec) in a field wide enough for a whole second of it: a 2-byte
                # field is no microseconds part (any change of it would be a few ms of nanoseconds: free)
                if rate > 1 and new < rate and old < rate and 1 << 8 * width > rate:
                    cost, clock = _cheaper(cost, clock, (residual + rate / 2) % rate - rate / 2, free, rate)
            if cost < best:
                best, best_clock = cost, clock
    if end - start <= 8 and len(a) >= 8:
        double = _double_clock_cost(a, b, start, end, dt, jitter)
        if double < best:
            best, best_clock = double, None
    return best, best_clock


def _double_clock_cost(a: bytes, b: bytes, start: int, end: int, dt: float, jitter: float) -> float:
    """A place inside an 8-byte IEEE double holding seconds (ping3 writes struct.pack("!d", time.time())):
    free if it moved with the capture clock, else the microseconds it is off."""
    lo = start - start % 8
    if end > lo + 8 or lo + 8 > len(a):
        return math.inf
    best = math.inf
    for fmt in (">d", "<d"):
        new, old = struct.unpack_from(fmt, a, lo)[0], struct.unpack_from(fmt, b, lo)[0]
        if math.isfinite(new) and math.isfinite(old) and abs(new) < 1e12:
            best = min(best, time_bits(new - old - dt, 0.0, jitter))
    return best


def _excess_bits(residual: float, free: float) -> float:
    excess = abs(residual) - free
    return math.log2(1 + excess) if excess > 0 else 0.0


def field_bits_reference(current: bytes, previous: bytes, dt: float, jitter: float) -> float | None:
    """Bits in the few places where a payload differs from the same sender's previous one (both the
    same length), read as counters and clocks (`jitter` seconds free); None when the difference is not
    a few short places.

    The clocks of one payload tell one send time: the jitter allowance is one clock's (the one that leaves
    the least to charge), and every other place read as a free clock is charged for how far its send time is
    from that one's (beyond SAME_INSTANT or the coarser clock's resolution). Several fields each moving like
    a clock by its own amount within the allowance would otherwise carry ~23 bits each, every request."""
    places = _places(current, previous)
    if places is None:
        return None
    total, clocks = 0.0, []
    for start, end in places:
        cost, clock = min(_field_cost(current, previous, start, end, dt, jitter),
                          _decimal_place_cost(current, previous, start, end, dt, jitter), key=_by_cost)
        if clock is None:
            total += cost
        else:
            clocks.append(clock)
    if len(clocks) > 1:
        total += min(sum(_apart_bits(clock, anchor) for clock in clocks) for anchor in clocks)
    return total


_fastflows = accelerators.flows_extension
if _fastflows is not None:
    _fastflows.bind_fields(MAX_FIELD_PLACES, MAX_FIELD_BYTES, MAX_DECIMAL_DIGITS, MAX_DECIMAL_PLACE, _COUNTER_FREE,
                           SAME_INSTANT, TIME_UNIT, _CLOCK_RATES, _DECIMAL_RATES, FIELD_READINGS, FIELD_READING_REFILL)
    # field_bits_reference in C (~0.2 ms a reading in Python: a flood of few-field changes ran at 0.009 of the mix)
    field_bits: Callable[[bytes, bytes, float, float], float | None] = _fastflows.field_bits
else:
    field_bits = field_bits_reference


def _by_cost(reading: Reading) -> tuple[float, bool]:
    return reading[0], reading[1] is not None  # at equal cost, a counter: digits read as a binary clock are not


def _apart_bits(clock: Clock, anchor: Clock) -> float:
    """Bits in a clock's send time (offset from the capture clock, resolution) away from another's."""
    (offset, resolution), (anchor_offset, anchor_resolution) = clock, anchor
    slack = max(SAME_INSTANT, resolution, anchor_resolution)
    return _excess_bits((offset - anchor_offset) / resolution, slack / resolution)


# -- options ---------------------------------------------------------------------------------

_ROUTER_ALERT = (b"\x94\x04\x00\x00", b"\x05\x02\x00\x00", b"\x05\x02\x00\x01", b"\x05\x02\x00\x02")


def option_bytes(options: bytes, now: float = 0.0, ipv6: bool = False, tolerance: float = 300.0) -> int:
    """Bytes of sender-set IP options that carry something: all but a Router Alert (MLD, RSVP), and of an IPv4
    timestamp option (`ping -T`) its fields that are not what the hosts on the path put there (timestamp_bytes;
    `now` the capture time, `tolerance` seconds)."""
    if not options or options in _ROUTER_ALERT:
        return 0
    if ipv6 or IP_TIMESTAMP not in options:
        return len(options)
    charged, pos, n = 0, 0, len(options)
    while pos < n:
        size = options[pos + 1] if pos + 1 < n else 0
        if size < 2 or pos + size > n:
            return charged + n - pos
        option = options[pos : pos + size]
        charged += timestamp_bytes(option, now, tolerance) if option[0] == IP_TIMESTAMP else size
        pos += size
    return charged


IP_TIMESTAMP = 68  # RFC 791's Internet Timestamp option
_TS_UNIT = {0: 4, 1: 8, 3: 8}  # its flag: timestamps only, each with the stamping host's address, prespecified ones


def timestamp_bytes(option: bytes, now: float, tolerance: float) -> int:
    """The bytes of an IPv4 timestamp option (RFC 791: type, length, pointer, overflow and flag, then slots) that
    carry something: the whole option where its layout is not RFC 791's; else each timestamp filled in (before
    the pointer) that is not the time of day within `tolerance` of the capture's (Linux stamps the sender's own,
    routers theirs: `ping -T tsonly` was charged 40 bytes a request, red team 2026-12-08), and the bytes of the
    slots left that are not zero (a prespecified address excepted). The addresses are free: the path's routers'."""
    size = len(option)
    flag = option[3] & 0x0F if size >= 4 else -1
    unit, pointer = _TS_UNIT.get(flag, 0), option[2] if size >= 4 else 0
    if not unit or (size - 4) % unit or pointer < 5 or (pointer - 5) % unit or pointer > size + 1:
        return size
    charged = 0
    for at in range(4, size, unit):
        stamp = at + unit - 4  # a slot's timestamp: its last 4 bytes
        if at < pointer - 1:
            charged += 0 if nonecho.time_of_day(int.from_bytes(option[stamp : at + unit], "big"), now, tolerance) else 4
        else:
            left = option[stamp if flag == 3 else at : at + unit]  # a prespecified address is free
            charged += len(left) - left.count(0)
    return charged


# -- random-padding monitoring libraries -------------------------------------------------------
#
# Their layouts are free within one budget per flow (padding_free): at monitoring volume, not at exfiltration
# volume. Known limit: a patient sender in either layout below the budget (one request per ICMPLIB_REFILL).

# icmplib (ValentinBELYN/icmplib, models.py ICMPRequest._random_byte_message): each request's payload
# is `payload_size` (56) characters drawn uniformly from a-z, A-Z, 0-9. Used by Home Assistant's ping
# integration. Uniform draws show all three classes: 56 such characters lacking one (hex, decimal,
# lower-case text) are data, not icmplib. Other sizes are not recognised.
_LOWER = frozenset(b"abcdefghijklmnopqrstuvwxyz")
_UPPER = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DIGITS = frozenset(b"0123456789")
_ALNUM = bytes(sorted(_LOWER | _UPPER | _DIGITS))
_NOT_ALNUM = bytes(sorted(set(range(256)) - set(_ALNUM)))
_DIGIT_BYTES = bytes(sorted(_DIGITS))
_UPPER_BYTES = bytes(sorted(_UPPER))
ICMPLIB_MIN_LETTERS = 8  # of 56 uniform draws, 23.5 capitals (and small letters) are expected
ICMPLIB_SIZE = 56  # icmplib's default payload_size (ping(), multiping(), ICMPRequest)
ICMPLIB_MAX_SEQ = 64  # a monitoring run's count is a handful
# Monitoring volume: Home Assistant pings each host 5 times per scan interval (30 s by default; users
# set 10 s). This many such requests per flow are free at once, refilled at one per ICMPLIB_REFILL seconds
# (count 5 every 10 s with room to spare); past that they count.
ICMPLIB_BURST = 20.0
ICMPLIB_REFILL = 1.5


# pythonping (alessandromaggio/pythonping): ping() draws its payload once per call, `size` characters of
# A-Z and 0-9 (utils.random_text; size 1 by default), and sends it in each of the call's requests, under a
# random identifier, seq from 1 (executor.Communicator.run), both in host byte order on the wire (seen live:
# seq 0x0100, 0x0200... from a little-endian host; icmp.py packs with "BBHHH"): a run's first request is new,
# the others repeat it. Recognised up to PYTHONPING_MAX_SIZE characters; the monitoring budget is icmplib's
# (a call a token).
PYTHONPING_MAX_SIZE = 64
PYTHONPING_MIN_DIGITS = 16  # from this size on, uniform draws put a digit and a capital in it
_NOT_UPPER_DIGIT = bytes(sorted(set(range(256)) - _UPPER - _DIGITS))
_FIRST_SEQ = (1, 0x0100)


def pythonping_layout(payload: bytes, seq: int) -> bool:
    """Whether an echo request looks like the first of a pythonping call: seq 1 (in either byte order), 1 to 64
    characters of A-Z and 0-9 (from 16 characters on, both present)."""
    n = len(payload)
    if seq not in _FIRST_SEQ or not 0 < n <= PYTHONPING_MAX_SIZE:
        return False
    if payload.translate(None, _NOT_UPPER_DIGIT) != payload:
        return False
    digits = n - len(payload.translate(None, _DIGIT_BYTES))
    return n < PYTHONPING_MIN_DIGITS or 0 < digits < n


def icmplib_layout(payload: bytes, seq: int) -> bool:
    """Whether an echo request looks like icmplib's: its default 56 random characters, with digits, capitals
    and small letters all present as uniform draws put them there (a payload lacking one happens to
    icmplib once in ~20,000 requests), in a short run (icmplib's ping() numbers a run's requests from 0)."""
    if len(payload) != ICMPLIB_SIZE or seq >= ICMPLIB_MAX_SEQ or payload.translate(None, _NOT_ALNUM) != payload:
        return False
    digits = len(payload) - len(payload.translate(None, _DIGIT_BYTES))
    upper = len(payload) - len(payload.translate(None, _UPPER_BYTES))
    lower = len(payload) - digits - upper
    return digits >= 1 and upper >= ICMPLIB_MIN_LETTERS and lower >= ICMPLIB_MIN_LETTERS
