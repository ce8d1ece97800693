"""Rendered area tiles kept in memory, keyed by their ETag.

A tile's ETag already names everything its bytes depend on (data and boundary versions, collection,
z/x/y, period, scheme, metric, the force filter and whether disclosure control applies), so equal ETags
mean equal tiles and a re-ingest can never serve a stale one. Record tiles (OFFICIAL-SENSITIVE points)
are never cached. The cache is bounded by bytes and shared by the worker threads of one process.
"""

from __future__ import annotations

import threading

from cachetools import LRUCache


class TileCache:
    """A byte-bounded LRU of tile bodies; ``capacity_bytes`` 0 turns it off."""

    def __init__(self, capacity_bytes: int) -> None:
        self._tiles: LRUCache[str, bytes] | None = (
            LRUCache(maxsize=capacity_bytes, getsizeof=lambda body: max(len(body), 1))
            if capacity_bytes > 0
            else None
        )
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, etag: str) -> bytes | None:
        """The tile stored under ``etag`` (an empty tile is b""), or None."""
        if self._tiles is None:
            return None
        with self._lock:
            body = self._tiles.get(etag)
            if body is None:
                self.misses += 1
            else:
                self.hits += 1
            return body

    def put(self, etag: str, body: bytes) -> None:
        """Keep ``body``; a tile larger than the whole cache is not kept."""
        if self._tiles is None or len(body) > self._tiles.maxsize:
            return
        with self._lock:
            self._tiles[etag] = body
