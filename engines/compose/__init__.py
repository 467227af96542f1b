"""Putting a rendered face back: masks, occlusion, colour match, blending and paste-back, the watermark.

Must not import ``engines.processor``, ``engines.identity`` or ``streamer``.
"""
