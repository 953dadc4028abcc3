"""Root conftest.

The netconform plugin is registered through its ``pytest11`` entry point
(``pytest_netconform.plugin``, the fixtures/ folder), so it also works when the suites are run from elsewhere;
this file only keeps pytest away from generated output.
"""
collect_ignore = ["reports", ".venv"]
