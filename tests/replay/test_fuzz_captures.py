"""A fuzz regression for capture files: a few hundred deterministic mutations of a capture that raises
notices (flips, cuts, inserts, duplicated and zeroed ranges, huge caplen, broken record headers; pcap and
pcapng; timestamps in 1970, after 2038 and at the end of 2106), replayed in one process and with two
workers. Each must end with exit 0 or 66 and one line per problem (never 1, never a traceback), with the
same decode counters in both, and a capture broken at a known record must give exactly the notices of its
clean prefix."""

from __future__ import annotations

import io
import random
import signal
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dpkt
import pytest

from icmpsensor import cli
from icmpsensor.example import example_frames
from tests.hypothesis_counts import whole_suite

SEED = 20261203
MUTANTS_PER_BASE = 30 if whole_suite() else 14  # the fast loop: the first 14 of the same 30, two of each kind
EPOCHS = {"1970": 1.0, "2038": 2.0**31 + 256.0, "2106": 2.0**32 - 600.0, "today": 1_700_000_000.0}


@dataclass
class Mutant:
    name: str
    data: bytes
    prefix: bytes | None  # the clean capture of the records before the break, when the break is at a record


def base_capture(epoch: float, pcapng: bool) -> tuple[bytes, list[int]]:
    """The example capture (with its first frame at `epoch`) and the byte offset where each record starts."""
    first = example_frames()[0][0]
    out = io.BytesIO()
    writer = (dpkt.pcapng.Writer if pcapng else dpkt.pcap.Writer)(out, linktype=dpkt.pcap.DLT_EN10MB)
    starts = []
    for ts, frame in example_frames():
        starts.append(out.tell())
        writer.writepkt(frame, ts=epoch + ts - first)
    return out.getvalue(), starts


def mutants(data: bytes, starts: list[int], rng: random.Random, pcapng: bool) -> Iterator[Mutant]:
    header = starts[0]
    for i in range(MUTANTS_PER_BASE):
        kind = ("flip", "cut", "insert", "duplicate", "zero", "caplen", "record")[i % 7]
        at = rng.randrange(header, len(data))
        record = rng.randrange(1, len(starts))
        clean_prefix = data[: starts[record]]
        if kind == "flip":
            mutated = bytearray(data)
            for _ in range(rng.randint(1, 8)):
                mutated[rng.randrange(header, len(data))] ^= 1 << rng.randrange(8)
            yield Mutant(f"flip{i}", bytes(mutated), None)
        elif kind == "cut":
            whole = max((s for s in starts if s <= at), default=header)
            yield Mutant(f"cut{i}", data[:at], data[:whole])
        elif kind == "insert":
            yield Mutant(f"insert{i}", data[:at] + rng.randbytes(rng.randint(1, 64)) + data[at:], None)
        elif kind == "duplicate":
            size = rng.randint(1, 200)
            yield Mutant(f"duplicate{i}", data[:at] + data[at : at + size] + data[at:], None)
        elif kind == "zero":
            size = rng.randint(1, 200)
            yield Mutant(f"zero{i}", data[:at] + bytes(min(size, len(data) - at)) + data[at + size :], None)
        elif kind == "caplen":  # a record that claims a huge captured length
            field = starts[record] + (20 if pcapng else 8)  # pcapng EPB: captured length; pcap: incl_len
            value = rng.choice([0xFFFFFFFF, 0x7FFFFFFF, 1 << 20, 70000])
            yield Mutant(f"caplen{i}", data[:field] + struct.pack("<I", value) + data[field + 4 :], clean_prefix)
        else:  # a record header of garbage, and the capture cut short after it
            yield Mutant(f"record{i}", clean_prefix + rng.randbytes(rng.randint(4, 40)), None)


def cases() -> list[tuple[str, Mutant]]:
    rng = random.Random(SEED)
    found = []
    for epoch_name, epoch in EPOCHS.items():
        for pcapng in (False, True):
            data, starts = base_capture(epoch, pcapng)
            base = f"{epoch_name}-{'pcapng' if pcapng else 'pcap'}"
            found += [(base, m) for m in mutants(data, starts, rng, pcapng)]
    return found


CASES = cases()


@pytest.fixture
def in_process() -> Iterator[None]:
    """cli.main sets SIGPIPE's disposition; it is put back afterwards."""
    previous = signal.getsignal(signal.SIGPIPE)
    yield
    signal.signal(signal.SIGPIPE, previous)


def replay(path: Path, out: Path, workers: int, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, list[str]]:
    out.mkdir()
    code = cli.main(["-r", str(path), "--log-dir", str(out), "--workers", str(workers)])
    err = capsys.readouterr().err
    lines = (out / "notice.log").read_text().splitlines() if (out / "notice.log").exists() else []
    notices = sorted(line.split('"note":')[1].split(',"n":')[0] for line in lines)  # note, msg, sub, src, dst
    return code, err, notices


def decode_counters(err: str) -> str:
    """The summary line's decode counters (what every frame became), the same for any number of workers."""
    return err.split("decode: ", 1)[1].split("; detect:", 1)[0]


@pytest.mark.usefixtures("in_process")
@pytest.mark.parametrize("base, mutant", CASES, ids=[f"{b}-{m.name}" for b, m in CASES])
def test_a_mutated_capture_ends_with_0_or_66_and_keeps_what_came_before_the_break(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], base: str, mutant: Mutant) -> None:
    path = tmp_path / "mutant.cap"
    path.write_bytes(mutant.data)
    results = [replay(path, tmp_path / f"w{workers}", workers, capsys) for workers in (1, 2)]
    for code, err, _ in results:
        assert code in (0, 66), err
        assert "Traceback" not in err and "internal error" not in err, err
        errors = [line for line in err.splitlines() if line.startswith("icmpsensor: error:")]
        assert (code == 66) == (len(errors) == 1), err
    # Two workers count every frame as one process does. Their notices are one process's only for captures in
    # time order: a mutated timestamp can move one worker's clock where one process's moves for all pairs.
    assert decode_counters(results[0][1]) == decode_counters(results[1][1])
    if mutant.prefix is not None:
        clean = tmp_path / "prefix.cap"
        clean.write_bytes(mutant.prefix)
        code, err, notices = replay(clean, tmp_path / "prefix", 1, capsys)
        assert code == 0, err
        assert results[0][2] == notices
