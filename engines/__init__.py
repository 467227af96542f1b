"""stageswap engines: the compute, from arrays in to arrays out (usable alone: ``stageswap process``).

``face`` finds and tracks faces, ``swap`` draws an identity onto them, ``light`` relights, ``compose``
blends back and marks, ``identity`` enrolls people from photos, ``runtime`` loads and runs models;
``processor.FaceProcessor`` runs them per frame and is what ``streamer`` calls.

Must not import ``streamer`` (nor aiortc or aiohttp), and reads no policy stores (consent, audit) per frame.
"""

__version__ = "0.1.0"
