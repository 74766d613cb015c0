"""The dashboard: server-rendered pages for moderators, signed in with an API key (a server-side
session; every form carries the session's CSRF token). Jobs and batches with filters, a job
page with its image, overlays, scores and provenance, a batch page, a health panel, and the
review queue."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import date
from functools import wraps
from typing import Any

from flask import Blueprint, Response, current_app, g, redirect, render_template, request, url_for

from unmask.api.jobs import base_url
from unmask.core.exceptions import NotFound, Unauthorized
from unmask.core.reviews import SignedIn
from unmask.core.wiring import Services

bp = Blueprint(
    "dashboard", __name__, url_prefix="/dashboard", template_folder="templates", static_folder="static"
)
COOKIE = "unmask_session"


def services() -> Services:
    return current_app.extensions["unmask"]


def signed_in(view: Callable[..., Any]) -> Callable[..., Any]:
    """The page needs a session; forms need its CSRF token."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            g.me = services().reviews.signed_in(request.cookies.get(COOKIE))
        except Unauthorized:
            return redirect(url_for("dashboard.sign_in"))
        if request.method == "POST":
            sent = request.form.get("csrf_token", "")
            if not hmac.compare_digest(sent, g.me.csrf_token):
                return Response("the form's CSRF token does not match your session", status=400)
        return view(*args, **kwargs)

    return wrapper


def page(template: str, **context: Any) -> str:
    return render_template(template, me=g.get("me"), **context)


@bp.route("/login", methods=["GET", "POST"])
def sign_in() -> Any:
    if request.method == "GET":
        return page("login.html")
    try:
        token, _ = services().reviews.sign_in(key=request.form.get("key", ""))
    except Unauthorized:
        return page("login.html", error="That key is unknown or revoked."), 401
    response = redirect(url_for("dashboard.home"))
    response.set_cookie(
        COOKIE, token, httponly=True, samesite="Strict", secure=request.is_secure, max_age=12 * 3600
    )
    return response


@bp.post("/logout")
@signed_in
def sign_out() -> Any:
    services().reviews.sign_out(request.cookies.get(COOKIE, ""))
    response = redirect(url_for("dashboard.sign_in"))
    response.delete_cookie(COOKIE)
    return response


@bp.get("")
@signed_in
def home() -> Any:
    me: SignedIn = g.me
    filters = {k: request.args.get(k) or None for k in ("status", "verdict", "batch", "since", "q")}
    since = date.fromisoformat(filters["since"]) if filters["since"] else None
    jobs = services().jobs.search(
        owner=me.tenant,
        status=filters["status"],
        verdict=filters["verdict"],
        batch_id=filters["batch"],
        since=since,
        text=filters["q"],
        base_url=base_url(),
    )
    batches = services().batches.list(owner=me.tenant, limit=10).batches
    in_flight = any(j.status in ("queued", "running") for j in jobs) or any(
        b.status in ("pending", "running") for b in batches
    )
    health = services().reviews.health(owner=me.tenant)
    return page(
        "home.html",
        jobs=jobs,
        batches=batches,
        health=health,
        filters=filters,
        refresh=5 if in_flight else None,
    )


@bp.get("/jobs/<job_id>")
@signed_in
def job(job_id: str) -> Any:
    me: SignedIn = g.me
    try:
        found = services().jobs.get(owner=me.tenant, job_id=job_id, base_url=base_url())
    except NotFound:
        return page("login.html", error="No such job."), 404
    original = services().jobs.original_url(owner=me.tenant, job_id=job_id, base_url=base_url())
    refresh = 3 if found.status in ("queued", "running") else None
    return page("job.html", job=found, original_url=original, next=request.args.get("next"), refresh=refresh)


@bp.post("/jobs/<job_id>/review")
@signed_in
def record_review(job_id: str) -> Any:
    me: SignedIn = g.me
    services().reviews.record(
        owner=me.tenant,
        job_id=job_id,
        decision=request.form.get("decision", ""),
        note=request.form.get("note"),
        reviewer=me.reviewer,
    )
    if request.form.get("next") == "review":
        return redirect(url_for("dashboard.review_queue"))
    return redirect(url_for("dashboard.job", job_id=job_id))


@bp.get("/batches/<batch_id>")
@signed_in
def batch(batch_id: str) -> Any:
    me: SignedIn = g.me
    found = services().batches.get(owner=me.tenant, batch_id=batch_id)
    jobs = (
        services().batches.list_jobs(owner=me.tenant, batch_id=batch_id, limit=200, base_url=base_url()).jobs
    )
    refresh = 3 if found.status in ("pending", "running") else None
    return page("batch.html", batch=found, jobs=jobs, refresh=refresh)


@bp.get("/review")
@signed_in
def review_queue() -> Any:
    return page("review.html", jobs=services().reviews.queue(owner=g.me.tenant, base_url=base_url()))
