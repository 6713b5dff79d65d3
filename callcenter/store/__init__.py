"""Call records in SQL (SQLAlchemy + Alembic), behind a durable on-disk journal."""
