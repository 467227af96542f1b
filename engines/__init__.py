"""stageswap engines: the compute, from arrays in to arrays out.

Nothing in this package knows about streams, HTTP or WebRTC; `streamer` calls it through
`engines.processor.FaceProcessor`.
"""

__version__ = "0.1.0"
