"""Faces in a frame: detection (YuNet), the 468-point mesh, tracking and smoothing, geometry, topology.

Must not import the other engine packages but ``engines.runtime`` (everything else builds on faces).
"""
