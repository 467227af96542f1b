"""stageswap streamer: the real-time service and the command line around the engines.

``live`` moves frames (WebRTC, ring, worker, fan-out, sources), ``record`` writes them to disk, ``api`` is
the HTTP/WebSocket surface, ``governance`` decides consent, audit and provenance, ``commands`` is the CLI;
``service`` is the context the routes share, ``config`` what ``serve`` is told.

Depends on ``engines`` one way (``engines`` must not import this package); nothing here may import
``streamer.commands`` but ``__main__``.
"""
