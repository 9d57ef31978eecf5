"""Jinja filters: dates, probabilities and millimetres shown the same way on every page."""

from __future__ import annotations

from datetime import datetime

from jinja2 import Environment


def when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def number(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def short_uid(value: str | None, keep: int = 18) -> str:
    """A long UID shortened for tables (the full one is in the title attribute)."""
    if not value or len(value) <= keep + 3:
        return value or ""
    return f"…{value[-keep:]}"


def register_filters(env: Environment) -> None:
    env.filters["when"] = when
    env.filters["number"] = number
    env.filters["short_uid"] = short_uid
