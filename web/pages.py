"""The status pages (login required): overview, studies, jobs, deliveries, models, errors, audit."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from db import views
from db.models import Delivery, Job, Study
from inference.registry import Registry, RegistryProblem
from web.auth import COOKIE, require_user
from web.broker import broker_queue_lengths
from web.deps import db_session

router = APIRouter(dependencies=[Depends(require_user)])
DbSession = Annotated[Session, Depends(db_session)]
User = Annotated[str, Depends(require_user)]


def render(request: Request, template: str, user: str, **context: Any) -> Response:
    """A page with the layout's common context (user, node identity)."""
    settings = request.app.state.settings
    return request.app.state.templates.TemplateResponse(
        request, template, {"user": user, "ae_title": settings.ae_title, **context}
    )


@router.get("/")
def overview(request: Request, session: DbSession, user: User) -> Response:
    jobs, deliveries = views.states(session, Job), views.states(session, Delivery)
    return render(
        request, "overview.html", user,
        studies=views.states(session, Study), jobs=jobs,
        deliveries=deliveries, instances=views.instance_count(session),
        queue=views.queue_depth_from(jobs),
        broker=broker_queue_lengths(request.app.state.settings),
        models=views.model_version_rows(session),
        recent=views.study_rows(session, limit=10),
        failed_jobs=views.count_in(jobs, views.FAILED_JOB_STATES),
        problem_deliveries=views.count_in(deliveries, views.PROBLEM_DELIVERY_STATES),
        quarantined=request.app.state.spool.quarantine_count(),
    )


@router.get("/studies")
def studies(
    request: Request, session: DbSession, user: User,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    uid: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    """The newest studies, :data:`db.views.STUDY_PAGE_SIZE` a page; ``uid`` finds studies by
    the start of their Study Instance UID."""
    size = views.STUDY_PAGE_SIZE
    rows = views.study_rows(session, limit=size + 1, offset=(page - 1) * size, uid=uid.strip())
    return render(request, "studies.html", user, studies=rows[:size], page=page,
                  uid=uid.strip(), more=len(rows) > size)


@router.get("/jobs")
def jobs(request: Request, session: DbSession, user: User) -> Response:
    return render(request, "jobs.html", user, jobs=views.job_rows(session, limit=500))


@router.get("/deliveries")
def deliveries(request: Request, session: DbSession, user: User) -> Response:
    return render(request, "deliveries.html", user, deliveries=views.delivery_rows(session, limit=500))


def left_out(request: Request) -> list[RegistryProblem]:
    """The model folders the registry leaves out, read now (a folder copied in while the node
    runs shows at once)."""
    return Registry.from_settings(request.app.state.settings).problems()


@router.get("/models")
def models(request: Request, session: DbSession, user: User) -> Response:
    return render(request, "models.html", user, models=views.model_version_rows(session),
                  left_out=left_out(request))  # fmt: skip


@router.get("/errors")
def errors(request: Request, session: DbSession, user: User) -> Response:
    return render(
        request, "errors.html", user,
        failed_jobs=views.failed_jobs(session),
        deliveries=views.delivery_rows(session, only_states=views.PROBLEM_DELIVERY_STATES),
        quarantine=request.app.state.spool.quarantined(limit=200),
        left_out=left_out(request),
    )


@router.get("/audit")
def audit(request: Request, session: DbSession, user: User) -> Response:
    return render(request, "audit.html", user, events=views.audit_rows(session, limit=500))


@router.post("/logout")
def logout(request: Request) -> Response:
    """End the session on the server too: a copy of the cookie stops working."""
    request.app.state.authenticator.revoke(request.cookies.get(COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response
