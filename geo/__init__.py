"""Boundaries, spatial joins and roll-ups, H3 and PostGIS queries. No HTTP here."""
