"""The frame path as stages: what ``engines.processor.FaceProcessor`` runs on each frame, in a fixed order.

``track`` → ``targets`` → per face: ``swap`` → ``mask`` → ``relight`` → ``blend`` → ``overlay`` → ``mark``.
Each stage is a small object that owns its state across frames (per face where the work is per face, forgotten
when the face leaves) and times its own work into the frame's ``stage_ms``; the per-face stages read and add to
one ``FaceContext``. One worker thread runs them in turn: nothing queues. The stages orchestrate; the maths stays
in ``engines.face``, ``engines.swap``, ``engines.light`` and ``engines.compose`` (the GPU path fills the same
shape with torch stages).

Must not import ``engines.processor`` (it builds the stages) or ``streamer``.
"""
