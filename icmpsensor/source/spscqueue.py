"""A bounded single-producer / single-consumer queue between the capture and detector threads.

Lock-free on the data path: the producer only ever writes `_tail`, the consumer only
`_head`, and each publishes its index after touching the slot (CPython makes the
single attribute stores atomic). When the queue is full, `put` drops the newest item
and counts it: the capture thread never blocks on a slow detector. The only lock is
the Event a consumer sleeps on when the queue is empty.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class SpscQueue(Generic[T]):
    """Items are never None: get() and peek() answer None for an empty queue."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._slots: list[T | None] = [None] * capacity
        self._head = 0  # next slot to read; written by the consumer only
        self._tail = 0  # next slot to write; written by the producer only
        self._waiting = False
        self._wakeup = threading.Event()
        self.dropped = 0  # items refused because the queue was full; written by the producer only

    def __len__(self) -> int:
        return self._tail - self._head

    def put(self, item: T) -> bool:
        """Producer: enqueue, or drop the item and count it if the queue is full."""
        tail = self._tail
        if tail - self._head >= self.capacity:
            self.dropped += 1
            return False
        self._slots[tail % self.capacity] = item
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
            self._slots[head % self.capacity] = None
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
