"""The bench room: ``make bench`` (run), its bars and table (report), scale and a CNI ADD's cost
(scale), the suites' wall time (suitetimes), and the soak (``make soak``). It sits on top: it
uses every other room, and nothing imports it."""
