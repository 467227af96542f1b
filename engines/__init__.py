"""stageswap engines: the compute, from arrays in to arrays out (usable alone: ``stageswap process``).

``face`` finds and tracks faces, ``swap`` draws an identity onto them, ``light`` relights, ``compose``
blends back and marks, ``identity`` enrolls people from photos, ``runtime`` loads and runs models;
``processor.FaceProcessor`` runs them per frame, as the fixed sequence of ``stages``, and is what ``streamer``
calls.

Must not import ``streamer`` (nor aiortc or aiohttp), and reads no policy stores (consent, audit) per frame.
"""

__version__ = "0.1.0"

import os as _os

MAX_DECODE_PIXELS = 1 << 28
"""OpenCV's own ceiling on any picture it decodes (268 Mpx: a 16k x 16k HDRI), below its default of 1 Gpx.

A backstop behind ``engines.image_header``, which refuses uploads far below this before any decoder sees
them: OpenCV reads ``OPENCV_IO_MAX_IMAGE_PIXELS`` once, when it loads, so it is set here, before anything in
``engines`` imports cv2 (a value already in the environment is kept)."""
_os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_DECODE_PIXELS))

_os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
"""onnxruntime (1.2x+ on Linux too) otherwise keeps a telemetry device id and event store under
``~/.cache/Microsoft/DeveloperTools/.onnxruntime`` from the moment it is imported: a service writes nothing
outside its data directory, and a stage machine reports to nobody. Set before anything imports onnxruntime."""
