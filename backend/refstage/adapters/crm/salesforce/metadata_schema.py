"""Validates Metadata API XML against the official v65 schema: the <types> of the vendored
wsdl/metadata-v65.wsdl here (Salesforce's forcedotcom/wsdl, BSD-3-Clause).

For each element: its name must be one the type declares, children must come in xsd:sequence order,
an element may repeat only if maxOccurs is unbounded, every minOccurs≥1 element must be present, and
leaf values must fit their type (boolean, int, long, double, enumerations). The schema's grammar is
small (complexType = optional extension of a base + one sequence; simpleType = enumeration), so this is
a direct reading of it rather than a general XSD engine.

Used by `make test` over sfdx/ and lwc/ (tests/salesforce_package) and by the push-path installer on
the bundle it is about to deploy."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterable, Mapping
from xml.etree.ElementTree import Element

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

XSD = "{http://www.w3.org/2001/XMLSchema}"
MD_NS = "http://soap.sforce.com/2006/04/metadata"
UNBOUNDED = -1
_INT = re.compile(r"^[+-]?\d+$")
_DOUBLE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$|^(INF|-INF|NaN)$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Particle:
    name: str
    type: str
    min: int
    max: int  # UNBOUNDED for "unbounded"


@dataclass(frozen=True)
class Schema:
    complex: Mapping[str, tuple[Particle, ...]]
    any_content: frozenset[str]  # complex types whose sequence ends in xsd:any (free content)
    enums: Mapping[str, frozenset[str]]
    simple_base: Mapping[str, str]


def _local(qname: str) -> str:
    return qname.split(":", 1)[-1]


def _wsdl_text() -> str:
    return resources.files("refstage.adapters.crm.salesforce").joinpath("wsdl", "metadata-v65.wsdl").read_text("utf-8")


@functools.lru_cache(maxsize=1)
def load_schema() -> Schema:
    root = SafeET.fromstring(_wsdl_text().encode())
    schema = root.find(f".//{XSD}schema")
    assert schema is not None
    raw: dict[str, tuple[str | None, list[Particle], bool]] = {}
    enums: dict[str, frozenset[str]] = {}
    simple_base: dict[str, str] = {}
    for node in schema.findall(f"{XSD}complexType"):
        base = None
        seq = node.find(f"{XSD}sequence")
        ext = node.find(f"{XSD}complexContent/{XSD}extension")
        if ext is not None:
            base = _local(ext.get("base", ""))
            seq = ext.find(f"{XSD}sequence")
        particles: list[Particle] = []
        has_any = False
        for el in list(seq) if seq is not None else []:
            if el.tag == f"{XSD}any":
                has_any = True
                continue
            if el.tag != f"{XSD}element":
                continue
            max_occurs = el.get("maxOccurs", "1")
            particles.append(Particle(el.get("name", ""), _local(el.get("type", "xsd:string")),
                                      int(el.get("minOccurs", "1")),
                                      UNBOUNDED if max_occurs == "unbounded" else int(max_occurs)))
        raw[node.get("name", "")] = (base, particles, has_any)
    for node in schema.findall(f"{XSD}simpleType"):
        restriction = node.find(f"{XSD}restriction")
        if restriction is None:
            continue
        values = [e.get("value", "") for e in restriction.findall(f"{XSD}enumeration")]
        if values:
            enums[node.get("name", "")] = frozenset(values)
        simple_base[node.get("name", "")] = _local(restriction.get("base", "xsd:string"))

    def flatten(name: str) -> tuple[Particle, ...]:
        base, particles, _ = raw[name]
        return (flatten(base) if base and base in raw else ()) + tuple(particles)

    def any_of(name: str) -> bool:
        base, _, has_any = raw[name]
        return has_any or bool(base and base in raw and any_of(base))

    return Schema(complex={n: flatten(n) for n in raw}, any_content=frozenset(n for n in raw if any_of(n)),
                  enums=enums, simple_base=simple_base)


def _check_value(schema: Schema, type_name: str, text: str) -> str | None:
    value = text.strip()
    if type_name in schema.enums:
        return None if value in schema.enums[type_name] else f"{value!r} is not one of the {type_name} values"
    base = schema.simple_base.get(type_name, type_name)
    if base == "boolean" and value not in ("true", "false", "1", "0"):
        return f"{value!r} is not a boolean"
    if base in ("int", "long") and not _INT.match(value):
        return f"{value!r} is not an integer"
    if base == "double" and not _DOUBLE.match(value):
        return f"{value!r} is not a number"
    if base == "dateTime" and not _DATETIME.match(value):
        return f"{value!r} is not a dateTime"
    if base == "date" and not _DATE.match(value):
        return f"{value!r} is not a date"
    return None


def _tag(el: Element) -> tuple[str | None, str]:
    if el.tag.startswith("{"):
        ns, local = el.tag[1:].split("}", 1)
        return ns, local
    return None, el.tag


# The js-meta.xml of a Lightning web component is read by the LWC bundle compiler, not the SOAP parser:
# Salesforce's own examples put <targets> before <targetConfigs>, against the WSDL's alphabetical sequence.
ORDER_FREE_TYPES = frozenset({"LightningComponentBundle"})


def validate_element(schema: Schema, el: Element, type_name: str, path: str) -> list[str]:
    errors: list[str] = []
    if type_name not in schema.complex:
        if len(el):
            if _local(type_name) == "base64Binary":  # e.g. LightningComponentBundle.targetConfigs: free XML
                return []
            return [f"{path}: {type_name} is a simple type but has child elements"]
        problem = _check_value(schema, type_name, el.text or "")
        return [f"{path}: {problem}"] if problem else []
    if (el.text or "").strip():
        errors.append(f"{path}: text where {type_name} expects elements")
    particles = schema.complex[type_name]
    index = {p.name: i for i, p in enumerate(particles)}
    counts: dict[str, int] = {}
    last = -1
    for child in el:
        ns, name = _tag(child)
        child_path = f"{path}/{name}"
        if ns != MD_NS:
            errors.append(f"{child_path}: not in the metadata namespace")
            continue
        if name not in index:
            if type_name not in schema.any_content:
                errors.append(f"{child_path}: {type_name} has no element {name}")
            continue
        position = index[name]
        if position < last and type_name not in ORDER_FREE_TYPES:
            after = particles[last].name
            errors.append(f"{child_path}: out of order ({name} must come before {after} in {type_name})")
        last = max(last, position)
        counts[name] = counts.get(name, 0) + 1
        particle = particles[position]
        if particle.max != UNBOUNDED and counts[name] > particle.max:
            errors.append(f"{child_path}: {name} may appear at most {particle.max} time(s) in {type_name}")
        errors += validate_element(schema, child, particle.type, child_path)
    for particle in particles:
        if particle.min > counts.get(particle.name, 0) and particle.name != "fullName":
            errors.append(f"{path}: {type_name} requires {particle.name}")
    return errors


def validate_xml(text: str | bytes, source: str = "") -> list[str]:
    """Schema errors of one metadata file (source or metadata format); its root names its type."""
    schema = load_schema()
    try:
        root = SafeET.fromstring(text.encode() if isinstance(text, str) else text)
    except (SafeET.ParseError, DefusedXmlException) as exc:
        return [f"{source}: not well-formed XML, or XML with a DTD or entities ({exc})"]
    ns, name = _tag(root)
    if ns != MD_NS:
        return [f"{source}: root element {name} is not in the metadata namespace"]
    if name not in schema.complex:
        return [f"{source}: {name} is not a Metadata API type"]
    return [f"{source}: {e}" for e in validate_element(schema, root, name, name)]


XML_SUFFIXES = (".xml", ".workflow", ".flow")


def schema_errors_of_files(files: Mapping[str, str]) -> list[str]:
    """Errors of every XML file of a bundle (name → text); Apex source is not XML and is skipped."""
    return [e for name, text in files.items() if name.endswith(XML_SUFFIXES) for e in validate_xml(text, name)]


def schema_errors_of_tree(roots: Iterable[Path]) -> list[str]:
    errors: list[str] = []
    for root in roots:
        for path in sorted(root.rglob("*-meta.xml")):
            if "__tests__" in path.parts:
                continue
            errors += validate_xml(path.read_bytes(), str(path))
    return errors
