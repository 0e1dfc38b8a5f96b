"""A bounded single-producer / single-consumer queue between the capture and detector threads.

Lock-free on the data path: the producer only ever writes `_tail`, the consumer only
`_head`, and each publishes its index after touching the slot (CPython makes the
single attribute stores atomic). When the queue is full, `put` drops the newest item
and counts it: the capture thread never blocks on a slow detector. The only lock is
the Event a consumer sleeps on when the queue is empty.

Full means `capacity` items, or (with `max_bytes`) items whose sizes would add up to more
than `max_bytes`; an empty queue takes any one item. The bytes queued are two counters
too, one per side (put in, taken out): the producer may read a stale count of what was
taken out, which over-counts what is queued, never under-counts it.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class SpscQueue(Generic[T]):
    """Items are never None: get() and peek() answer None for an empty queue."""

    def __init__(self, capacity: int, max_bytes: int = 0) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.max_bytes = max_bytes  # 0: no bound on the items' sizes
        self._slots: list[T | None] = [None] * capacity
        self._sizes = [0] * capacity
        self._head = 0  # next slot to read; written by the consumer only
        self._tail = 0  # next slot to write; written by the producer only
        self._bytes_in = 0  # sizes of the items put; written by the producer only
        self._bytes_out = 0  # ... and taken; written by the consumer only
        self._waiting = False
        self._wakeup = threading.Event()
        self.dropped = 0  # items refused because the queue was full; written by the producer only

    def __len__(self) -> int:
        return self._tail - self._head

    @property
    def queued_bytes(self) -> int:
        """The sizes of the items queued, added up."""
        return self._bytes_in - self._bytes_out

    def put(self, item: T, size: int = 0) -> bool:
        """Producer: enqueue an item of `size` bytes, or drop it and count it if the queue is full."""
        tail = self._tail
        queued = tail - self._head
        if queued >= self.capacity or (
                queued and 0 < self.max_bytes < self._bytes_in + size - self._bytes_out):
            self.dropped += 1
            return False
        slot = tail % self.capacity
        self._slots[slot] = item
        self._sizes[slot] = size
        self._bytes_in += size
        self._tail = tail + 1
        if self._waiting:
            self._wakeup.set()
        return True

    def peek(self) -> T | None:
        """Consumer: the oldest item, left in the queue; None when empty."""
        head = self._head
        if head == self._tail:
            return None
        return self._slots[head % self.capacity]

    def get(self) -> T | None:
        """Consumer: the oldest item, or None when empty."""
        item = self.peek()
        if item is not None:
            head = self._head
            slot = head % self.capacity
            self._slots[slot] = None
            self._bytes_out += self._sizes[slot]
            self._head = head + 1
        return item

    def get_wait(self, timeout: float) -> T | None:
        """Consumer: the oldest item, sleeping up to `timeout` seconds for one to arrive."""
        item = self.get()
        if item is not None:
            return item
        self._wakeup.clear()
        self._waiting = True
        try:
            item = self.get()  # re-check: the producer may have put just before _waiting was set
            if item is None and self._wakeup.wait(timeout):
                item = self.get()
        finally:
            self._waiting = False
        return item

    def wake(self) -> None:
        """Wake a sleeping consumer without an item (e.g. to make it notice a stop request)."""
        self._wakeup.set()
