"""Errors of the live service that carry the HTTP status they are answered with.

All are InputError (a request that cannot be served, with the reason); the API's error middleware
answers ``{"error": reason}`` with ``http_status`` (400 for any other StageswapError input problem).
"""

from __future__ import annotations

from engines.errors import InputError


class ForbiddenError(InputError):
    """The token is valid but may not do this (a viewer token asking for control)."""

    http_status = 403


class NotFoundError(InputError):
    """Something named in the request does not exist (a stream, a session, an identity)."""

    http_status = 404


class ConflictError(InputError):
    """The request conflicts with the current state, e.g. a second publisher on a busy stream."""

    http_status = 409


class PayloadTooLargeError(InputError):
    """The request body is over the configured limit."""

    http_status = 413


class RequestTimeoutError(InputError):
    """The request's body did not arrive in time (a stalled or trickling client); its connection is closed."""

    http_status = 408
    http_headers = {"Connection": "close"}


class UnsupportedMediaTypeError(InputError):
    """The request body has the wrong Content-Type (e.g. WHIP without ``application/sdp``)."""

    http_status = 415


class CapacityError(InputError):
    """A configured limit is reached: more streams than cores, too many viewers (503 with Retry-After, as
    RFC 9725 asks of an overloaded WHIP endpoint)."""

    http_status = 503
    http_headers = {"Retry-After": "5"}
