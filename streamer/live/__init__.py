"""The live path: WebRTC (WHIP in, WHEP out), the frame rings (CPU and CUDA), the worker thread, fan-out to
viewers and recorders, non-WebRTC sources, per-stream state and figures.

Must not import ``streamer.api``, ``streamer.record`` or ``streamer.commands``.
"""
