"""Package discovery for netconform (the metadata is in pyproject.toml).

harness/ installs as ``harness`` with every subpackage found here. Two folders install under
import names of their own, so that an installed netconform clashes with nothing on PyPI:
fixtures/ (the pytest glue) as ``pytest_netconform``, because PyPI's ``fixtures`` package
already owns the name ``fixtures``; suites/ as ``netconform_suites``, so that an installed copy
runs with ``pytest --pyargs netconform_suites``.
"""
from setuptools import find_packages, setup

RENAMED = {"pytest_netconform": "fixtures", "netconform_suites": "suites"}


def packages() -> list[str]:
    found = find_packages(include=["harness", "harness.*"])
    for name, folder in RENAMED.items():
        found += [name] + [f"{name}.{sub}" for sub in find_packages(folder)]
    return found


setup(packages=packages(), package_dir=RENAMED)
