"""The capture -> detector queue: order, bounds, drops, wake-ups, and a two-thread run."""

from __future__ import annotations

import threading
import time

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
