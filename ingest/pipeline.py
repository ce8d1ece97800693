"""Run the stages of a load on threads of their own, each one block ahead of the next.

Parsing (pyarrow), hashing (hashlib), H3 (h3ronpy), point-in-polygon (shapely) and most numpy work release
the GIL, so on two cores a block can be parsed while the one before it is located, and that one located
while the block before it is de-duplicated and stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar, cast

T = TypeVar("T")

_END = object()


class Prefetch(Iterator[T], Generic[T]):
    """``items``, each produced on a worker thread while the caller works on the one before.

    The first item is started at once, before anyone asks for it. An error raised producing an item is
    raised at that item. ``close()`` (also on leaving a ``with`` block) lets the item in progress finish,
    then closes ``items``.
    """

    def __init__(self, items: Iterator[T], name: str = "harmmap-stage") -> None:
        self._items = items
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pending: Future[object] | None = self._pool.submit(next, items, _END)

    def __next__(self) -> T:
        if self._pending is None:
            raise StopIteration
        item = self._pending.result()
        if item is _END:
            self._pending = None
            raise StopIteration
        self._pending = self._pool.submit(next, self._items, _END)
        return cast(T, item)

    def close(self) -> None:
        """Stop: wait for the item in progress, drop it, and close the source of items."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        self._pool.shutdown(wait=True)
        close = getattr(self._items, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Prefetch[T]:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
