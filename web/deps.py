"""FastAPI dependencies shared by the route modules: a database session, the templates."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Request
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session


def db_session(request: Request) -> Iterator[Session]:
    """A read session for one request."""
    with request.app.state.sessions() as session:
        yield session


def templates(request: Request) -> Jinja2Templates:
    return request.app.state.templates
