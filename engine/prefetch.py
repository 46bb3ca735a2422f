"""Run an iterator a few items ahead in a worker thread.

The renderer decodes and shapes frames in one thread while the main thread
encodes: PyAV releases the GIL in its codecs and filter graphs, so both cores
work. The queue between them holds a handful of frames, so memory stays bounded.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from types import GeneratorType
from typing import Generic, TypeVar

Item = TypeVar("Item")

# How long a blocked put or get waits before it looks at the stop flag again.
POLL_SEC = 0.1


class _End:
    """Put on the queue after the last item, or with the error that ended it."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class Prefetcher(Generic[Item]):
    """Iterates `source` in a worker thread, at most `depth` items ahead.

    An exception raised by the source is raised again by the consumer's next().
    close() stops the worker and closes the source in the worker's thread, where
    it ran, so a generator's cleanup (closing its decoders) runs there too.
    """

    def __init__(self, source: Iterable[Item], depth: int, name: str) -> None:
        self._source = source
        self._queue: queue.Queue[Item | _End] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._ended = False
        self._thread = threading.Thread(target=self._fill, name=name, daemon=True)
        self._thread.start()

    def __iter__(self) -> Iterator[Item]:
        return self

    def __next__(self) -> Item:
        if self._ended:
            raise StopIteration
        item = self._queue.get()
        if isinstance(item, _End):
            self._ended = True
            self._thread.join()
            if item.error is not None:
                raise item.error
            raise StopIteration
        return item

    def close(self) -> None:
        """Stop the worker; safe to call more than once and after the end."""
        self._stop.set()
        self._thread.join()
        self._ended = True
        # Let go of the frames decoded ahead.
        self._queue = queue.Queue()

    def __enter__(self) -> Prefetcher[Item]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _fill(self) -> None:
        end = _End()
        try:
            for item in self._source:
                if not self._put(item):
                    return
        except BaseException as error:
            end = _End(error)
        finally:
            if isinstance(self._source, GeneratorType):
                self._source.close()
        self._put(end)

    def _put(self, item: Item | _End) -> bool:
        """Queue an item; False once the consumer has asked the worker to stop."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=POLL_SEC)
                return True
            except queue.Full:
                continue
        return False
