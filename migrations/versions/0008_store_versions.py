"""A version counter per reference table, bumped by a statement trigger on every change.

Boundaries and Census populations change only when they are reloaded, yet every harm query needs area
names, populations and contiguity. Reading one small row tells a process whether what it cached is
still current, instead of recounting the areas table on every request (bench/: ~30 ms a query).

Revision ID: 0008_store_versions
Revises: 0007_crimes_force_month
Create Date: 2026-11-21
"""

from alembic import op

revision = "0008_store_versions"
down_revision = "0007_crimes_force_month"
branch_labels = None
depends_on = None

VERSIONED = ("areas", "census2021_ethnicity", "lookup_lsoa11_lsoa21", "lookup_lsoa21_ward", "harm_keys")


def upgrade() -> None:
    op.execute("CREATE TABLE store_versions (name text PRIMARY KEY, version bigint NOT NULL DEFAULT 1)")
    op.execute("INSERT INTO store_versions (name) VALUES " + ", ".join(f"('{table}')" for table in VERSIONED))
    op.execute(
        """
        CREATE FUNCTION bump_store_version() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE store_versions SET version = version + 1 WHERE name = TG_TABLE_NAME;
            RETURN NULL;
        END
        $$
        """
    )
    for table in VERSIONED:
        op.execute(
            f"CREATE TRIGGER {table}_bump_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION bump_store_version()"
        )


def downgrade() -> None:
    for table in VERSIONED:
        op.execute(f"DROP TRIGGER {table}_bump_version ON {table}")
    op.execute("DROP FUNCTION bump_store_version()")
    op.execute("DROP TABLE store_versions")
