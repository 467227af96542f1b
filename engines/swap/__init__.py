"""Face swap engines behind one seam: draw the face, render an identity onto it.

``mesh`` is the embedded default (an enrolled identity's texture on the tracked 468-point mesh, CPU and
no learned weights); learned swappers plug in next to it.
"""

from engines.swap.mesh import FaceGeometry, MeshSwapper, SwapConfig

__all__ = ["FaceGeometry", "MeshSwapper", "SwapConfig"]
