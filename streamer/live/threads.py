"""The live service's threads are its own: OpenCV's thread pool is turned off in a server.

A server already runs one thread per job — a worker per stream, a shared encoder per view, aiortc's decoder and
the event loop — and keeps every engine to one thread of its own (ONNX Runtime's and LiteRT's sessions take one:
``engines.runtime``). OpenCV alone splits each call over a pool of one thread per core, and a pool thread that
finishes its stripe waits actively for the next call (``sched_yield`` in a loop) before it sleeps. With the
frame's dozens of small calls (crops, resizes, blurs, remaps at the face's working size, the encoder's colour
conversion) that bought nothing on the two cores the live path already keeps busy: the calling thread took as
long as with one thread, and the pool's stripes and waits cost 0.6 ms more CPU per 1.0 ms of calls (a 720p
colour conversion, a resize and a small blur, paced at 50 Hz on this 2-core machine), and 1-2 ms per processed
frame of the worker and the shared encoder in a replay of the live path (BENCHMARKS.md, issue 27). The results
are the same to the bit (processed s18.mp4 and d10.mp4, lossless, with and without the pool).

``OPENCV_FOR_THREADS_NUM`` in the environment, OpenCV's own setting, is the operator's choice and is left alone.
"""

from __future__ import annotations

import os

OPENCV_THREADS_ENV = "OPENCV_FOR_THREADS_NUM"


def single_threaded_opencv() -> bool:
    """Run every OpenCV call on its calling thread (call once at start, before the threads start). True when
    applied; False when the environment sets OpenCV's thread count."""
    if OPENCV_THREADS_ENV in os.environ:
        return False
    import cv2

    cv2.setNumThreads(1)
    return True
