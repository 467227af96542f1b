"""The HTTP and WebSocket surface: the app factory, routes, OpenAPI, auth, rate limits, TLS.

Must not import ``streamer.commands``; nothing below it (``live``, ``record``, ``governance``) imports it.
"""
