"""Known deviations as data: an implementation's expectations file (expectations/<build id>.yaml
beside this module, or a user's own with ``--expectations FILE``).

A file is a mapping with ``deviations``, a list of entries; each names

- ``case``: the spec suite's case (``check-after-add``, ``no-command``, ...);
- ``plugin``: the plugin type that deviates, or ``"*"`` for every plugin of the build;
- ``versions``: the cniVersions at which it deviates;
- ``signature``: text every claim of the failure contains (anything else is a new failure);
- ``does``: what the implementation does;
- ``clause``: the spec's sentence it departs from, quoted, with ``level`` (MUST, SHOULD, ...)
  and ``spec`` (the SPEC.md tag the sentence is read from);
- ``upstream``: the upstream issue, where there is one (``containernetworking/plugins#819``).
- ``families``: ``[4, 6]`` when the deviation shows only for configurations with ranges of exactly those IP
  versions (a dual-stack pod); without it, for any.
- ``config``: a mapping of keys the plugin's own configuration must hold with those values for the
  deviation to show (``{ipMasq: true}``: the ipMasq chain it leaves); without it, any configuration. So a
  configuration that cannot show it neither expects it nor reports it "fixed".

A malformed file is one line naming the file and the entry.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import yaml

from harness import yamlfile
from harness.errors import NetconformError

EXPECTATIONS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "expectations")
REQUIRED = ("case", "plugin", "versions", "signature", "does", "clause", "level", "spec")
OPTIONAL = ("upstream", "families", "config")  # families: only for configurations with ranges of exactly these IP versions
LEVELS = ("MUST", "MUST NOT", "SHOULD", "SHOULD NOT", "MAY")


class ExpectationsError(NetconformError):
    """An expectations file netconform cannot read."""


@dataclass(frozen=True)
class Deviation:
    """One known deviation of one implementation from the spec."""
    case: str
    plugin: str
    versions: tuple[str, ...]
    signature: str
    does: str
    clause: str
    level: str
    spec: str
    source: str  # the file that lists it
    upstream: str = ""
    families: tuple[int, ...] = ()  # () : whatever IP versions the configuration has
    config: tuple[tuple[str, object], ...] = ()  # () : whatever the plugin's configuration holds

    def applies(self, case: str, plugin: str, version: str, families: list[int] | None = None,
                plugin_config: dict | None = None) -> bool:
        """Whether this deviation is the one to expect of ``plugin`` in ``case`` at ``version``, for a
        configuration with ranges of ``families`` (4, 6) whose entry for ``plugin`` is ``plugin_config``."""
        if self.families and families is not None and tuple(sorted(families)) != self.families:
            return False
        if self.config and plugin_config is not None and any(plugin_config.get(k) != v for k, v in self.config):
            return False
        return self.case == case and self.plugin in ("*", plugin) and version in self.versions

    def describe(self, plugin: str, implementation: str) -> str:
        upstream = f" ({self.upstream})" if self.upstream else ""
        return (f"known deviation of {plugin} ({implementation}): {self.does}{upstream}; "
                f"{self.spec} {self.level}: \"{self.clause}\"")


def load(path: str) -> list[Deviation]:
    """Every deviation ``path`` lists; a malformed file is one line naming the file and the entry."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = yamlfile.load(handle)
    except OSError as exc:
        raise ExpectationsError(f"{path}: cannot read the expectations file: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ExpectationsError(f"{path}: not YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("deviations"), list) or set(data) - {"deviations"}:
        raise ExpectationsError(f"{path}: an expectations file is a mapping with one key, deviations: a list")
    deviations = []
    for number, entry in enumerate(data["deviations"], 1):
        name = f"{path}: deviation {number}"
        if not isinstance(entry, dict):
            raise ExpectationsError(f"{name}: an entry is a mapping of {', '.join(REQUIRED)} and maybe upstream")
        missing = [key for key in REQUIRED if key not in entry]
        unknown = sorted(set(entry) - set(REQUIRED) - set(OPTIONAL))
        if missing or unknown:
            what = "; ".join(filter(None, [missing and f"missing {', '.join(missing)}",
                                           unknown and f"unknown {', '.join(map(str, unknown))}"]))
            raise ExpectationsError(f"{name} ({entry.get('case', '?')}): {what}")
        versions = entry["versions"]
        if not isinstance(versions, list) or not versions or not all(isinstance(v, str) for v in versions):
            raise ExpectationsError(f"{name} ({entry['case']}): versions is a list of quoted cniVersions")
        if entry["level"] not in LEVELS:
            raise ExpectationsError(f"{name} ({entry['case']}): level is one of {', '.join(LEVELS)}, "
                                    f"not {entry['level']!r}")
        families = entry.get("families", [])
        if not isinstance(families, list) or not all(f in (4, 6) for f in families):
            raise ExpectationsError(f"{name} ({entry['case']}): families is a list of IP versions, 4 and/or 6")
        config = entry.get("config", {})
        if not isinstance(config, dict) or not all(isinstance(k, str) for k in config):
            raise ExpectationsError(f"{name} ({entry['case']}): config is a mapping of the plugin's configuration keys")
        texts = {key: entry[key] for key in (*REQUIRED, *OPTIONAL)
                 if key in entry and key not in ("versions", "families", "config")}
        empty = [key for key, value in texts.items() if not isinstance(value, str) or not value.strip()]
        if empty:
            raise ExpectationsError(f"{name} ({entry['case']}): {', '.join(empty)} must be non-empty text")
        deviations.append(Deviation(versions=tuple(versions), source=path, families=tuple(sorted(families)),
                                    config=tuple(sorted(config.items())), **texts))
    return deviations


def file_of(build_id: str) -> str:
    return os.path.join(EXPECTATIONS_DIR, f"{build_id}.yaml")


@functools.lru_cache(maxsize=None)  # read once per process
def for_build(build_id: str | None) -> tuple[Deviation, ...]:
    """The deviations the catalogue build ``build_id`` is known for (none without a file)."""
    if build_id is None or not os.path.exists(file_of(build_id)):
        return ()
    return tuple(load(file_of(build_id)))
