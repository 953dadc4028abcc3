"""The lab file schema (JSON Schema, draft 2020-12): what keys a lab may have, and their types.

Unknown keys are errors. Meaning (unknown nodes, unreachable gateways...) is checked
in ``harness.lab.checks``.
"""
from __future__ import annotations

from typing import Any

from harness.kernel.constants import LINK_KINDS, ROUTE_PROTOCOLS, ROUTE_TYPES, SCOPES

_port = {
    "type": "object", "additionalProperties": False,
    "properties": {k: {"type": "boolean"} for k in ("learning", "flood", "hairpin", "isolated")}
    | {"cost": {"type": "integer", "minimum": 1}},
}
MAC_SCHEMA = {"type": "string", "pattern": "^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$"}
_common_link = {
    "name": {"type": "string"},
    "addresses": {"type": "array", "items": {"type": "string"}},
    "mac": MAC_SCHEMA,
    "mtu": {"type": "integer", "minimum": 68, "maximum": 65535},
    "up": {"type": "boolean"},
    "master": {"type": "string"},
    "port": _port,
}
LAB_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["lab", "nodes"],
    "properties": {
        "lab": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*$"},
        "document": {"type": "string"},
        "section": {"type": "string"},
        "summary": {"type": "string"},
        "nodes": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {
                "type": ["object", "null"],
                "additionalProperties": False,
                "properties": {
                    "sysctls": {"type": "object", "additionalProperties": {"type": ["integer", "string"]}},
                    "links": {"type": "array", "items": {
                        "type": "object", "additionalProperties": False, "required": ["name", "kind"],
                        "properties": _common_link | {
                            "kind": {"enum": list(LINK_KINDS)},
                            "peer": {"type": "object", "additionalProperties": False, "required": ["name"],
                                     "properties": _common_link | {"node": {"type": "string"}}},
                            "bridge": {"type": "object", "additionalProperties": False, "properties": {
                                "stp": {"type": "boolean"},
                                "ageing_time": {"type": "number", "minimum": 0},
                                "forward_delay": {"type": "number", "minimum": 0},
                                "vlan_filtering": {"type": "boolean"}}},
                            "parent": {"type": "string"},
                            "mode": {"type": "string"},
                            "id": {"type": "integer", "minimum": 0},
                            "vxlan": {"type": "object", "additionalProperties": False, "properties": {
                                "id": {"type": "integer", "minimum": 0, "maximum": 16777215},
                                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                                "local": {"type": "string"}, "remote": {"type": "string"},
                                "learning": {"type": "boolean"}}},
                            "table": {"type": "integer"},
                            "ipip": {"type": "object", "additionalProperties": False, "properties": {
                                "local": {"type": "string"}, "remote": {"type": "string"},
                                "ttl": {"type": "integer", "minimum": 1, "maximum": 255}}},
                        }}},
                    "routes": {"type": "array", "items": {
                        "type": "object", "additionalProperties": False, "required": ["dst"],
                        "properties": {
                            "dst": {"type": "string"}, "via": {"type": "string"}, "dev": {"type": "string"},
                            "type": {"enum": list(ROUTE_TYPES)},
                            "scope": {"enum": list(SCOPES)},
                            "table": {"type": ["integer", "string"]}, "metric": {"type": "integer"},
                            "src": {"type": "string"}, "onlink": {"type": "boolean"},
                            "proto": {"anyOf": [{"enum": list(ROUTE_PROTOCOLS)},
                                                {"type": "integer", "minimum": 0, "maximum": 255}]},
                            "nexthops": {"type": "array", "minItems": 1, "items": {
                                "type": "object", "additionalProperties": False,
                                "properties": {"via": {"type": "string"}, "dev": {"type": "string"},
                                               "weight": {"type": "integer", "minimum": 1}}}}}}},
                    "rules": {"type": "array", "items": {
                        "type": "object", "additionalProperties": False, "required": ["table"],
                        "properties": {"from": {"type": "string"}, "to": {"type": "string"},
                                       "iif": {"type": "string"}, "oif": {"type": "string"},
                                       "table": {"type": ["integer", "string"]},
                                       "priority": {"type": "integer", "minimum": 0}}}},
                    "neighbours": {"type": "array", "items": {
                        "type": "object", "additionalProperties": False, "required": ["dst", "dev"],
                        "properties": {"dst": {"type": "string"}, "dev": {"type": "string"},
                                       "lladdr": MAC_SCHEMA, "proxy": {"type": "boolean"}}}},
                    "fdb": {"type": "array", "items": {
                        "type": "object", "additionalProperties": False, "required": ["mac", "dev"],
                        "properties": {"mac": MAC_SCHEMA, "dev": {"type": "string"},
                                       "dst": {"type": "string"}, "master": {"type": "boolean"}}}},
                    "iptables": {"type": "array", "items": {"type": "string"}},
                    "nftables": {"type": "string"},
                },
            },
        },
    },
}
