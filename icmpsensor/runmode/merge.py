"""The k-way merge of N replay workers' notices into one notice.log in ts order (runmode/replay.py)."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator, Sequence

from icmpsensor.notice.record import Notice


class NoticeMerge:
    """k-way merge of the workers' notices by ts, released as the workers' watermarks pass them."""

    def __init__(self, workers: int) -> None:
        self.watermarks = [float("-inf")] * workers  # +inf once a worker is done
        self._heap: list[tuple[float, int, int, Notice]] = []
        self._arrival = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, worker: int, notices: Sequence[Notice], watermark: float) -> None:
        for notice in notices:
            heapq.heappush(self._heap, (notice.ts, worker, next(self._arrival), notice))
        if watermark > self.watermarks[worker]:
            self.watermarks[worker] = watermark

    def done(self, worker: int, notices: Sequence[Notice]) -> None:
        self.add(worker, notices, float("inf"))

    def ready(self) -> Iterator[Notice]:
        """The notices no worker can precede any more, in ts order."""
        floor = min(self.watermarks)
        heap = self._heap
        while heap and heap[0][0] <= floor:
            yield heapq.heappop(heap)[3]

    def rest(self) -> Iterator[Notice]:
        """Everything still held, in ts order (end of input, or a failure)."""
        heap = self._heap
        while heap:
            yield heapq.heappop(heap)[3]
