"""Policy: consent records and checks, the hash-chained audit log, C2PA provenance of recordings — decided
once per settings change, never per frame.

Must not import ``streamer.commands``; ``engines`` must not import it.
"""
