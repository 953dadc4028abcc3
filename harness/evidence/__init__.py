"""The evidence room: what a run leaves for a reader. A lab's state dump, the conformance matrix
of a run's results, and the timing margins every successful wait records (margins has no
imports, so every room may record into it)."""
