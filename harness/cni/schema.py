"""JSON Schemas of the CNI spec's result types, and validators returning problems.

SPEC.md, section 5 ("Result Types") of spec-v1.0.0 and spec-v1.1.0, and the "Result"
and "Well-known Structures" sections of spec-v0.4.0:

- ADD success: ``cniVersion`` (the version supplied on input), ``interfaces``
  (``name``, ``mac``, ``sandbox``; 1.1.0 adds ``mtu``, ``socketPath``, ``pciID``),
  ``ips`` (``address`` in CIDR, ``gateway``, ``interface``: an index into
  ``interfaces``; 0.4.0 also has ``version``: "4" or "6", removed in 1.0.0),
  ``routes`` (``dst`` in CIDR, ``gw``; 1.1.0 adds ``mtu``, ``advmss``, ``priority``,
  ``table``, ``scope``) and ``dns`` (``nameservers``, ``domain``, ``search``, ``options``).
- VERSION success: ``cniVersion``, ``supportedVersions``.
- Error: ``cniVersion``, ``code``, ``msg``, ``details``; codes 0-99 are reserved for the
  well-known errors of the version (0.4.0: "Error codes 1-99 must not be used other
  than as specified here").

Unknown keys are allowed (the spec does not forbid them). Every validator returns a
list of problems, each ``"<path>: <what>"``; an empty list means valid.
"""
from __future__ import annotations

import ipaddress
import json
import re

from jsonschema import Draft202012Validator, FormatChecker

VERSIONS = ("0.4.0", "1.0.0", "1.1.0")

# Well-known error codes per spec version (meaning, for messages).
WELL_KNOWN_CODES = {
    "0.4.0": {1: "incompatible CNI version", 2: "unsupported field in network configuration",
              3: "container unknown or does not exist", 11: "try again later"},
}
WELL_KNOWN_CODES["1.0.0"] = {**WELL_KNOWN_CODES["0.4.0"], 4: "invalid necessary environment variables",
                             5: "I/O failure", 6: "failed to decode content", 7: "invalid network config"}
WELL_KNOWN_CODES["1.1.0"] = {**WELL_KNOWN_CODES["1.0.0"], 50: "the plugin is not available",
                             51: "the plugin is not available, existing containers may have limited connectivity"}

FORMATS = FormatChecker(formats=())
MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5,19}$")  # Ethernet (6 bytes) up to InfiniBand (20)
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")


@FORMATS.checks("cidr", raises=ValueError)
def _cidr(text) -> bool:
    if isinstance(text, str):
        if "/" not in text:
            raise ValueError("no prefix length: CIDR notation is ADDRESS/PREFIX")
        ipaddress.ip_interface(text)
    return True


@FORMATS.checks("ip", raises=ValueError)
def _ip(text) -> bool:
    if isinstance(text, str):
        ipaddress.ip_address(text)
    return True


@FORMATS.checks("mac")
def _mac(text) -> bool:
    return not isinstance(text, str) or bool(MAC.match(text))


@FORMATS.checks("semver")
def _semver(text) -> bool:
    return not isinstance(text, str) or bool(SEMVER.match(text))


UINT = {"type": "integer", "minimum": 0}
STRINGS = {"type": "array", "items": {"type": "string"}}
SEMVER_STRING = {"type": "string", "format": "semver"}
DNS = {"type": "object", "properties": {
    "nameservers": {"type": "array", "items": {"type": "string", "format": "ip"}},
    "domain": {"type": "string"}, "search": STRINGS, "options": STRINGS}}


def _result_schema(version: str) -> dict:
    interface = {"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string", "minLength": 1}, "mac": {"type": "string", "format": "mac"},
        "sandbox": {"type": "string"}}}
    ip = {"type": "object", "required": ["address"], "properties": {
        "address": {"type": "string", "format": "cidr"}, "gateway": {"type": "string", "format": "ip"},
        "interface": UINT}}
    route = {"type": "object", "required": ["dst"], "properties": {
        "dst": {"type": "string", "format": "cidr"}, "gw": {"type": "string", "format": "ip"}}}
    if version == "0.4.0":
        ip["required"] = ["version", "address"]
        ip["properties"]["version"] = {"enum": ["4", "6"]}
    if version == "1.1.0":
        interface["properties"].update(mtu=UINT, socketPath={"type": "string", "pattern": "^/"},
                                       pciID={"type": "string"})
        route["properties"].update(mtu=UINT, advmss=UINT, priority=UINT, table=UINT,
                                   scope={"type": "integer", "minimum": 0, "maximum": 255})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"CNI {version} ADD success result",
        "type": "object", "required": ["cniVersion"],
        "properties": {"cniVersion": SEMVER_STRING, "interfaces": {"type": "array", "items": interface},
                       "ips": {"type": "array", "items": ip}, "routes": {"type": "array", "items": route},
                       "dns": DNS},
    }


RESULT_SCHEMAS = {version: _result_schema(version) for version in VERSIONS}
ERROR_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema", "title": "CNI error",
    "type": "object", "required": ["cniVersion", "code", "msg"],
    "properties": {"cniVersion": SEMVER_STRING, "code": UINT, "msg": {"type": "string"},
                   "details": {"type": "string"}},
}
VERSION_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema", "title": "CNI VERSION success result",
    "type": "object", "required": ["cniVersion", "supportedVersions"],
    "properties": {"cniVersion": SEMVER_STRING,
                   "supportedVersions": {"type": "array", "minItems": 1, "items": SEMVER_STRING}},
}


def _path(parts) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top)"


def _schema_problems(schema: dict, document) -> list[str]:
    validator = Draft202012Validator(schema, format_checker=FORMATS)
    return [f"{_path(error.absolute_path)}: {error.message}"
            for error in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))]


def _family(text: str) -> int | None:
    try:
        return ipaddress.ip_interface(text).version
    except ValueError:
        return None


def validate_result(result, version: str) -> list[str]:
    """Problems of an ADD result against the spec ``version`` it was asked in (empty: valid)."""
    if version not in RESULT_SCHEMAS:
        return [f"(top): no schema for cniVersion {version!r} (known: {', '.join(VERSIONS)})"]
    problems = _schema_problems(RESULT_SCHEMAS[version], result)
    if not isinstance(result, dict):
        return problems
    if isinstance(result.get("cniVersion"), str) and result["cniVersion"] != version:
        problems.append(f"cniVersion: {result['cniVersion']!r}, but the request was in {version!r} "
                        "(spec: the same version supplied on input)")
    interfaces = result.get("interfaces") if isinstance(result.get("interfaces"), list) else []
    for i, ip in enumerate(result.get("ips") or []):
        if not isinstance(ip, dict):
            continue
        index = ip.get("interface")
        if isinstance(index, int) and not 0 <= index < len(interfaces):
            problems.append(f"ips[{i}].interface: {index} is not an index into interfaces "
                            f"({len(interfaces)} interface(s))")
        family = _family(ip.get("address", "")) if isinstance(ip.get("address"), str) else None
        if version == "0.4.0" and family and ip.get("version") in ("4", "6") and ip["version"] != str(family):
            problems.append(f"ips[{i}].version: {ip['version']!r}, but address {ip['address']} is IPv{family}")
        gateway = ip.get("gateway")
        if family and isinstance(gateway, str) and _family(gateway) not in (None, family):
            problems.append(f"ips[{i}].gateway: {gateway} is not IPv{family} like address {ip['address']}")
    for i, route in enumerate(result.get("routes") or []):
        if isinstance(route, dict) and isinstance(route.get("dst"), str) and isinstance(route.get("gw"), str):
            family, gw_family = _family(route["dst"]), _family(route["gw"])
            if family and gw_family and family != gw_family:
                problems.append(f"routes[{i}].gw: {route['gw']} is not IPv{family} like dst {route['dst']}")
    return problems


def validate_error(error, version: str, *, require_version: bool = True) -> list[str]:
    """Problems of an error object: its shape, and a code the spec ``version`` allows.

    ``require_version=False`` leaves out the ``cniVersion`` key (checked on its own by the
    suite, so that one missing key does not hide the rest)."""
    schema = ERROR_SCHEMA if require_version else dict(
        ERROR_SCHEMA, required=[key for key in ERROR_SCHEMA["required"] if key != "cniVersion"])
    problems = _schema_problems(schema, error)
    code = error.get("code") if isinstance(error, dict) else None
    known = WELL_KNOWN_CODES.get(version, WELL_KNOWN_CODES["1.1.0"])
    if isinstance(code, int) and code < 100 and code not in known:
        allowed = ", ".join(f"{c} ({what})" for c, what in sorted(known.items()))
        problems.append(f"code: {code} is reserved and not a well-known error of CNI {version} "
                        f"(0-99 are reserved; {version} defines {allowed}; plugin-specific codes are 100+)")
    return problems


def code_2_problems(error, key: str, value) -> list[str]:
    """SPEC-124 (SPEC.md Error, code 2, MUST: "The error message must contain the key and value of the
    unsupported field"): what an error object of code 2 given for the unsupported ``key`` = ``value`` lacks,
    in its ``msg`` and ``details``; nothing for another code (the rule is code 2's)."""
    if not isinstance(error, dict) or error.get("code") != 2:
        return []
    text = f"{error.get('msg', '')} {error.get('details', '')}"
    shown = value if isinstance(value, str) else json.dumps(value)
    missing = [what for what, part in (("key", key), ("value", shown)) if part not in text]
    return [f"SPEC-124: code 2's message {text.strip()!r} does not contain the unsupported field's "
            f"{' and '.join(missing)} ({key}: {shown})"] if missing else []


def validate_version(answer, version: str) -> list[str]:
    """Problems of a VERSION answer to a request in ``version``.

    From 1.0.0 its ``cniVersion`` is "the value of cniVersion specified on input"; 0.4.0
    only asks for "the version of the CNI spec in use for this output"."""
    problems = _schema_problems(VERSION_SCHEMA, answer)
    if isinstance(answer, dict) and version != "0.4.0" and isinstance(answer.get("cniVersion"), str) \
            and answer["cniVersion"] != version:
        problems.append(f"cniVersion: {answer['cniVersion']!r}, but the request was in {version!r} "
                        "(spec: the value of cniVersion specified on input)")
    return problems


def validate_ipam_result(result, version: str) -> list[str]:
    """Problems of a delegated IPAM plugin's ADD result, each naming its statements (empty: valid).

    The abbreviated result (spec-v1.0.0 and -v1.1.0, Section 5 > Delegated plugins (IPAM), MUST:
    ``ips``, ``routes`` and ``dns``, no ``interfaces``; spec-v0.4.0, IP Address Management (IPAM)
    Interface: "should return an abbreviated Result structure that does not include the interfaces
    key", and of ``ips[].interface``, "IPAM plugins should not return this key"): the ADD result's
    schema with both of them absent, the asked cniVersion, and at least one address (SPEC-104: the IPAM
    "must determine the interface IP/subnet [...] and return this information")."""
    old = version == "0.4.0"
    form, interfaces, index = (("SPEC-191", "SPEC-192, SPEC-164", "SPEC-201, SPEC-166") if old
                               else ("SPEC-121", "SPEC-121", "SPEC-121"))
    problems = []
    for problem in validate_result(result, version):
        if problem.startswith("cniVersion:") and "request was in" in problem:
            problems.append(f"{'SPEC-193' if old else 'SPEC-121'}: {problem}")
        elif not re.match(r"ips\[\d+\]\.interface: \d+ is not an index", problem):  # said below, once
            problems.append(f"{form}: {problem}")
    if not isinstance(result, dict):
        return problems
    if "interfaces" in result:
        problems.append(f"{interfaces}: the IPAM result has an interfaces key ({result['interfaces']!r}); "
                        "the abbreviated result has none")
    for i, ip in enumerate(result.get("ips") if isinstance(result.get("ips"), list) else []):
        if isinstance(ip, dict) and "interface" in ip:
            problems.append(f"{index}: ips[{i}] has an interface index ({ip['interface']!r}); an IPAM plugin "
                            "knows no interfaces")
    if not result.get("ips"):
        problems.append("SPEC-104: the IPAM result holds no address (ips)")
    return problems
