"""The v65 Metadata API schema (the ``<types>`` of the vendored metadata WSDL) and a checker that
reads a component's XML the way the Metadata API's parser does: unknown elements, values outside an
enumeration and malformed booleans/numbers are errors with Salesforce's wording and a line number.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from defusedxml import ElementTree as ET

MD_URI = "http://soap.sforce.com/2006/04/metadata"
XSD = "{http://www.w3.org/2001/XMLSchema}"
# The product validates its own bundles against the same file, so it ships it (refstage.adapters.crm.salesforce).
WSDL_PATH = Path(str(resources.files("refstage.adapters.crm.salesforce").joinpath("wsdl", "metadata-v65.wsdl")))


@dataclass
class ElementDecl:
    name: str
    type: str            # "xsd:string", "tns:CustomField", ...
    min_occurs: int
    many: bool


@dataclass
class ComplexType:
    name: str
    base: str | None
    elements: dict[str, ElementDecl] = field(default_factory=dict)


@dataclass
class Schema:
    complex: dict[str, ComplexType]
    enums: dict[str, list[str]]

    def all_elements(self, type_name: str) -> dict[str, ElementDecl]:
        out: dict[str, ElementDecl] = {}
        chain = []
        t = self.complex.get(type_name)
        while t is not None:
            chain.append(t)
            t = self.complex.get(t.base) if t.base else None
        for t in reversed(chain):
            out.update(t.elements)
        return out

    def is_metadata_type(self, type_name: str) -> bool:
        """Whether type_name is a deployable component type (extends Metadata, directly or not)."""
        t = self.complex.get(type_name)
        seen = 0
        while t is not None and seen < 20:
            if t.base == "Metadata":
                return True
            t = self.complex.get(t.base) if t.base else None
            seen += 1
        return False


def _local(qname: str | None) -> str:
    return (qname or "").split(":", 1)[-1]


@functools.lru_cache(maxsize=1)
def load_schema(path: Path = WSDL_PATH) -> Schema:
    root = ET.parse(path).getroot()
    complex_types: dict[str, ComplexType] = {}
    enums: dict[str, list[str]] = {}
    for schema in root.iter(XSD + "schema"):
        for ct in schema.findall(XSD + "complexType"):
            name = ct.get("name") or ""
            base = None
            seq = ct.find(XSD + "sequence")
            ext = ct.find(f"{XSD}complexContent/{XSD}extension")
            if ext is not None:
                base = _local(ext.get("base"))
                seq = ext.find(XSD + "sequence")
            t = ComplexType(name, base)
            for el in (seq.findall(XSD + "element") if seq is not None else []):
                t.elements[el.get("name") or ""] = ElementDecl(
                    el.get("name") or "", el.get("type") or "xsd:string", int(el.get("minOccurs", "1")),
                    el.get("maxOccurs") == "unbounded")
            complex_types[name] = t
        for st in schema.findall(XSD + "simpleType"):
            values = [e.get("value") or "" for e in st.iter(XSD + "enumeration")]
            if values:
                enums[st.get("name") or ""] = values
    return Schema(complex_types, enums)


class XmlError(ValueError):
    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(message)
        self.line, self.column = line, column


def parse_xml(data: bytes) -> tuple[Any, dict[int, tuple[int, int]]]:
    """Parse a component file with expat, refusing DTDs and entities (as defusedxml does), and keep each
    element's line and column so problems can point at them. Returns (root, {id(element): (line, col)})."""
    import xml.etree.ElementTree as std_et
    from xml.parsers import expat

    parser = expat.ParserCreate(namespace_separator="}")
    builder = std_et.TreeBuilder()
    positions: dict[int, tuple[int, int]] = {}

    def start(name: str, attrs: dict[str, str]) -> None:
        tag = "{" + name if "}" in name else name
        el = builder.start(tag, attrs)
        positions[id(el)] = (parser.CurrentLineNumber, parser.CurrentColumnNumber + 1)

    def refuse(*_: Any) -> None:
        raise XmlError("Error parsing file: DOCTYPE is disallowed", parser.CurrentLineNumber,
                       parser.CurrentColumnNumber + 1)

    parser.StartElementHandler = start
    parser.EndElementHandler = lambda name: builder.end("{" + name if "}" in name else name)
    parser.CharacterDataHandler = builder.data
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise XmlError(f"Error parsing file: {expat.ErrorString(exc.code)}", exc.lineno, exc.offset + 1) from None
    root = builder.close()
    return root, positions


@dataclass
class Problem:
    message: str
    line: int | None = None
    column: int | None = None


_BOOL = {"true", "false", "1", "0"}
_INT = re.compile(r"^[+-]?\d+$")
_DOUBLE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def _tag(el: Any) -> tuple[str, str]:
    tag = el.tag if isinstance(el.tag, str) else ""
    if tag.startswith("{"):
        uri, _, local = tag[1:].partition("}")
        return uri, local
    return "", tag


def check_component(root: Any, expected_type: str | None, positions: dict[int, tuple[int, int]] | None = None,
                    schema: Schema | None = None) -> list[Problem]:
    """Check one component's parsed XML root against the schema; returns the problems found."""
    schema = schema or load_schema()
    positions = positions or {}
    uri, local = _tag(root)
    if uri != MD_URI:
        return [Problem(f"Error parsing file: The root element must be in the namespace {MD_URI}", 1, 1)]
    if expected_type and local != expected_type:
        return [Problem(f"Error parsing file: Expected the root element {expected_type} but found {local}", 1, 1)]
    if local not in schema.complex:
        return [Problem(f"Error parsing file: Unknown type name '{local}' specified in package.xml", 1, 1)]
    problems: list[Problem] = []
    _walk(root, local, schema, problems, positions)
    return problems


def _walk(el: Any, type_name: str, schema: Schema, problems: list[Problem],
          positions: dict[int, tuple[int, int]]) -> None:
    decls = schema.all_elements(type_name)
    for child in el:
        uri, local = _tag(child)
        if not local:
            continue  # comments / processing instructions
        line, col = positions.get(id(child), (None, None))
        decl = decls.get(local)
        if uri != MD_URI or decl is None:
            problems.append(Problem(f"Error parsing file: Element {{{uri}}}{local} invalid at this location in "
                                    f"type {type_name}", line, col))
            continue
        kind = _local(decl.type)
        text = (child.text or "").strip()
        if decl.type.startswith("tns:") and kind in schema.complex:
            _walk(child, kind, schema, problems, positions)
        elif decl.type.startswith("tns:") and kind in schema.enums:
            if text not in schema.enums[kind]:
                problems.append(Problem(f"Error parsing file: '{text}' is not a valid value for the enum '{kind}'",
                                        line, col))
        elif kind == "boolean" and text.lower() not in _BOOL:
            problems.append(Problem(f"Error parsing file: '{text}' is not a valid value for the type xsd:boolean",
                                    line, col))
        elif kind in ("int", "long") and not _INT.match(text):
            problems.append(Problem(f"Error parsing file: '{text}' is not a valid value for the type xsd:{kind}",
                                    line, col))
        elif kind == "double" and not _DOUBLE.match(text):
            problems.append(Problem(f"Error parsing file: '{text}' is not a valid value for the type xsd:double",
                                    line, col))
