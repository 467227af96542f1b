"""Training a production's own swap model: facesets from footage, DF/LIAE autoencoders, DFM export.

- ``faceset``: every frame of a clip (or a few photos) tracked with stageswap's tracker, the face cut in the
  DFM whole-face framing (``engines.swap.align.align_mesh``) with its masks from the mesh, unsuitable faces
  dropped with the reason counted; stored as PNGs a user can look through and prune.
- ``nets``: the autoencoders (DeepFaceLab's published DF and LIAE designs, arXiv 2005.05535, written from the
  paper), and the DFM-signature wrapper that export uses.
- ``data``, ``losses``: training batches (random warp, colour augmentation) and masked DSSIM + MSE.
- ``trainer``: the training loop (CPU, CUDA, several GPUs through torchrun), checkpoints, progress, previews.
- ``export``: the finished model as a DFM that stageswap and DeepFaceLive both run.
- ``neural_render``: deferred neural rendering (a neural texture over the mesh swap's layout and a U-Net, trained
  on the src person alone; measured against DF in BENCHMARKS.md) and its ONNX export, registered as swap model
  kind ``dnr`` (``stageswap train --arch dnr``) and run on live faces without torch by
  ``engines.swap.learned.NeuralRenderSwapper``.

Must not import ``engines.processor`` or ``streamer`` (the consent a trained likeness
needs is checked by the command that trains it, ``streamer.commands.train``).
"""
