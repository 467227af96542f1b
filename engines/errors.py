"""One exception tree for everything stageswap raises on purpose.

Library code raises these; only the CLI (`streamer.__main__`) turns them into a message and an
exit status. Every message is meant for a user: it names the thing, the place and the fix.
"""

from __future__ import annotations


class StageswapError(Exception):
    """Base of every error stageswap raises deliberately (shown to users without a traceback)."""


class ModelError(StageswapError):
    """A model is unknown, missing, corrupt or cannot be loaded."""


class InputError(StageswapError):
    """An input (video, photo, settings value) cannot be used."""


class OutputError(StageswapError):
    """An output cannot be written."""


class EngineError(StageswapError):
    """An engine failed on one frame; the frame passes through unprocessed."""
