"""Run the stages of a load on threads of their own, each one block ahead of the next.

Parsing (pyarrow), H3 (h3ronpy), point-in-polygon (shapely) and most numpy work release the GIL, so on two
cores a block can be parsed while the one before it is located, and that one located while the block
before it is de-duplicated and stored.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar, cast

T = TypeVar("T")

_END = object()


def prefetch(items: Iterator[T], name: str = "harmmap-stage") -> Generator[T, None, None]:
    """``items``, each produced on a worker thread while the caller works on the one before.

    An error raised producing an item is raised here, at that item. Closing the generator (or an error in
    the caller) lets the item in progress finish, then closes ``items``.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=name) as pool:
        pending = pool.submit(next, items, _END)
        try:
            while True:
                item = pending.result()
                if item is _END:
                    return
                pending = pool.submit(next, items, _END)
                yield cast(T, item)
        finally:
            pending.cancel()
            pool.shutdown(wait=True)
            close = getattr(items, "close", None)
            if close is not None:
                close()
