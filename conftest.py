"""Root conftest.

The netconform plugin is registered through its ``pytest11`` entry point
(``fixtures.plugin``), so it also works when the suites are run from elsewhere;
this file only keeps pytest away from generated output.
"""
collect_ignore = ["reports", ".venv"]
