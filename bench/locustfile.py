"""Locust users for the load run: a web map's mix of ward harm, tiles and map layers, with a lead's key.

Run by bench/load_restart.py (and tests/test_resilience.py); set HARMMAP_LOAD_KEY to the key to send.
"""

from __future__ import annotations

import os

from locust import FastHttpUser, constant, task

HAMPSHIRE = "E23000030"
PERIOD = "2018-12"


class MapUser(FastHttpUser):
    """A map client: wards with harm, a few tiles, the calls layer."""

    wait_time = constant(0.05)

    def on_start(self) -> None:
        """Send the key in a header on every request, as the web map does."""
        self.headers = {"X-API-Key": os.environ.get("HARMMAP_LOAD_KEY", "")}

    @task(4)
    def wards(self) -> None:
        """The ward collection with harm."""
        self.client.get(
            f"/collections/wards/items?force={HAMPSHIRE}&period={PERIOD}&limit=300",
            headers=self.headers,
            name="wards",
        )

    @task(4)
    def tile(self) -> None:
        """A ward tile over Winchester."""
        self.client.get("/tiles/wards/10/508/342.mvt", headers=self.headers, name="tile")

    @task(1)
    def calls(self) -> None:
        """The calls layer (force-held: audited)."""
        self.client.get(
            f"/map/layers/calls?force={HAMPSHIRE}&period={PERIOD}", headers=self.headers, name="calls layer"
        )
