"""netconform's library: sandbox, labs as data, the in-process builder and the probe engine.

It knows nothing of pytest; ``fixtures`` is the thin pytest glue over it.
"""
__version__ = "0.1.0"
