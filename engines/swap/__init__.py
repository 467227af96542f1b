"""Face swap engines behind one seam: draw the face, render an identity onto it.

``mesh`` is the embedded default (an enrolled identity's texture on the tracked 468-point mesh, CPU and
no learned weights); learned swappers (``learned``: inswapper-style, DFM, neural renderer with ``neural``) plug
in next to it, with the models users bring (``user_models``, ``model_inspect``), the rasteriser and the texture space.

Must not import ``engines.processor``, ``engines.compose`` or ``streamer``.
"""
