"""Metadata API deploys: read the zip, check every component against the v65 schema and the rules a
real org applies at deploy time, then commit all of it (or, with ``rollbackOnError=false``, what
passed). What deploys is what the org has: objects and fields become the schema, permission sets
become ``PermissionSet`` rows, flows and outbound messages run (flows.py), everything is listed by
``listMetadata``.

Also the in-process fast path for tests and the demo: ``source_zip()`` turns SFDX source format into
a metadata-format zip (as ``sf project convert source`` does) and ``install_source()`` deploys it
through the same ``Deployer``.
"""

from __future__ import annotations

import copy
import io
import logging
import posixpath
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import ids
from .mdschema import MD_URI, Problem, XmlError, check_component, load_schema, parse_xml
from .schema import SObject, custom_object_from_element, field_from_element

if TYPE_CHECKING:
    from .server import Org

log = logging.getLogger(__name__)

NS = "{" + MD_URI + "}"
# Salesforce's documented limits for a deploy: 39 MB zipped, 600 MB unzipped, 10,000 files.
MAX_ZIP_BYTES = 39 * 1024 * 1024
MAX_UNZIPPED_BYTES = 600 * 1024 * 1024
MAX_FILES = 10000


@dataclass(frozen=True)
class TypeInfo:
    xml_name: str
    directory: str
    suffix: str | None
    in_folder: bool = False
    meta_file: bool = False
    children: tuple[str, ...] = ()


# The types the CLI and this package use; any other type the v65 schema knows deploys too (found by
# the file's root element) and is stored and listed.
KNOWN_TYPES = [
    TypeInfo("CustomObject", "objects", "object", children=(
        "CustomField", "Index", "BusinessProcess", "CompactLayout", "RecordType", "WebLink", "ValidationRule",
        "SharingReason", "ListView", "FieldSet")),
    TypeInfo("Workflow", "workflows", "workflow", children=(
        "WorkflowFieldUpdate", "WorkflowKnowledgePublish", "WorkflowTask", "WorkflowAlert", "WorkflowSend",
        "WorkflowOutboundMessage", "WorkflowRule")),
    TypeInfo("Flow", "flows", "flow"),
    TypeInfo("PermissionSet", "permissionsets", "permissionset"),
    TypeInfo("PermissionSetGroup", "permissionsetgroups", "permissionsetgroup"),
    TypeInfo("Profile", "profiles", "profile"),
    TypeInfo("ReportType", "reportTypes", "reportType"),
    TypeInfo("Report", "reports", "report", in_folder=True),
    TypeInfo("Dashboard", "dashboards", "dashboard", in_folder=True),
    TypeInfo("EmailTemplate", "email", "email", in_folder=True, meta_file=True),
    TypeInfo("Document", "documents", None, in_folder=True, meta_file=True),
    TypeInfo("Layout", "layouts", "layout"),
    TypeInfo("FlexiPage", "flexipages", "flexipage"),
    TypeInfo("CustomTab", "tabs", "tab"),
    TypeInfo("CustomApplication", "applications", "app"),
    TypeInfo("CustomLabels", "labels", "labels", children=("CustomLabel",)),
    TypeInfo("CustomPermission", "customPermissions", "customPermission"),
    TypeInfo("LightningComponentBundle", "lwc", None),
    TypeInfo("AuraDefinitionBundle", "aura", None),
    TypeInfo("ApexClass", "classes", "cls", meta_file=True),
    TypeInfo("ApexTrigger", "triggers", "trigger", meta_file=True),
    TypeInfo("StaticResource", "staticresources", "resource", meta_file=True),
    TypeInfo("RemoteSiteSetting", "remoteSiteSettings", "remoteSite"),
    TypeInfo("NamedCredential", "namedCredentials", "namedCredential"),
    TypeInfo("ConnectedApp", "connectedApps", "connectedApp"),
    TypeInfo("ExternalClientApplication", "externalClientApps", "eca"),
    TypeInfo("ExtlClntAppOauthSettings", "extlClntAppOauthSettings", "ecaOauth"),
    TypeInfo("ExtlClntAppGlobalOauthSettings", "extlClntAppGlobalOauthSets", "ecaGlblOauth"),
    TypeInfo("ExtlClntAppOauthConfigurablePolicies", "extlClntAppOauthPolicies", "ecaOauthPlcy"),
    TypeInfo("QuickAction", "quickActions", "quickAction"),
    TypeInfo("GlobalValueSet", "globalValueSets", "globalValueSet"),
    TypeInfo("CustomMetadata", "customMetadata", "md"),
    TypeInfo("CustomNotificationType", "notificationtypes", "notiftype"),
]
BY_DIRECTORY = {t.directory: t for t in KNOWN_TYPES}
FOLDER_TYPES = {"Report": "ReportFolder", "Dashboard": "DashboardFolder", "EmailTemplate": "EmailFolder",
                "Document": "DocumentFolder"}
BUNDLE_META = {"lwc": ".js-meta.xml", "aura": ".cmp-meta.xml"}


class DeployError(Exception):
    """The whole request is refused (bad zip, no package.xml): DeployResult.errorMessage."""

    def __init__(self, message: str, status_code: str = "INVALID_CROSS_REFERENCE_KEY") -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass
class Component:
    type: str
    full_name: str
    file_name: str
    xml: bytes | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    root: Any = None
    positions: dict[int, tuple[int, int]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    children: list[tuple[str, str]] = field(default_factory=list)  # (type, fullName) reported with it
    child_problems: dict[tuple[str, str], list[Problem]] = field(default_factory=dict)
    child_elements: dict[tuple[str, str], Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems and not any(self.child_problems.values())

    @property
    def failed_children(self) -> set[tuple[str, str]]:
        return {child for child, problems in self.child_problems.items() if problems}

    def without_failed_children(self) -> bytes:
        """The component as committed in a partial deploy: its failing children (fields, messages) left out."""
        import xml.etree.ElementTree as std_et

        if not self.failed_children:
            return self.xml or b""
        root = copy.deepcopy(self.root)
        doomed = {id(self.child_elements[c]) for c in self.failed_children if c in self.child_elements}
        for original, clone in zip(self.root, list(root)):
            if id(original) in doomed:
                root.remove(clone)
        std_et.register_namespace("", MD_URI)
        return b'<?xml version="1.0" encoding="UTF-8"?>\n' + std_et.tostring(root)

    def fail(self, message: str, el: Any = None, child: tuple[str, str] | None = None) -> None:
        line, col = self.positions.get(id(el), (None, None)) if el is not None else (None, None)
        problem = Problem(message, line, col)
        if child is not None:
            self.child_problems.setdefault(child, []).append(problem)
        else:
            self.problems.append(problem)


@dataclass
class DeployOptions:
    rollback_on_error: bool = True
    check_only: bool = False
    ignore_warnings: bool = False
    single_package: bool = True
    allow_missing_files: bool = False
    purge_on_delete: bool = False
    test_level: str = "NoTestRun"
    run_tests: list[str] = field(default_factory=list)


def _text(el: Any, tag: str) -> str | None:
    child = el.find(NS + tag) if el is not None else None
    return child.text.strip() if child is not None and child.text else None


def _all(el: Any, tag: str) -> list[Any]:
    return list(el.findall(NS + tag)) if el is not None else []


# ---------------------------------------------------------------------- reading the zip
def read_zip(data: bytes) -> dict[str, bytes]:
    if len(data) > MAX_ZIP_BYTES:
        raise DeployError("Maximum size of request reached. Maximum size of request is 52428800 bytes.",
                          "EXCEEDED_MAX_SIZE_REQUEST")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError):
        raise DeployError("The zip file could not be read: it is not a valid zip archive", "INVALID_ZIP") from None
    infos = [i for i in archive.infolist() if not i.is_dir()]
    if len(infos) > MAX_FILES:
        raise DeployError(f"Too many files in the zip: {len(infos)} (maximum {MAX_FILES})", "INVALID_ZIP")
    total = 0
    files: dict[str, bytes] = {}
    for info in infos:
        name = posixpath.normpath(info.filename.replace("\\", "/"))
        if name.startswith(("../", "/")) or name == "..":
            raise DeployError(f"Invalid file name in the zip: {info.filename}", "INVALID_ZIP")
        total += info.file_size
        if total > MAX_UNZIPPED_BYTES:
            raise DeployError("The unzipped package exceeds 600 MB", "INVALID_ZIP")
        try:
            files[name] = archive.read(info)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
            raise DeployError(f"The zip file could not be read: {info.filename}: {exc}", "INVALID_ZIP") from None
    return files


def _package_root(files: dict[str, bytes], single_package: bool) -> str:
    if "package.xml" in files:
        return ""
    roots = sorted({n.split("/", 1)[0] for n in files if n.count("/") == 1 and n.endswith("/package.xml")})
    if not roots:
        raise DeployError("No package.xml found", "INVALID_ZIP")
    if single_package and len(roots) > 1:
        raise DeployError("singlePackage is set, but the zip holds more than one package", "INVALID_ZIP")
    return roots[0] + "/"


def split_components(files: dict[str, bytes], prefix: str) -> tuple[list[Component], dict[str, list[str]]]:
    """Group the zip's files into components; also return package.xml's members per type."""
    schema = load_schema()
    manifest: dict[str, list[str]] = {}
    try:
        proot, _ = parse_xml(files[prefix + "package.xml"])
    except XmlError as exc:
        raise DeployError(f"package.xml: {exc}", "INVALID_ZIP") from None
    for t in _all(proot, "types"):
        manifest.setdefault(_text(t, "name") or "", []).extend(
            (m.text or "").strip() for m in _all(t, "members"))
    groups: dict[tuple[str, str], Component] = {}
    for path in sorted(files):
        if not path.startswith(prefix):
            continue
        rel = path[len(prefix):]
        if rel == "package.xml" or rel.startswith("destructiveChanges"):
            continue
        parts = rel.split("/")
        if len(parts) < 2:
            continue
        directory, fname = parts[0], parts[-1]
        info = BY_DIRECTORY.get(directory)
        if directory in BUNDLE_META:
            bundle = parts[1]
            comp = groups.setdefault((directory, bundle), Component(
                info.xml_name if info else directory, bundle, f"{directory}/{bundle}"))
            comp.files[rel] = files[path]
            if len(parts) == 3 and fname == bundle + BUNDLE_META[directory]:
                comp.xml = files[path]
            continue
        is_meta = fname.endswith("-meta.xml")
        base_rel = rel[: -len("-meta.xml")] if is_meta else rel
        inner = "/".join(base_rel.split("/")[1:])
        if info is not None and info.in_folder and is_meta and "/" not in inner and "." not in inner.rsplit("/", 1)[-1]:
            comp = Component(FOLDER_TYPES.get(info.xml_name, info.xml_name + "Folder"), inner, rel, files[path])
            groups[(directory, rel)] = comp
            continue
        if info is not None and info.suffix and inner.endswith("." + info.suffix):
            full_name = inner[: -len(info.suffix) - 1]
        else:
            full_name = inner.rsplit(".", 1)[0] if "." in inner.rsplit("/", 1)[-1] else inner
        key = (directory, full_name)
        comp = groups.get(key)
        if comp is None:
            comp = groups[key] = Component(info.xml_name if info else "", full_name, base_rel)
        comp.files[rel] = files[path]
        if info is not None and not info.meta_file:
            if not is_meta:
                comp.xml = files[path]
        elif is_meta or comp.xml is None:
            comp.xml = files[path]
    comps = list(groups.values())
    for comp in comps:
        if comp.xml is None:
            comp.fail(f"Could not find the metadata file for {comp.file_name}")
            continue
        try:
            comp.root, comp.positions = parse_xml(comp.xml)
        except XmlError as exc:
            comp.problems.append(Problem(str(exc), exc.line, exc.column))
            continue
        root_name = comp.root.tag.rsplit("}", 1)[-1]
        if not comp.type:  # a folder this module does not name: the file's root element says the type
            comp.type = root_name
            if not schema.is_metadata_type(root_name):
                comp.fail(f"Unknown type name '{root_name}' specified in package.xml")
                continue
        comp.problems.extend(check_component(comp.root, comp.type, comp.positions, schema))
    return comps, manifest


# ---------------------------------------------------------------------- platform rules
class Checker:
    """The checks a real org runs at deploy time, against the org as it will be after this deploy."""

    def __init__(self, org: Org, comps: list[Component]) -> None:
        self.org = org
        self.store = org.store
        self.comps = comps
        self.objects: dict[str, SObject] = copy.deepcopy(self.store.objects)
        self.outbound: set[str] = {n for n, _ in self._deployed_children("Workflow", "outboundMessages")}
        self.report_types: dict[str, set[str]] = {}
        for name, body in self.store.deployed("ReportType"):
            root, _ = parse_xml(body)
            self.report_types[name + "__c"] = _report_type_columns(root)

    def _deployed_children(self, type_name: str, tag: str) -> Iterable[tuple[str, Any]]:
        for obj_name, body in self.store.deployed(type_name):
            root, _ = parse_xml(body)
            for el in _all(root, tag):
                yield f"{obj_name}.{_text(el, 'fullName')}", el

    def obj(self, name: str | None) -> SObject | None:
        if not name:
            return None
        return self.objects.get(name) or next((o for o in self.objects.values() if o.name.lower() == name.lower()),
                                              None)

    def run(self) -> None:
        order = ["CustomObject", "Workflow", "PermissionSet", "ReportType", "Flow", "Report", "Layout"]
        for type_name in order:
            for comp in self.comps:
                if comp.type == type_name and not comp.problems:
                    getattr(self, "check_" + type_name)(comp)

    # -- objects and fields
    def check_CustomObject(self, comp: Component) -> None:
        name = comp.full_name
        existing = self.objects.get(name)
        if existing is None and not name.endswith("__c"):
            comp.fail(f"Cannot create a new component with the namespace: {name}. Only components in the same "
                      "namespace as the organization can be created through the API"
                      if "__" in name else f"Cannot create custom object {name}: its name must end with __c")
            return
        good_fields = []
        for fel in _all(comp.root, "fields"):
            fname = _text(fel, "fullName") or ""
            child = ("CustomField", f"{name}.{fname}")
            comp.children.append(child)
            comp.child_elements[child] = fel
            before = len(comp.child_problems.get(child, []))
            self._check_field(comp, name, fel, child)
            if len(comp.child_problems.get(child, [])) == before:
                good_fields.append(fel)
        for tag, ctype in (("validationRules", "ValidationRule"), ("listViews", "ListView"),
                           ("webLinks", "WebLink"), ("recordTypes", "RecordType"),
                           ("compactLayouts", "CompactLayout"), ("fieldSets", "FieldSet")):
            for el in _all(comp.root, tag):
                comp.children.append((ctype, f"{name}.{_text(el, 'fullName')}"))
        if comp.problems:
            return
        prefix = existing.key_prefix if existing is not None else "a__"
        shell = copy.deepcopy(comp.root)
        for fel in list(_all(shell, "fields")):
            shell.remove(fel)
        obj = custom_object_from_element(name, shell, prefix, existing)
        for fel in good_fields:
            f = field_from_element(fel)
            if f is not None:
                obj.add(f)
        self.objects[name] = obj

    def _check_field(self, comp: Component, obj_name: str, fel: Any, child: tuple[str, str]) -> None:
        fname = _text(fel, "fullName") or ""
        md_type = _text(fel, "type")
        if not fname.endswith("__c"):
            if self.obj(obj_name) is None or self.obj(obj_name).field_ci(fname) is None:  # type: ignore[union-attr]
                comp.fail(f"Cannot create standard field {obj_name}.{fname}: custom field names end with __c",
                          fel, child)
            return
        if md_type is None and _text(fel, "formula") is None:
            comp.fail(f"Must specify 'type' for a CustomField: {obj_name}.{fname}", fel, child)
            return
        if md_type == "Text" and _text(fel, "length") is None:
            comp.fail("Must specify 'length' for a CustomField of type Text", fel, child)
        if md_type in ("Number", "Currency", "Percent") and _text(fel, "formula") is None \
                and _text(fel, "precision") is None:
            comp.fail(f"Must specify 'precision' for a CustomField of type {md_type}", fel, child)
        if md_type in ("Lookup", "MasterDetail"):
            target = _text(fel, "referenceTo")
            if target is None:
                comp.fail(f"Must specify 'referenceTo' for a CustomField of type {md_type}", fel, child)
            elif self.obj(target) is None and not self._deploying("CustomObject", target):
                comp.fail(f"referenceTo value of '{target}' does not resolve to a valid sObject type", fel, child)
            if _text(fel, "relationshipName") is None:
                comp.fail(f"Must specify 'relationshipName' for a CustomField of type {md_type}", fel, child)
        if md_type == "Summary":
            fk = _text(fel, "summaryForeignKey") or ""
            child_obj, _, fk_field = fk.partition(".")
            target = self.obj(child_obj) if not self._deploying("CustomObject", child_obj) else None
            if not fk or (target is None and not self._deploying("CustomObject", child_obj)) or (
                    target is not None and target.field_ci(fk_field) is None
                    and not self._deploying_field(child_obj, fk_field)):
                comp.fail(f"In field: summaryForeignKey - no CustomField named {fk} found", fel, child)
        if md_type in ("Picklist", "MultiselectPicklist") and fel.find(NS + "valueSet") is None:
            comp.fail("Must specify either a 'valueSet' or a 'picklist' for a CustomField of type Picklist",
                      fel, child)

    def _deploying(self, type_name: str, full_name: str) -> bool:
        return any(c.type == type_name and c.full_name == full_name and not c.problems for c in self.comps)

    def _deploying_field(self, obj_name: str, field_name: str) -> bool:
        for c in self.comps:
            if c.type == "CustomObject" and c.full_name == obj_name and c.root is not None:
                if any((_text(f, "fullName") or "").lower() == field_name.lower() for f in _all(c.root, "fields")):
                    return True
        return False

    def field_exists(self, qualified: str) -> bool:
        obj_name, _, fname = qualified.partition(".")
        obj = self.obj(obj_name)
        return obj is not None and bool(fname) and obj.field_ci(fname) is not None

    def user_exists(self, username: str) -> bool:
        user = self.store.objects["User"]
        with self.store.lock:
            row = self.store.db.execute(
                f'SELECT 1 FROM {user.table} WHERE Username=? COLLATE NOCASE AND IsDeleted=0 AND IsActive=1',
                (username,)).fetchone()
        return row is not None

    # -- outbound messages
    def check_Workflow(self, comp: Component) -> None:
        obj_name = comp.full_name
        obj = self.obj(obj_name)
        for om in _all(comp.root, "outboundMessages"):
            om_name = _text(om, "fullName") or ""
            child = ("WorkflowOutboundMessage", f"{obj_name}.{om_name}")
            comp.children.append(child)
            comp.child_elements[child] = om
            if obj is None:
                comp.fail(f"Entity Enumeration Or ID: bad value for restricted picklist field: {obj_name}", om, child)
                continue
            user = _text(om, "integrationUser")
            if not user or not self.user_exists(user):
                comp.fail(f"Cannot find a user that matches any of the following usernames: {user or ''}; remove "
                          f"the user from the component and try deployment again for component: "
                          f"{obj_name}.{om_name}", om.find(NS + "integrationUser"), child)
            url = _text(om, "endpointUrl") or ""
            if not url.lower().startswith(("http://", "https://")):
                comp.fail(f"Invalid endpoint URL: {url}", om.find(NS + "endpointUrl"), child)
            for fel in _all(om, "fields"):
                fname = (fel.text or "").strip()
                if obj.field_ci(fname) is None:
                    comp.fail(f"In field: fields - no CustomField named {obj_name}.{fname} found", fel, child)
            if not comp.child_problems.get(child):
                self.outbound.add(f"{obj_name}.{om_name}")
        for tag, ctype in (("rules", "WorkflowRule"), ("fieldUpdates", "WorkflowFieldUpdate"),
                           ("alerts", "WorkflowAlert"), ("tasks", "WorkflowTask")):
            for el in _all(comp.root, tag):
                comp.children.append((ctype, f"{obj_name}.{_text(el, 'fullName')}"))

    # -- permission sets
    def check_PermissionSet(self, comp: Component) -> None:
        for fp in _all(comp.root, "fieldPermissions"):
            fel = fp.find(NS + "field")
            qualified = _text(fp, "field") or ""
            if not self.field_exists(qualified):
                comp.fail(f"In field: field - no CustomField named {qualified} found", fel)
                continue
            obj_name, _, fname = qualified.partition(".")
            f = self.obj(obj_name).field_ci(fname)  # type: ignore[union-attr]
            if f is not None and (not f.nillable and f.type != "boolean" or f.name_field):
                comp.fail(f"You cannot deploy to a required field: {qualified}", fel)
        for op in _all(comp.root, "objectPermissions"):
            name = _text(op, "object") or ""
            if self.obj(name) is None:
                comp.fail(f"In field: object - no CustomObject named {name} found", op.find(NS + "object"))
        for ts in _all(comp.root, "tabSettings"):
            tab = _text(ts, "tab") or ""
            if tab.endswith("__c") and self.obj(tab) is None and not self._deploying("CustomTab", tab) \
                    and tab not in dict(self.store.deployed("CustomTab")):
                comp.fail(f"In field: tab - no CustomTab named {tab} found", ts.find(NS + "tab"))

    # -- report types and reports
    def check_ReportType(self, comp: Component) -> None:
        base = _text(comp.root, "baseObject") or ""
        base_obj = self.obj(base)
        if base_obj is None:
            comp.fail(f"In field: baseObject - no CustomObject named {base} found", comp.root.find(NS + "baseObject"))
            return
        tables = {base: base_obj}
        path, cur = base, base_obj
        join = comp.root.find(NS + "join")
        while join is not None and cur is not None:
            rel = _text(join, "relationship") or ""
            child = self._child_by_relationship(cur, rel)
            if child is None:
                comp.fail(f"In field: relationship - no relationship named {rel} found on {cur.name}",
                          join.find(NS + "relationship"))
                return
            path = f"{path}.{rel}"
            tables[path] = cur = child
            join = join.find(NS + "join")
        for col in comp.root.iter(NS + "columns"):
            table, fname = _text(col, "table") or "", _text(col, "field") or ""
            obj = tables.get(table)
            if obj is None:
                comp.fail(f"In field: table - no table named {table} in this report type", col.find(NS + "table"))
            elif not _column_exists(obj, fname, self):
                comp.fail(f"In field: field - no CustomField named {obj.name}.{fname} found", col.find(NS + "field"))
        if comp.ok:
            self.report_types[comp.full_name + "__c"] = _report_type_columns(comp.root)

    def _child_by_relationship(self, parent: SObject, rel: str) -> SObject | None:
        for other in self.objects.values():
            for f in other.fields.values():
                if f.type == "reference" and parent.name in f.reference_to and f.custom \
                        and (f.name[:-3] + "s__r").lower() == rel.lower():
                    return other
                if f.type == "reference" and parent.name in f.reference_to and f.custom:
                    # the package names child relationships itself (relationshipName + __r)
                    rel_name = self._relationship_label(other.name, f.name)
                    if rel_name and (rel_name + "__r").lower() == rel.lower():
                        return other
        return None

    def _relationship_label(self, obj_name: str, field_name: str) -> str | None:
        for c in self.comps:
            if c.type == "CustomObject" and c.full_name == obj_name and c.root is not None:
                for fel in _all(c.root, "fields"):
                    if _text(fel, "fullName") == field_name:
                        return _text(fel, "relationshipName")
        for name, body in self.store.deployed("CustomObject"):
            if name == obj_name:
                root, _ = parse_xml(body)
                for fel in _all(root, "fields"):
                    if _text(fel, "fullName") == field_name:
                        return _text(fel, "relationshipName")
        return None

    def check_Report(self, comp: Component) -> None:
        rtype = _text(comp.root, "reportType") or ""
        columns = self.report_types.get(rtype)
        if columns is None:
            if rtype.endswith("__c"):
                comp.fail(f"In field: reportType - no ReportType named {rtype} found",
                          comp.root.find(NS + "reportType"))
            return
        for col in _all(comp.root, "columns"):
            fname = _text(col, "field") or ""
            if fname not in columns:
                comp.fail(f"The column {fname} is not valid for the report type {rtype}", col.find(NS + "field"))

    # -- page layouts
    def check_Layout(self, comp: Component) -> None:
        obj_name = comp.full_name.split("-", 1)[0]
        obj = self.obj(obj_name)
        if obj is None:
            comp.fail(f"In field: fullName - no CustomObject named {obj_name} found")
            return
        for item in comp.root.iter(NS + "layoutItems"):
            fel = item.find(NS + "field")
            fname = (fel.text or "").strip() if fel is not None and fel.text else ""
            if fname and obj.field_ci(fname) is None and obj.relationship(fname) is None:
                comp.fail(f"In field: field - no CustomField named {obj.name}.{fname} found", fel)

    # -- flows
    def check_Flow(self, comp: Component) -> None:
        start = comp.root.find(NS + "start")
        obj = None
        if start is not None and _text(start, "object"):
            obj = self.obj(_text(start, "object"))
            if obj is None:
                comp.fail(f"The object \"{_text(start, 'object')}\" doesn't exist.", start.find(NS + "object"))
                return
            for flt in _all(start, "filters"):
                fname = _text(flt, "field") or ""
                if obj.field_ci(fname) is None:
                    comp.fail(f"The field \"{fname}\" for the object \"{obj.name}\" doesn't exist.",
                              flt.find(NS + "field"))
        for call in _all(comp.root, "actionCalls"):
            if (_text(call, "actionType") or "") != "outboundMessage":
                continue
            action = _text(call, "actionName") or ""
            if action not in self.outbound:
                comp.fail(f"{_text(call, 'name')} (Action) - We can't find an action with the name and action type "
                          f"that you specified.", call.find(NS + "actionName"))
            elif obj is not None and action.split(".", 1)[0] != obj.name:
                comp.fail(f"{_text(call, 'name')} (Action) - The outbound message {action} is defined on another "
                          f"object than the flow's {obj.name}.", call.find(NS + "actionName"))


def _report_type_columns(root: Any) -> set[str]:
    return {f"{_text(c, 'table')}${_text(c, 'field')}" for c in root.iter(NS + "columns")}


def _column_exists(obj: SObject, fname: str, checker: Checker) -> bool:
    if obj.field_ci(fname) is not None or obj.relationship(fname) is not None:
        return True  # report types name standard lookups by relationship (Account, Owner)
    # parent paths such as Advocate__c.Name / Owner.Email
    head, _, rest = fname.partition(".")
    if rest:
        f = obj.field_ci(head) or obj.relationship(head)
        if f is not None and f.reference_to:
            parent = checker.obj(f.reference_to[0])
            return parent is not None and _column_exists(parent, rest, checker)
    return False


# ---------------------------------------------------------------------- the deploy itself
@dataclass
class DeployJob:
    id: str
    options: DeployOptions
    created_by: str
    created_by_name: str
    created: str
    zip_size: int
    status: str = "Queued"
    state_detail: str | None = None
    started: str | None = None
    completed: str | None = None
    done: bool = False
    success: bool = False
    error_message: str | None = None
    error_status_code: str | None = None
    failures: list[dict[str, Any]] = field(default_factory=list)
    successes: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0
    deployed: int = 0
    errors: int = 0
    number_files: int = 0
    canceled: bool = False


class Deployer:
    """Runs deploys for one org (serially: a real org queues concurrent deploys)."""

    def __init__(self, org: Org) -> None:
        self.org = org
        self.jobs: dict[str, DeployJob] = {}
        self._run_lock = threading.Lock()
        self._jobs_lock = threading.Lock()
        self.listeners: list[Any] = []  # called after a deploy changed the org's configuration

    def submit(self, zip_data: bytes, options: DeployOptions, user_id: str, wait: bool = False) -> DeployJob:
        user = self.org.oauth.user(user_id) if user_id else {}
        job = DeployJob(id=ids.make_id("0Af", self.org.store.ids.reserve(1)), options=options, created_by=user_id,
                        created_by_name=str(user.get("Name") or ""), created=self.org.clock.stamp(),
                        zip_size=len(zip_data))
        with self._jobs_lock:
            self.jobs[job.id] = job
        if wait:
            self._run(job, zip_data)
        else:
            threading.Thread(target=self._run, args=(job, zip_data), name=f"sf-deploy-{job.id}",
                             daemon=True).start()
        return job

    def get(self, job_id: str) -> DeployJob | None:
        norm = ids.normalize(job_id) or job_id
        with self._jobs_lock:
            return self.jobs.get(norm)

    def cancel(self, job_id: str) -> DeployJob | None:
        job = self.get(job_id)
        if job is not None and not job.done:
            job.canceled = True
        return job

    def _run(self, job: DeployJob, zip_data: bytes) -> None:
        with self._run_lock:
            if job.canceled:
                job.status, job.done, job.completed = "Canceled", True, self.org.clock.stamp()
                return
            job.status, job.started = "InProgress", self.org.clock.stamp()
            try:
                self._deploy(job, zip_data)
            except DeployError as exc:
                job.status, job.success = "Failed", False
                job.error_message, job.error_status_code = str(exc), exc.status_code
            except Exception:  # pragma: no cover - answered as the platform does
                log.exception("deploy %s failed", job.id)
                job.status, job.success = "Failed", False
                job.error_message, job.error_status_code = "An unexpected error occurred.", "UNKNOWN_EXCEPTION"
            job.completed = self.org.clock.stamp()
            job.done = True

    def _deploy(self, job: DeployJob, zip_data: bytes) -> None:
        files = read_zip(zip_data)
        job.number_files = len(files)
        prefix = _package_root(files, job.options.single_package)
        comps, manifest = split_components(files, prefix)
        listed = set()
        for t, members in manifest.items():
            for m in members:
                if t in FOLDER_TYPES and (m.endswith("/") or "/" not in m):
                    listed.add((FOLDER_TYPES[t], m.rstrip("/")))  # a folder is listed under its content's type
                else:
                    listed.add((t, m))
        present = {(c.type, c.full_name) for c in comps}
        missing = [(t, m) for t, m in sorted(listed) if m != "*" and (t, m) not in present
                   and not any(t in i.children for i in KNOWN_TYPES)]
        Checker(self.org, comps).run()
        now = job.created
        package_fail = []
        if not job.options.allow_missing_files:
            for t, m in missing:
                package_fail.append(self._message("", "package.xml", prefix + "package.xml", False, now,
                                                  f"An object '{m}' of type {t} was named in package.xml, but was "
                                                  "not found in zipped directory"))
        failed = [c for c in comps if not c.ok]
        job.total = len(comps)
        rollback = job.options.rollback_on_error and (failed or package_fail)
        # What commits: everything, or (partial) each component without its own problems, minus failing children.
        applicable = [c for c in comps if not c.problems]
        to_apply = [] if rollback or job.options.check_only else applicable
        existing = {(t, n) for t, n in self._existing_keys()}
        for c in comps:
            created = (c.type, c.full_name) not in existing
            file_name = prefix + c.file_name
            if not c.problems and not _only_children(c):
                job.successes.append(self._message(c.type, c.full_name, file_name, created, now, None,
                                                   changed=not created))
            for p in c.problems:
                job.failures.append(self._message(c.type, c.full_name, file_name, False, now, p.message,
                                                  line=p.line, column=p.column))
            for ctype, cname in c.children:
                problems = c.child_problems.get((ctype, cname))
                if problems:
                    for p in problems:
                        job.failures.append(self._message(ctype, cname, file_name, False, now, p.message,
                                                          line=p.line, column=p.column))
                elif not c.problems:
                    job.successes.append(self._message(ctype, cname, file_name, created, now, None,
                                                       changed=not created))
        job.failures.extend(package_fail)
        job.successes.append(self._message("", "package.xml", prefix + "package.xml", False, now, None))
        job.errors = len({(m["componentType"], m["fullName"]) for m in job.failures})
        if to_apply:
            self.apply(to_apply, job.created_by)
        job.deployed = 0 if rollback else len(applicable)
        if rollback:
            job.status, job.success = "Failed", False
        elif failed or package_fail:
            job.status, job.success = "SucceededPartial", True
        else:
            job.status, job.success = "Succeeded", True

    def _existing_keys(self) -> list[tuple[str, str]]:
        with self.org.store.lock:
            return [(r[0], r[1]) for r in self.org.store.db.execute("SELECT type, full_name FROM _metadata")]

    @staticmethod
    def _message(ctype: str, full_name: str, file_name: str, created: bool, now: str, problem: str | None,
                 changed: bool = False, line: int | None = None, column: int | None = None) -> dict[str, Any]:
        msg: dict[str, Any] = {"changed": changed, "componentType": ctype, "created": created, "createdDate": now,
                               "deleted": False, "fileName": file_name, "fullName": full_name,
                               "success": problem is None}
        if problem is not None:
            msg.update(problem=problem, problemType="Error")
            if line is not None:
                msg.update(lineNumber=line, columnNumber=column or 1)
        return msg

    # -- committing
    def apply(self, comps: list[Component], user_id: str) -> None:
        store = self.org.store
        stamp = self.org.clock.stamp()
        with store.lock:
            store.db.execute("BEGIN")
            try:
                seq = store.db.execute("SELECT coalesce(max(seq), 0) FROM _metadata").fetchone()[0]
                for c in comps:
                    body = c.without_failed_children() if c.type != "CustomObject" else self._merged_object(c)
                    row = store.db.execute("SELECT id, created, created_by, seq FROM _metadata WHERE type=? AND "
                                           "full_name=?", (c.type, c.full_name)).fetchone()
                    if row is None:
                        seq += 1
                        row = (ids.make_id(_id_prefix(c.type), store.ids.reserve(1)), stamp, user_id, seq)
                    store.db.execute("INSERT OR REPLACE INTO _metadata VALUES (?,?,?,?,?,?,?,?,?,?)",
                                     (c.type, c.full_name, c.file_name, row[0], body, row[1], row[2], stamp, user_id,
                                      row[3]))
                    if len(c.files) > 1:
                        store.db.execute("DELETE FROM _metadata_files WHERE type=? AND full_name=?",
                                         (c.type, c.full_name))
                        store.db.executemany("INSERT INTO _metadata_files VALUES (?,?,?,?)",
                                             [(c.type, c.full_name, path, data) for path, data in c.files.items()])
                store.db.execute("COMMIT")
            except BaseException:
                store.db.execute("ROLLBACK")
                raise
            if any(c.type == "CustomObject" for c in comps):
                store.load_schema()
        for c in comps:
            if c.type == "PermissionSet":
                self._upsert_permission_set(c, user_id)
        for listener in list(self.listeners):
            listener()

    def _merged_object(self, comp: Component) -> bytes:
        """A CustomObject deploy adds and updates fields; fields deployed before stay (as in an org)."""
        import xml.etree.ElementTree as std_et

        prior = dict(self.org.store.deployed("CustomObject")).get(comp.full_name)
        if prior is None:
            return comp.without_failed_children()
        old_root, _ = parse_xml(prior)
        new_root, _ = parse_xml(comp.without_failed_children())
        new_names = {_text(f, "fullName") for f in _all(new_root, "fields")}
        for f in _all(old_root, "fields"):
            if _text(f, "fullName") not in new_names:
                new_root.append(f)
        if _text(new_root, "label") is None:
            for tag in ("label", "pluralLabel", "nameField", "sharingModel", "deploymentStatus"):
                el = old_root.find(NS + tag)
                if el is not None:
                    new_root.append(el)
        std_et.register_namespace("", MD_URI)
        return b'<?xml version="1.0" encoding="UTF-8"?>\n' + std_et.tostring(new_root)

    def _upsert_permission_set(self, comp: Component, user_id: str) -> None:
        store = self.org.store
        obj = store.objects["PermissionSet"]
        values = {"Name": comp.full_name, "Label": _text(comp.root, "label") or comp.full_name,
                  "Description": (_text(comp.root, "description") or "")[:255] or None,
                  "HasActivationRequired": (_text(comp.root, "hasActivationRequired") or "false") == "true"}
        found = store.find_by(obj, obj.fields["Name"], comp.full_name)
        if found:
            store.update(obj, found[0], values, user_id, notify=False)
        else:
            rid = store.insert(obj, values, user_id, notify=False)
            store.set_system(obj, rid, {"IsCustom": 1, "IsOwnedByProfile": 0}, user_id)


CHILD_TAGS = {"fields", "listViews", "validationRules", "webLinks", "recordTypes", "compactLayouts", "fieldSets",
              "outboundMessages", "rules", "fieldUpdates", "alerts", "tasks", "labels", "businessProcesses",
              "indexes", "sharingReasons"}


def _only_children(comp: Component) -> bool:
    """A standard object's file holding only new fields: the org reports the fields, not the object."""
    if comp.type != "CustomObject" or comp.full_name.endswith("__c") or comp.root is None:
        return False
    return all(c.tag.rsplit("}", 1)[-1] in CHILD_TAGS for c in comp.root)


def _id_prefix(type_name: str) -> str:
    return {"CustomObject": "01I", "CustomField": "00N", "Flow": "301", "PermissionSet": "0PS",
            "ReportType": "070", "Report": "00O", "Dashboard": "01Z", "Layout": "00h", "FlexiPage": "0M0",
            "CustomTab": "01r", "Workflow": "04k", "ApexClass": "01p", "LightningComponentBundle": "0Rb",
            "CustomApplication": "02u", "ExternalClientApplication": "0xI"}.get(type_name, "0Ds")


# ---------------------------------------------------------------------- source format -> metadata format
def _source_files(source_dir: Path) -> Iterable[tuple[Path, str]]:
    for path in sorted(source_dir.rglob("*")):
        if path.is_file() and "__tests__" not in path.parts and not path.name.startswith("."):
            yield path, path.relative_to(source_dir).as_posix()


def source_zip(source_dir: Path, api_version: str = "65.0", types: set[str] | None = None,
               rewrite: Callable[[str, bytes], bytes] | None = None) -> bytes:
    """SFDX source format (``force-app`` or ``force-app/main/default``) -> a metadata-format zip, the way
    ``sf project convert source`` lays it out: objects merged into ``objects/X.object``, ``-meta.xml``
    suffixes dropped from XML-only types, bundles and content files kept as they are."""
    import xml.etree.ElementTree as std_et

    base = source_dir
    if (base / "main" / "default").is_dir():
        base = base / "main" / "default"
    out: dict[str, bytes] = {}
    objects: dict[str, dict[str, list[bytes] | bytes | None]] = {}
    members: dict[str, set[str]] = {}
    for path, rel in _source_files(base):
        parts = rel.split("/")
        directory = parts[0]
        info = BY_DIRECTORY.get(directory)
        if directory == "objects":
            obj = parts[1]
            entry = objects.setdefault(obj, {"object": None, "fields": []})
            if len(parts) == 3 and path.name == f"{obj}.object-meta.xml":
                entry["object"] = path.read_bytes()
            elif len(parts) == 4 and parts[2] == "fields" and path.name.endswith(".field-meta.xml"):
                entry["fields"].append(path.read_bytes())  # type: ignore[union-attr]
            continue
        if info is None or (types is not None and info.xml_name not in types):
            continue
        if directory in BUNDLE_META:
            out[rel] = path.read_bytes()
            members.setdefault(info.xml_name, set()).add(parts[1])
            continue
        if info.meta_file:
            out[rel] = path.read_bytes()
            if not rel.endswith("-meta.xml"):
                members.setdefault(info.xml_name, set()).add("/".join(parts[1:]).rsplit(".", 1)[0])
            continue
        name = path.name
        folder_suffix = "." + info.xml_name[0].lower() + info.xml_name[1:] + "Folder-meta.xml"
        if info.in_folder and name.endswith(folder_suffix):
            folder = name[: -len(folder_suffix)]
            out[f"{directory}/{'/'.join(parts[1:-1] + [folder])}-meta.xml"] = path.read_bytes()
            members.setdefault(info.xml_name, set()).add(folder)
            continue
        if name.endswith("-meta.xml"):
            target = rel[: -len("-meta.xml")]
            out[target] = path.read_bytes()
            inner = "/".join(target.split("/")[1:])
            members.setdefault(info.xml_name, set()).add(inner.rsplit(".", 1)[0])
    if types is None or "CustomObject" in types:
        std_et.register_namespace("", MD_URI)
        for obj, entry in sorted(objects.items()):
            if entry["object"] is not None:
                root, _ = parse_xml(entry["object"])  # type: ignore[arg-type]
            else:
                root = std_et.Element(NS + "CustomObject")
            for fbytes in entry["fields"]:  # type: ignore[union-attr]
                froot, _ = parse_xml(fbytes)
                fel = std_et.SubElement(root, NS + "fields")
                for child in list(froot):
                    fel.append(child)
            _order_object(root)
            out[f"objects/{obj}.object"] = b'<?xml version="1.0" encoding="UTF-8"?>\n' + std_et.tostring(root)
            members.setdefault("CustomObject", set()).add(obj)
    manifest = ['<?xml version="1.0" encoding="UTF-8"?>', f'<Package xmlns="{MD_URI}">']
    for type_name in sorted(members):
        manifest.append("    <types>")
        manifest.extend(f"        <members>{m}</members>" for m in sorted(members[type_name]))
        manifest.append(f"        <name>{type_name}</name>")
        manifest.append("    </types>")
    manifest.append(f"    <version>{api_version}</version>")
    manifest.append("</Package>")
    out["package.xml"] = "\n".join(manifest).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(out):
            archive.writestr(name, rewrite(name, out[name]) if rewrite else out[name])
    return buf.getvalue()


def _order_object(root: Any) -> None:
    """Children in schema order (fields before label), as the CLI writes them."""
    order = list(load_schema().all_elements("CustomObject"))
    children = list(root)
    for c in children:
        root.remove(c)
    children.sort(key=lambda c: order.index(c.tag.rsplit("}", 1)[-1]) if c.tag.rsplit("}", 1)[-1] in order else 999)
    for c in children:
        root.append(c)


def install_source(org: Org, source_dir: Path, types: set[str] | None = None,
                   options: DeployOptions | None = None) -> DeployJob:
    """Deploy an SFDX source folder into the org in-process (the same deploy the Metadata API runs)."""
    return org.deployer.submit(source_zip(source_dir, types=types), options or DeployOptions(), org.admin_id,
                               wait=True)


def default_package_dir() -> Path:
    # backend/refstage_devkit/emulators/salesforce/deploy.py -> the repository root is parents[4]
    return Path(__file__).resolve().parents[4] / "sfdx" / "force-app"


def deploy_files(org: Org, files: dict[str, str | bytes], options: DeployOptions | None = None) -> DeployJob:
    """Deploy metadata-format files (``package.xml`` included) into the org in-process, through the same deploy
    the Metadata API runs (the demo installs the backend's push-path bundle this way)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return org.deployer.submit(buf.getvalue(), options or DeployOptions(), org.admin_id, wait=True)
