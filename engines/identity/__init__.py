"""Who can be swapped in: enrollment from photos, texture cleanup, embeddings, the identity store on disk.

Must not import ``engines.processor`` or ``streamer`` (consent for an identity is policy:
``streamer.governance``).
"""
