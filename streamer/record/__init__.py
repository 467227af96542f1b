"""Recordings: encoding, formats and timecode, the recorder thread, recording sessions, repair of an
interrupted file, and the batch ``process`` path through the same writer.

Must not import ``streamer.api`` or ``streamer.commands``.
"""
