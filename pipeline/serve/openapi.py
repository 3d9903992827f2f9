"""Request and response models of the lookup API, and its OpenAPI document.

The models are pydantic so the batch body is validated and the OpenAPI schemas are generated from
the same definitions (they cannot drift apart). Answers are not serialised through them: the hot
path writes bytes directly (``pipeline.serve.render``).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints
from pydantic.json_schema import models_json_schema

MAX_K = 1000
UserId = StrictInt | Annotated[str, StringConstraints(min_length=1, max_length=512)]


class BatchRequest(BaseModel):
    """Body of ``POST /v1/recommendations``."""

    model_config = ConfigDict(extra="forbid")
    user_ids: list[UserId] = Field(min_length=1, description="Users to look up (ints or strings).")
    k: StrictInt = Field(10, ge=1, le=MAX_K, description="Most items per user.")


class UserList(BaseModel):
    """One user's list; ``fallback`` is true when the user is unknown (the version's fallback)."""

    user_id: UserId
    items: list[StrictInt | str]
    scores: list[float]
    fallback: bool


class Recommendations(UserList):
    """Answer of ``GET /v1/users/{user_id}/recommendations``."""

    version: str


class BatchResponse(BaseModel):
    """Answer of ``POST /v1/recommendations``: one entry per requested id, in request order."""

    version: str
    k: int
    results: list[UserList]


class Error(BaseModel):
    """Every error answer."""

    error: str = Field(description="A code: invalid_parameter, store_unavailable, ...")
    detail: str


class Status(BaseModel):
    status: str
    version: str | None = None


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _answer(description: str, model: type[BaseModel]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {413: "Body larger than the limit (refused before it is read)",
            422: "Invalid parameter or body", 503: "Redis unavailable or nothing published"}
    return {str(c): _answer(text[c], Error) for c in codes}


def openapi_document(max_batch: int, max_body_bytes: int) -> dict[str, Any]:
    """The OpenAPI 3.1 document served at ``/openapi.json``."""
    _, schemas = models_json_schema(
        [(m, "validation") for m in (BatchRequest, Recommendations, BatchResponse, Error, Status)],
        ref_template="#/components/schemas/{model}",
    )
    get_one = {
        "summary": "One user's recommendations",
        "parameters": [
            {"name": "user_id", "in": "path", "required": True, "schema": {"type": "string"},
             "description": "Raw user id; unknown users get the fallback list."},
            {"name": "k", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": 10},
             "description": "Most items; a larger k than stored returns the whole list."},
        ],
        "responses": {"200": _answer("The list", Recommendations), **_errors(422, 503)},
    }
    post_many = {
        "summary": f"Many users' recommendations (at most {max_batch} ids, one Redis round trip)",
        "requestBody": {"required": True,
                        "description": f"At most {max_body_bytes} bytes (RECPIPE_MAX_BODY_BYTES;"
                        " default from RECPIPE_MAX_BATCH): a larger Content-Length, or a chunked "
                        "body that grows past it, is answered 413 before it is parsed.",
                        "content": {"application/json": {"schema": _ref(BatchRequest)}}},
        "responses": {"200": _answer("The lists", BatchResponse), **_errors(413, 422, 503)},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "recpipe lookup API", "version": "1"},
        "paths": {
            "/v1/users/{user_id}/recommendations": {"get": get_one},
            "/v1/recommendations": {"post": post_many},
            "/healthz": {"get": {"summary": "The process is up",
                                 "responses": {"200": _answer("Up", Status)}}},
            "/readyz": {"get": {"summary": "Redis answers and a version is current",
                                "responses": {"200": _answer("Ready", Status), **_errors(503)}}},
        },
        "components": {"schemas": schemas.get("$defs", {})},
    }


DOCS_HTML = """<!doctype html>
<html><head><title>recpipe lookup API</title><meta charset="utf-8">
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css">
</head><body><div id="ui"></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui"});</script>
</body></html>
"""
