"""The implementations room: the catalogue of builds netconform validates (real Debian builds of
the CNI reference plugins and netavark, from four releases) and their fetching into a cache,
privately, with nothing installed on the machine. Imports run to harness.errors and paths only."""
