"""Webhook routes: register, list, delete and rotate endpoints; the tenant's secret for
per-request callback URLs; the delivery log and redelivery."""

from __future__ import annotations

from flask import Response, current_app, jsonify
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field

from unmask.api import auth
from unmask.api.jobs import GUARDED, as_json
from unmask.core.schemas import ErrorBody
from unmask.core.webhooks import DeliveryPage, DeliveryRead, EndpointCreate, EndpointRead, WebhookService

bp = APIBlueprint(
    "webhooks",
    __name__,
    url_prefix="/v1/webhooks",
    abp_tags=[Tag(name="webhooks")],
    abp_security=[{"bearer": []}],
)


class EndpointPath(BaseModel):
    endpoint_id: str


class DeliveryPath(BaseModel):
    delivery_id: str


class DeliveryQuery(BaseModel):
    limit: int = Field(50, ge=1, le=200)
    cursor: str | None = None


class EndpointList(BaseModel):
    endpoints: list[EndpointRead]


class SecretRead(BaseModel):
    secret: str = Field(description="signs deliveries to per-request webhook_url; shown once")


def webhooks() -> WebhookService:
    return current_app.extensions["unmask"].jobs.webhooks


@bp.post(
    "",
    summary="Register an endpoint; the answer holds its signing secret, shown once",
    responses={201: EndpointRead, 400: ErrorBody, **GUARDED},
)
def create_endpoint(body: EndpointCreate) -> Response:
    return as_json(
        webhooks().create_endpoint(owner=auth.tenant(), url=body.url, events=list(body.events)), 201
    )


@bp.get("", summary="Registered endpoints (without secrets)", responses={200: EndpointList, **GUARDED})
def list_endpoints() -> Response:
    return as_json(EndpointList(endpoints=webhooks().list_endpoints(owner=auth.tenant())))


@bp.delete("/<endpoint_id>", summary="Remove an endpoint", responses={204: None, 404: ErrorBody, **GUARDED})
def delete_endpoint(path: EndpointPath) -> Response:
    webhooks().delete_endpoint(owner=auth.tenant(), endpoint_id=path.endpoint_id)
    return Response(status=204)


@bp.post(
    "/<endpoint_id>/rotate",
    summary="A new signing secret for the endpoint, shown once",
    responses={200: EndpointRead, 404: ErrorBody, **GUARDED},
)
def rotate_endpoint(path: EndpointPath) -> Response:
    return as_json(webhooks().rotate_secret(owner=auth.tenant(), endpoint_id=path.endpoint_id))


@bp.post(
    "/secret",
    summary="A new signing secret for per-request webhook_url callbacks, shown once",
    responses={200: SecretRead, **GUARDED},
)
def rotate_default_secret() -> Response:
    return jsonify({"secret": webhooks().rotate_default_secret(owner=auth.tenant())})


@bp.get(
    "/deliveries",
    summary="The delivery log, newest first: attempts, status codes, latencies, errors",
    responses={200: DeliveryPage, 400: ErrorBody, **GUARDED},
)
def list_deliveries(query: DeliveryQuery) -> Response:
    return as_json(webhooks().list_deliveries(owner=auth.tenant(), limit=query.limit, cursor=query.cursor))


@bp.post(
    "/deliveries/<delivery_id>/redeliver",
    summary="Send an event again, under the same webhook-id",
    responses={202: DeliveryRead, 404: ErrorBody, 409: ErrorBody, **GUARDED},
)
def redeliver(path: DeliveryPath) -> Response:
    return as_json(webhooks().redeliver(owner=auth.tenant(), delivery_id=path.delivery_id), 202)
