"""OpenAPI 3.1 description of every public endpoint."""

from __future__ import annotations

from flask import Blueprint, jsonify

from unmask import __version__

bp = Blueprint("openapi", __name__)

ERROR = {"$ref": "#/components/schemas/Error"}
JOB = {"$ref": "#/components/schemas/Job"}


def err(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": ERROR}}}


def ok(description: str, schema: dict) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


FACE = {
    "type": "object",
    "properties": {
        "box": {
            "type": "array",
            "items": {"type": "number"},
            "minItems": 4,
            "maxItems": 4,
            "description": "x1, y1, x2, y2 in image pixels",
        },
        "detection_probability": {"type": "number"},
        "landmarks": {"type": ["array", "null"], "description": "eyes, nose, mouth corners"},
        "fake_probability": {"type": ["number", "null"]},
        "verdict": {"enum": ["fake", "real", "uncertain", "skipped"]},
        "skip_reason": {"type": ["string", "null"]},
        "overlay_url": {"type": ["string", "null"], "format": "uri"},
    },
}

RESULT = {
    "type": "object",
    "properties": {
        "verdict": {
            "enum": ["fake", "real", "uncertain", "no_face"],
            "description": "image level: the worst face",
        },
        "fake_probability": {"type": ["number", "null"], "description": "max over faces"},
        "image": {"type": "object"},
        "faces": {"type": "array", "items": FACE},
        "overlay_url": {"type": ["string", "null"], "format": "uri"},
        "urls_expire_in": {"type": "integer"},
        "model": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "weights_sha256": {"type": "string"},
                "thresholds": {"type": "object"},
                "code_version": {"type": "string"},
            },
        },
    },
}

SPEC = {
    "openapi": "3.1.0",
    "info": {
        "title": "Unmask",
        "version": __version__,
        "description": "Find AI-generated and manipulated faces in images, and show why.",
    },
    "paths": {
        "/v1/jobs": {
            "post": {
                "summary": "Submit an image (upload or S3 reference)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["image"],
                                "properties": {
                                    "image": {"type": "string", "format": "binary"},
                                    "metadata": {"type": "string", "description": "JSON object, echoed back"},
                                },
                            }
                        },
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["source"],
                                "properties": {
                                    "source": {
                                        "type": "object",
                                        "properties": {
                                            "s3": {
                                                "type": "object",
                                                "required": ["bucket", "key"],
                                                "properties": {
                                                    "bucket": {"type": "string"},
                                                    "key": {"type": "string"},
                                                },
                                            }
                                        },
                                    },
                                    "metadata": {"type": "object"},
                                },
                            }
                        },
                    },
                },
                "responses": {
                    "202": ok("Job accepted; Location names it", JOB),
                    "400": err("Malformed request or unknown field"),
                    "413": err("File too large"),
                    "422": err("Empty file or not an image"),
                    "503": err("Queue unavailable"),
                },
            },
            "get": {
                "summary": "List jobs, newest first",
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"enum": ["queued", "running", "succeeded", "failed"]},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                    },
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": ok(
                        "A page of jobs",
                        {
                            "type": "object",
                            "properties": {
                                "jobs": {"type": "array", "items": JOB},
                                "next_cursor": {"type": ["string", "null"]},
                            },
                        },
                    ),
                    "400": err("Bad parameter"),
                },
            },
        },
        "/v1/jobs/{id}": {
            "get": {
                "summary": "One job, with its result or error",
                "parameters": [
                    {
                        "name": "id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "format": "uuid"},
                    }
                ],
                "responses": {"200": ok("The job", JOB), "404": err("No such job")},
            }
        },
        "/v1/objects/{key}": {
            "get": {
                "summary": "Signed download of an overlay (local object store only)",
                "parameters": [
                    {"name": "key", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "expires", "in": "query", "required": True, "schema": {"type": "integer"}},
                    {"name": "signature", "in": "query", "required": True, "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": {"description": "The object", "content": {"image/jpeg": {}}},
                    "404": err("Unknown object, bad signature or expired link"),
                },
            }
        },
        "/healthz": {"get": {"summary": "Process is up", "responses": {"200": {"description": "ok"}}}},
        "/readyz": {
            "get": {
                "summary": "Database, broker and object store reachable",
                "responses": {
                    "200": {"description": "ready"},
                    "503": {"description": "a dependency is down"},
                },
            }
        },
        "/openapi.json": {
            "get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1"}}}
        },
    },
    "components": {
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                    }
                },
            },
            "Job": {
                "type": "object",
                "required": ["id", "status"],
                "properties": {
                    "id": {"type": "string", "format": "uuid"},
                    "status": {"enum": ["queued", "running", "succeeded", "failed"]},
                    "created_at": {"type": "string", "format": "date-time"},
                    "attempts": {"type": "integer"},
                    "metadata": {"type": ["object", "null"]},
                    "result": RESULT,
                    "error": {
                        "type": "object",
                        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                    },
                },
            },
        }
    },
}


@bp.get("/openapi.json")
def openapi():  # noqa: ANN201
    return jsonify(SPEC)
