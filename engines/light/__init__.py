"""Light on a face: second-order spherical-harmonics maths (``sh``) and relighting (``relight``), numpy
stages and their torch twins.

Must not import ``engines.processor``, ``engines.identity``, ``engines.compose`` or ``streamer``.
"""
