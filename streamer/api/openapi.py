"""The OpenAPI 3.0 description of the HTTP API, served at ``GET /api/openapi.json`` (no token needed).

It is written here by hand, beside the routes, and a test checks that it names exactly the routes the app
has (``tests/test_hostile.py``); the hostile-input tests generate requests from it (schemathesis) and check
that every answer is a documented status, never a 5xx. Error bodies are always ``{"error": reason}``.
Bodies the handlers validate themselves (settings patches, recording options, consent) are described as
they are documented in README, with ``additionalProperties`` left open: an unknown key is answered 400 with
the reason, which is documented too.
"""

from __future__ import annotations

import copy
from typing import Any

from aiohttp import web

from engines import __version__
from engines.paths import NAME_PATTERN

JSON = "application/json"
SDP = "application/sdp"
NAME = {"type": "string", "pattern": f"^{NAME_PATTERN.pattern}$"}
ERROR_REF = {"$ref": "#/components/schemas/Error"}
_ERROR_TEXT = {
    400: "Bad request: the reason is in `error`",
    401: "Missing or wrong token",
    403: "The token may only watch (a viewer token); or a browser page of another origin asked for a change or "
    "the WebSocket, or (no token set) the Host is not a name of this server",
    404: "Not found",
    405: "Method not allowed",
    408: "The body did not arrive whole within the body timeout (the connection is closed)",
    409: "Conflicts with the current state",
    413: "Body, upload or photo over its limit",
    415: "Wrong Content-Type",
    429: "Over the control-message rate limit (Retry-After)",
    502: "Another node of the stage did not answer",
    503: "At capacity (streams, viewers, WebSocket clients) or a model is missing",
    507: "Not enough free disk space",
}


def _errors(*codes: int) -> dict[str, Any]:
    return {
        str(code): {"description": _ERROR_TEXT[code], "content": {JSON: {"schema": ERROR_REF}}}
        for code in sorted({*codes, 401, 403, 429, *((408,) if 413 in codes else ())})
    }


def _ok(code: int, description: str, schema: dict[str, Any] | None = None, media: str = JSON) -> dict[str, Any]:
    body: dict[str, Any] = {"description": description}
    if schema is not None:
        body["content"] = {media: {"schema": schema}}
    return {str(code): body}


def _path_param(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or NAME}


def _json_body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {JSON: {"schema": schema}}}


_SDP_BODY = {"required": True, "content": {SDP: {"schema": {"type": "string"}}}}
_SESSION = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}
_VIEW = {
    "name": "view",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "enum": ["processed", "source"]},
}
_CREATED_SDP = {
    "201": {
        "description": "The SDP answer; `Location` names the session (DELETE it to end)",
        "headers": {"Location": {"schema": {"type": "string"}}},
        "content": {SDP: {"schema": {"type": "string"}}},
    }
}
_VIDEO = ("video/mp4", "video/quicktime", "video/x-matroska")
_NUMBER_LIST = {"type": "array", "items": {"type": "number"}}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
    "Settings": {
        "type": "object",
        "description": "A settings patch (engines/settings.py); unknown keys and out-of-range values are 400",
        "properties": {
            "swap": {"type": "boolean"},
            "identity": {"oneOf": [NAME, {"type": "null"}]},
            "relight": {"type": "boolean"},
            "strength": {"type": "number", "minimum": 0, "maximum": 1},
            "morph": {"type": "number", "minimum": 0, "maximum": 1},
            "keep_eyes": {"type": "boolean"},
            "keep_mouth": {"type": "boolean"},
            "keep_glasses": {
                "type": "boolean",
                "description": "keep the actor's glasses in front of a swapped face where they are detected "
                "(default true; stats: face_list[].glasses)",
            },
            "audio": {"type": "boolean"},
            "watermark": {
                "type": "boolean",
                "description": "mark the processed view with the invisible watermark (default true; the source view "
                "is never marked); a recording can turn it off for itself (RecordingOptions.watermark)",
            },
            "debug_overlay": {"type": "boolean"},
            "swap_model": {"type": "string", "description": "mesh, or a model registered with `stageswap models add`"},
            "targets": {
                "description": "who gets swapped, rule by rule: each face gets the identity of the first rule that "
                "picks it (null identity: left alone), faces no rule picks are left untouched; null or []: every face "
                "gets identity. match: an enrolled performer, id:N, largest, leftmost, rightmost or any",
                "oneOf": [
                    {"type": "null"},
                    {
                        "type": "array",
                        "maxItems": 16,
                        "items": {
                            "type": "object",
                            "required": ["match"],
                            "properties": {
                                "match": {"type": "string"},
                                "identity": {"oneOf": [NAME, {"type": "null"}]},
                            },
                        },
                    },
                ],
            },
            "colour": {
                "type": "object",
                "description": "the footage's colour space (OCIO names; README, Colour); null: display-referred",
                "properties": {
                    "input": {"oneOf": [{"type": "string"}, {"type": "null"}]},
                    "output": {"oneOf": [{"type": "string"}, {"type": "null"}]},
                    "monitor": {"oneOf": [{"type": "string"}, {"type": "null"}]},
                    "monitor_view": {"oneOf": [{"type": "string"}, {"type": "null"}]},
                    "config": {"type": "string", "enum": ["studio-config-latest", "cg-config-latest"]},
                },
            },
            "ndi": {
                "type": "object",
                "description": "publish the processed and/or source view as an NDI source (README, NDI)",
                "properties": {"processed": {"type": "boolean"}, "source": {"type": "boolean"}},
            },
            "sfu": {
                "description": "where the stream is sent for monitors through Janus (--sfu): false (not sent), "
                "true (the server's views and codec), or which views and codec",
                "oneOf": [
                    {"type": "boolean"},
                    {"type": "null"},
                    {
                        "type": "object",
                        "properties": {
                            "views": {
                                "type": "array",
                                "items": {"type": "string", "enum": ["processed", "source"]},
                                "minItems": 1,
                                "uniqueItems": True,
                            },
                            "codec": {"type": "string", "enum": ["vp8", "h264"]},
                        },
                    },
                ],
            },
            "relight_target": {
                "type": "object",
                "properties": {
                    "mode": {"type": "string", "enum": ["match", "sh", "direction", "hdri"]},
                    "sh": {"oneOf": [_NUMBER_LIST, {"type": "null"}]},
                    "direction": _NUMBER_LIST,
                    "intensity": {"type": "number"},
                    "colour": _NUMBER_LIST,
                    "ambient": {"type": "number"},
                    "hdri": {"oneOf": [{"type": "string"}, {"type": "null"}]},
                },
            },
        },
    },
    "RecordingOptions": {
        "type": "object",
        "properties": {
            "view": {"type": "string", "enum": ["processed", "source", "both"]},
            "codec": {"type": "string", "enum": ["h264", "prores", "ffv1"]},
            "container": {"type": "string", "enum": ["mp4", "mov", "mkv"]},
            "encoder": {"type": "string"},
            "frame_rate": {"type": "string", "enum": ["source", "cfr"]},
            "fps": {"oneOf": [{"type": "number"}, {"type": "string"}]},
            "timecode": {"type": "string"},
            "audio": {
                "type": "string",
                "enum": ["aac", "pcm", "opus", "none"],
                "description": "the sound's codec (default: aac in mp4, pcm in mov, opus in mkv) or none",
            },
            "watermark": {
                "type": "boolean",
                "description": "false: record the processed view without the invisible watermark even while the "
                "stream marks it (default true: as the stream's watermark setting says); the source view is never "
                "marked. The recording's JSON and provenance give watermark, watermark_id and watermark_mark (the "
                "mark's name; per view in watermark_marks, unmarked for the source view)",
            },
        },
    },
    "Consent": {
        "type": "object",
        "properties": {
            "consent_by": {"type": "string"},
            "production": {"type": "string"},
            "valid_from": {"type": "string"},
            "valid_until": {"type": "string"},
            "document_sha256": {"type": "string"},
            "note": {"type": "string"},
        },
    },
    "Enrollment": {
        "type": "object",
        "required": ["name", "photo"],
        "properties": {
            "name": NAME,
            "photo": {"type": "array", "items": {"type": "string", "format": "binary"}},
            "face": {"type": "string"},
            "replace": {"type": "string"},
            "allow_unverified": {"type": "string"},
            "consent": {"type": "string", "description": "a consent object as JSON text"},
            "consent_by": {"type": "string"},
            "production": {"type": "string"},
            "valid_from": {"type": "string"},
            "valid_until": {"type": "string"},
        },
    },
}
_OBJECT = {"type": "object"}


def _paths() -> dict[str, Any]:
    stream = [_path_param("stream")]
    return {
        "/api/openapi.json": {
            "get": {"summary": "This description", "security": [], "responses": _ok(200, "OpenAPI 3.0", _OBJECT)}
        },
        "/api/streams": {
            "get": {
                "summary": "Every stream with its settings and live stats",
                "responses": {**_ok(200, "The streams", _OBJECT), **_errors(403)},
            }
        },
        "/api/streams/{stream}": {
            "parameters": stream,
            "get": {
                "summary": "One stream: settings and live stats",
                "responses": {**_ok(200, "The stream", _OBJECT), **_errors(400, 403, 404)},
            },
            "patch": {
                "summary": "Change the stream's settings from its next frame",
                "requestBody": _json_body({"$ref": "#/components/schemas/Settings"}),
                "responses": {**_ok(200, "The stream after the change", _OBJECT), **_errors(400, 403, 404, 413, 415)},
            },
        },
        "/api/streams/{stream}/recording": {
            "parameters": stream,
            "post": {
                "summary": "Start recording the stream",
                "requestBody": _json_body({"$ref": "#/components/schemas/RecordingOptions"}, required=False),
                "responses": {
                    "201": {
                        "description": "The recording",
                        "headers": {"Location": {"schema": {"type": "string"}}},
                        "content": {JSON: {"schema": _OBJECT}},
                    },
                    **_errors(400, 403, 404, 409, 413, 415, 507),
                },
            },
            "get": {
                "summary": "The stream's running recording",
                "responses": {**_ok(200, "The recording", _OBJECT), **_errors(400, 403, 404)},
            },
            "delete": {
                "summary": "Stop recording the stream",
                "responses": {**_ok(200, "The finished recording", _OBJECT), **_errors(400, 403, 404, 409)},
            },
        },
        "/api/recordings": {
            "get": {
                "summary": "Recordings, newest first, with the folder and per view links to play and download",
                "parameters": [{"name": "stream", "in": "query", "required": False, "schema": NAME}],
                "responses": {**_ok(200, "Recordings", _OBJECT), **_errors(400, 403)},
            }
        },
        "/api/recordings/{id}/files/{view}": {
            "parameters": [_path_param("id", {"type": "string"}), _path_param("view", {"type": "string"})],
            "get": {
                "summary": "A recording's file (or its proxy): the operator token or the listing's ticket",
                "parameters": [
                    {"name": name, "in": "query", "required": False, "schema": schema}
                    for name, schema in (
                        ("ticket", {"type": "string"}),
                        ("download", {"type": "string", "enum": ["1"]}),
                        ("proxy", {"type": "string", "enum": ["1"]}),
                    )
                ],
                "responses": {
                    "200": {
                        "description": "The file (ranges: 206)",
                        "content": {media: {"schema": {"type": "string", "format": "binary"}} for media in _VIDEO},
                    },
                    "206": {"description": "Part of the file"},
                    "416": {"description": "A range outside the file"},
                    **_errors(400, 404),
                },
            },
        },
        "/api/recordings/{id}/proxy": {
            "parameters": [_path_param("id", {"type": "string"})],
            "post": {
                "summary": "Make H.264 proxies of a recording a browser cannot play (ProRes, FFV1)",
                "responses": {**_ok(202, "Each view's proxy state", _OBJECT), **_errors(400, 404)},
            },
        },
        "/api/recordings/{id}": {
            "parameters": [_path_param("id", {"type": "string"})],
            "get": {
                "summary": "One recording",
                "responses": {**_ok(200, "The recording", _OBJECT), **_errors(403, 404)},
            },
        },
        "/api/faces": {
            "post": {
                "summary": "The faces in uploaded photos, largest first, with thumbnails (to choose one to enroll)",
                "requestBody": {
                    "required": True,
                    "content": {"multipart/form-data": {"schema": {"type": "object"}}},
                },
                "responses": {**_ok(200, "Each photo's faces", _OBJECT), **_errors(400, 408, 413, 415, 503)},
            },
        },
        "/api/performers": {
            "get": {
                "summary": "Enrolled performers (stageswap performers add): the people target rules pick by face",
                "responses": {**_ok(200, "Performers", _OBJECT), **_errors(403)},
            },
        },
        "/api/identities": {
            "get": {
                "summary": "Enrolled identities with their consent",
                "responses": {**_ok(200, "Identities", _OBJECT), **_errors(403)},
            },
            "post": {
                "summary": "Enroll an identity from uploaded photos",
                "requestBody": {
                    "required": True,
                    "content": {"multipart/form-data": {"schema": {"$ref": "#/components/schemas/Enrollment"}}},
                },
                "responses": {**_ok(201, "The identity", _OBJECT), **_errors(400, 403, 409, 413, 415, 503)},
            },
        },
        "/api/identities/{name}": {
            "parameters": [_path_param("name")],
            "delete": {
                "summary": "Remove an identity",
                "responses": {**_ok(200, "Removed", _OBJECT), **_errors(400, 403, 404, 409)},
            },
        },
        "/api/identities/{name}/consent": {
            "parameters": [_path_param("name")],
            "put": {
                "summary": "Record or replace an identity's consent",
                "requestBody": _json_body({"$ref": "#/components/schemas/Consent"}),
                "responses": {**_ok(200, "The consent", _OBJECT), **_errors(400, 403, 404, 413, 415)},
            },
        },
        "/api/models": {
            "get": {
                "summary": "Swap models: the built-in mesh swap and registered models, with their licence flags "
                "and, for DFM models (an identity of their own), their consent status; and the models being "
                "trained here (stageswap train) with their progress",
                "responses": {**_ok(200, "Models", _OBJECT), **_errors(403)},
            }
        },
        "/api/sessions": {
            "get": {
                "summary": "Open WHIP/WHEP sessions",
                "responses": {**_ok(200, "Sessions", _OBJECT), **_errors(403)},
            }
        },
        "/whip/{stream}": {
            "parameters": stream,
            "post": {
                "summary": "Publish a camera (WHIP, RFC 9725): an SDP offer in, the answer out",
                "requestBody": _SDP_BODY,
                "responses": {**_CREATED_SDP, **_errors(400, 403, 409, 413, 415, 503)},
            },
        },
        "/whip/{stream}/{session}": {
            "parameters": [*stream, _path_param("session", _SESSION)],
            "delete": {"summary": "End a WHIP session", "responses": {**_ok(200, "Ended"), **_errors(400, 403, 404)}},
            "patch": {
                "summary": "Trickle ICE (not supported)",
                "responses": _errors(400, 403, 405),
            },
        },
        "/whep/{stream}": {
            "parameters": stream,
            "post": {
                "summary": "Watch a stream (WHEP): an SDP offer in, the answer out",
                "parameters": [_VIEW],
                "requestBody": _SDP_BODY,
                "responses": {**_CREATED_SDP, **_errors(400, 404, 413, 415, 503)},
            },
        },
        "/whep/{stream}/{session}": {
            "parameters": [*stream, _path_param("session", _SESSION)],
            "delete": {"summary": "End a WHEP session", "responses": {**_ok(200, "Ended"), **_errors(400, 404)}},
            "patch": {"summary": "Trickle ICE (not supported)", "responses": _errors(400, 405)},
        },
        "/ws": {
            "get": {
                "summary": "WebSocket: stats and events pushed, control messages answered (README)",
                "parameters": [
                    {"name": "access_token", "in": "query", "required": False, "schema": {"type": "string"}}
                ],
                "responses": {**_ok(101, "Switching protocols"), **_errors(400, 403, 503)},
            }
        },
        "/api/stage": {
            "get": {
                "summary": "The stage: this node's streams and every --peer node's, with each node's health",
                "responses": {**_ok(200, "The nodes and their streams", _OBJECT), **_errors(403)},
            }
        },
        "/api/stage/{node}/streams/{stream}": {
            "parameters": [_path_param("node"), *stream],
            "patch": {
                "summary": "Change a stream's settings on whichever node of the stage has it",
                "requestBody": _json_body({"$ref": "#/components/schemas/Settings"}),
                "responses": {
                    **_ok(200, "The stream after the change, as its node answers", _OBJECT),
                    **_errors(400, 403, 404, 413, 415, 502),
                },
            },
        },
        "/api/stage/{node}/whep/{stream}": {
            "parameters": [_path_param("node"), *stream],
            "post": {
                "summary": "WHEP relayed to the stage node that has the stream (signalling only)",
                "parameters": [_VIEW],
                "requestBody": _SDP_BODY,
                "responses": {**_CREATED_SDP, **_errors(400, 404, 413, 415, 502, 503)},
            },
        },
        "/api/stage/{node}/whep/{stream}/{session}": {
            "parameters": [_path_param("node"), *stream, _path_param("session", _SESSION)],
            "delete": {
                "summary": "End a relayed WHEP session",
                "responses": {**_ok(200, "Ended"), **_errors(400, 404, 502)},
            },
        },
        "/sfu/{name}": {
            "parameters": [_path_param("name", {"type": "string", "enum": ["janus.js", "adapter.js"]})],
            "get": {
                "summary": "Janus's JS client for the monitor page (from npm, installed by make janus-setup)",
                "security": [],
                "responses": {**_ok(200, "The script", {"type": "string"}, "text/javascript"), **_errors(404)},
            },
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {**_ok(200, "Prometheus text", {"type": "string"}, "text/plain"), **_errors()},
            }
        },
    }


def describe() -> dict[str, Any]:
    """The OpenAPI document (a fresh copy each call)."""
    return copy.deepcopy(
        {
            "openapi": "3.0.3",
            "info": {
                "title": "stageswap",
                "version": __version__,
                "description": "Live face swap and relighting: WHIP in, WHEP and recordings out. "
                "Send `Authorization: Bearer <token>` when the server has a token.",
            },
            "paths": _paths(),
            "components": {
                "schemas": SCHEMAS,
                "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            },
            "security": [{"bearer": []}],
        }
    )


async def openapi_get(request: web.Request) -> web.Response:
    return web.json_response(describe(), headers={"Cache-Control": "no-cache"})


def register(app: web.Application) -> None:
    """Route group: ``GET /api/openapi.json``."""
    app.router.add_get("/api/openapi.json", openapi_get)
