"""Persistence: SQLAlchemy models, the session factory, named queries and Alembic migrations.

Only this package writes SQL.
"""
