"""Ingest every source into the store: streamed, idempotent, and every row accounted for. No HTTP."""
