"""Probe actions as named steps: a report (or anything else) can wrap each one.

A probe has a ``stage`` attribute: ``None``, or a callable taking a title and
returning a context manager, inside which the action runs (Allure makes it a step).
"""
from __future__ import annotations

import functools


def reported(title):
    """Decorate a probe method; ``title(*args, **kwargs)`` names the step."""
    def decorate(method):
        @functools.wraps(method)
        def run(self, *args, **kwargs):
            stage = getattr(self, "stage", None)
            if stage is None:
                return method(self, *args, **kwargs)
            with stage(title(*args, **kwargs)):
                return method(self, *args, **kwargs)
        return run
    return decorate
