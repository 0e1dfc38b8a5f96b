"""The capture -> detector queue: order, bounds, drops, wake-ups, and a two-thread run."""

from __future__ import annotations

import threading
import time

from icmpsensor.config.schema import Config
from icmpsensor.runmode.stats import CAPTURE_KEYS
from icmpsensor.source.batch import BATCH_META
from icmpsensor.source.live import BATCH_OVERHEAD, LiveSource
from icmpsensor.source.spscqueue import SpscQueue


def test_fifo_order_and_bounded_with_newest_dropped() -> None:
    queue: SpscQueue[int] = SpscQueue(3)
    assert [queue.put(i) for i in range(5)] == [True, True, True, False, False]
    assert queue.dropped == 2 and len(queue) == 3
    assert [queue.get() for _ in range(4)] == [0, 1, 2, None]
    assert queue.put(9) and queue.get() == 9


def test_get_wait_times_out_and_wakes() -> None:
    queue: SpscQueue[int] = SpscQueue(2)
    start = time.monotonic()
    assert queue.get_wait(0.05) is None
    assert time.monotonic() - start >= 0.04
    threading.Timer(0.05, lambda: queue.put(7)).start()
    assert queue.get_wait(5.0) == 7
    threading.Timer(0.05, queue.wake).start()
    start = time.monotonic()
    assert queue.get_wait(5.0) is None
    assert time.monotonic() - start < 4.0


def test_two_threads_pass_every_item_once_in_order_or_count_it_dropped() -> None:
    queue: SpscQueue[int] = SpscQueue(64)
    total = 200_000
    received: list[int] = []

    def consume() -> None:
        while True:
            item = queue.get_wait(1.0)
            if item is None:
                continue
            if item < 0:
                return
            received.append(item)

    consumer = threading.Thread(target=consume)
    consumer.start()
    for i in range(total):
        queue.put(i)
    dropped_items = queue.dropped
    while not queue.put(-1):  # the end marker must get through
        time.sleep(0.001)
    consumer.join(30)
    assert not consumer.is_alive()
    assert received == sorted(received) and len(set(received)) == len(received)
    assert len(received) + dropped_items == total


def test_peek_shows_the_oldest_item_and_leaves_it() -> None:
    q: SpscQueue[int] = SpscQueue(2)
    assert q.peek() is None
    q.put(1)
    q.put(2)
    assert q.peek() == 1 and len(q) == 2
    assert q.get() == 1 and q.peek() == 2
    assert q.get() == 2 and q.peek() is None
    q.put(3)  # past the wrap-around of the slots
    assert q.peek() == 3 and q.get() == 3


def test_a_byte_budget_refuses_the_batch_that_would_pass_it_and_counts_it() -> None:
    """A flood of big frames (9,000-byte jumbo frames; 64 KB ones on a SPAN port with GRO) fills a queue of 1,024
    batches with gigabytes before it fills by count: the queue is bounded by bytes too. The budget is what the
    queued items' sizes add up to; a batch that would pass it is dropped and counted; one batch is always taken
    by an empty queue (a batch larger than the whole budget still gets through, one at a time)."""
    queue: SpscQueue[str] = SpscQueue(100, max_bytes=1000)
    assert [queue.put(name, 400) for name in "abc"] == [True, True, False]
    assert queue.dropped == 1 and len(queue) == 2 and queue.queued_bytes == 800
    assert queue.put("d", 200) and queue.queued_bytes == 1000  # up to the budget, not past it
    assert not queue.put("e", 1)
    assert queue.get() == "a" and queue.queued_bytes == 600
    assert queue.put("f", 400) and queue.queued_bytes == 1000
    assert [queue.get() for _ in range(4)] == ["b", "d", "f", None] and queue.queued_bytes == 0
    assert queue.put("huge", 5000) and queue.queued_bytes == 5000  # alone in the queue
    assert not queue.put("g", 1) and queue.dropped == 3
    assert queue.get() == "huge" and queue.queued_bytes == 0


def test_without_a_byte_budget_only_the_count_bounds_the_queue() -> None:
    queue: SpscQueue[int] = SpscQueue(3)
    assert [queue.put(i, 10**9) for i in range(4)] == [True, True, True, False]
    assert queue.queued_bytes == 3 * 10**9


def test_two_threads_never_hold_more_than_the_byte_budget_plus_one_item() -> None:
    """The producer reads the consumer's count of bytes taken out, which may lag: it can only over-count what is
    queued, never let the queue hold more than the budget (or one item alone)."""
    budget, size = 10_000, 700
    queue: SpscQueue[int] = SpscQueue(1_000, max_bytes=budget)
    most = [0]
    done = threading.Event()

    def consume() -> None:
        while not done.is_set() or len(queue):
            most[0] = max(most[0], queue.queued_bytes)
            queue.get_wait(0.01)

    consumer = threading.Thread(target=consume)
    consumer.start()
    taken = sum(queue.put(i, size) for i in range(100_000))
    done.set()
    consumer.join(30)
    assert not consumer.is_alive()
    assert most[0] <= budget and taken + queue.dropped == 100_000 and queue.queued_bytes == 0


class _Handle:
    """A libpcap handle whose every next_batch is `frames` frames of `size` bytes, `batches` times, then nothing."""

    def __init__(self, batches: int, frames: int, size: int) -> None:
        self.left, self.frames, self.size = batches, frames, size

    def next_batch(self, count: int) -> tuple[bytes, bytes]:
        if not self.left:
            return b"", b""
        self.left -= 1
        meta = b"".join(BATCH_META.pack(0, 0, i * self.size, self.size) for i in range(self.frames))
        return bytes(self.frames * self.size), meta


def test_the_capture_thread_queues_a_jumbo_flood_within_capture_queue_bytes_and_counts_the_rest() -> None:
    """Measured before the bound: a 10-s flood of 9,000-byte frames at 100,000 a second grew a sensor that fell
    behind to 1.06 GB of RSS, nearly all of it queued batches (1,024 of up to 512 such frames: 4.7 GB). The live
    source's queue holds at most capture.queue_bytes of frames and batch records (each batch's bookkeeping counted
    as BATCH_OVERHEAD); every refused batch's frames are counted as queue drops, and the stats record and the
    metrics say how many bytes are queued."""
    cfg = Config().capture
    cfg.queue_bytes = 8 * 1024 * 1024
    source = LiveSource("lo", cfg, lambda linktype: None)
    try:
        batch_bytes = 512 * (9_000 + BATCH_META.size) + BATCH_OVERHEAD
        source.capture._drain(_Handle(100, 512, 9_000), source.queue)  # the detector takes nothing meanwhile
        kept = cfg.queue_bytes // batch_bytes
        assert len(source.queue) == kept and source.queue.queued_bytes == kept * batch_bytes <= cfg.queue_bytes
        assert source.capture.stats.read == 100 * 512 and source.capture.stats.queue_dropped == (100 - kept) * 512
        assert source.queue.dropped == 100 - kept
    finally:
        source.capture.stop(0.0)
    assert "queued_bytes" in CAPTURE_KEYS
