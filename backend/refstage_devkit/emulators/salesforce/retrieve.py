"""Metadata API ``retrieve`` / ``checkRetrieveStatus``: a metadata-format zip of what the org has, for a
package.xml-style request (``unpackaged``), as ``sf project retrieve start`` asks for it. Objects and
workflows are cut down to the children requested (``CustomField``, ``WorkflowOutboundMessage``, ...)."""

from __future__ import annotations

import copy
import io
import threading
import xml.etree.ElementTree as std_et
import zipfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import ids
from .deploy import FOLDER_TYPES, KNOWN_TYPES
from .mdschema import MD_URI, parse_xml

if TYPE_CHECKING:
    from .server import Org

NS = "{" + MD_URI + "}"
# child type -> (parent type, element of the parent file holding it)
CHILD_TYPES = {
    "CustomField": ("CustomObject", "fields"), "ListView": ("CustomObject", "listViews"),
    "ValidationRule": ("CustomObject", "validationRules"), "WebLink": ("CustomObject", "webLinks"),
    "RecordType": ("CustomObject", "recordTypes"), "CompactLayout": ("CustomObject", "compactLayouts"),
    "FieldSet": ("CustomObject", "fieldSets"), "BusinessProcess": ("CustomObject", "businessProcesses"),
    "WorkflowOutboundMessage": ("Workflow", "outboundMessages"), "WorkflowRule": ("Workflow", "rules"),
    "WorkflowFieldUpdate": ("Workflow", "fieldUpdates"), "WorkflowAlert": ("Workflow", "alerts"),
    "WorkflowTask": ("Workflow", "tasks"), "CustomLabel": ("CustomLabels", "labels"),
}
PARENT_DIRS = {t.xml_name: (t.directory, t.suffix) for t in KNOWN_TYPES}


@dataclass
class RetrieveJob:
    id: str
    status: str = "Pending"
    done: bool = False
    zip_data: bytes = b""
    properties: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None


class Retriever:
    def __init__(self, org: Org) -> None:
        self.org = org
        self.jobs: dict[str, RetrieveJob] = {}
        self._lock = threading.Lock()

    def submit(self, manifest: dict[str, list[str]], single_package: bool, api_version: str) -> RetrieveJob:
        job = RetrieveJob(id=ids.make_id("09S", self.org.store.ids.reserve(1)))
        with self._lock:
            self.jobs[job.id] = job
        try:
            job.zip_data, job.properties, job.messages = self.build(manifest, single_package, api_version)
            job.status = "Succeeded"
        except Exception as exc:  # pragma: no cover - reported in the result, as the platform does
            job.status, job.error = "Failed", str(exc)
        job.done = True
        return job

    def get(self, job_id: str) -> RetrieveJob | None:
        with self._lock:
            return self.jobs.get(ids.normalize(job_id) or job_id)

    def _rows(self, type_name: str) -> dict[str, tuple]:
        store = self.org.store
        with store.lock:
            return {r[0]: r for r in store.db.execute(
                "SELECT full_name, file_name, id, body, created, created_by, modified, modified_by FROM _metadata "
                "WHERE type=?", (type_name,))}

    def build(self, manifest: dict[str, list[str]], single_package: bool,
              api_version: str) -> tuple[bytes, list[dict[str, Any]], list[dict[str, str]]]:
        prefix = "" if single_package else "unpackaged/"
        files: dict[str, bytes] = {}
        props: list[dict[str, Any]] = []
        messages: list[dict[str, str]] = []
        # parent component -> None (whole) or the set of (child tag, child name) wanted
        parents: dict[tuple[str, str], set[tuple[str, str]] | None] = {}
        for type_name, members in manifest.items():
            if type_name in CHILD_TYPES:
                parent_type, tag = CHILD_TYPES[type_name]
                rows = self._rows(parent_type)
                for member in members:
                    if member == "*":
                        for name, row in rows.items():
                            root, _ = parse_xml(row[3])
                            for el in root.findall(NS + tag):
                                child = (el.findtext(NS + "fullName") or "").strip()
                                self._want(parents, parent_type, name, tag, child)
                        continue
                    parent, _, child = member.partition(".") if type_name != "CustomLabel" else ("CustomLabels", "", member)
                    if parent not in rows or not self._has_child(rows[parent][3], tag, child):
                        messages.append(self._missing(prefix, type_name, member))
                        continue
                    self._want(parents, parent_type, parent, tag, child)
                continue
            if type_name in FOLDER_TYPES:  # folders are listed with their content's type: "Folder/" or "Folder"
                folder_rows = self._rows(FOLDER_TYPES[type_name])
                for member in [m for m in members if m.endswith("/") or ("/" not in m and m != "*")]:
                    row = folder_rows.get(member.rstrip("/"))
                    if row is None:
                        messages.append(self._missing(prefix, type_name, member))
                    else:
                        files[prefix + row[1]] = row[3]
                        props.append(self._props(FOLDER_TYPES[type_name], row, prefix + row[1]))
                members = [m for m in members if "/" in m.rstrip("/") or m == "*"]
            rows = self._rows(type_name)
            wanted = sorted(rows) if "*" in members else members
            for member in wanted:
                if member not in rows:
                    if type_name == "CustomObject" and member in self.org.store.objects:
                        parents.setdefault((type_name, member), None)  # a standard object: its deployed fields
                        continue
                    messages.append(self._missing(prefix, type_name, member))
                    continue
                if type_name in ("CustomObject", "Workflow", "CustomLabels"):
                    parents[(type_name, member)] = None
                    continue
                row = rows[member]
                with self.org.store.lock:
                    extra = self.org.store.db.execute("SELECT path, data FROM _metadata_files WHERE type=? AND "
                                                      "full_name=?", (type_name, member)).fetchall()
                if extra:
                    for path, data in extra:
                        files[prefix + path] = data
                else:
                    files[prefix + row[1]] = row[3]
                props.append(self._props(type_name, row, prefix + row[1]))
        for (type_name, name), wanted_children in sorted(parents.items()):
            row = self._rows(type_name).get(name)
            directory, suffix = PARENT_DIRS[type_name]
            file_name = f"{directory}/{name}.{suffix}"
            if row is not None:
                root, _ = parse_xml(row[3])
            else:
                root = std_et.Element(NS + type_name)
            if wanted_children is not None:  # only the children asked for, as the org answers
                root = copy.deepcopy(root)
                for el in list(root):
                    key = (el.tag.rsplit("}", 1)[-1], (el.findtext(NS + "fullName") or "").strip())
                    if key not in wanted_children:
                        root.remove(el)
            std_et.register_namespace("", MD_URI)
            files[prefix + file_name] = b'<?xml version="1.0" encoding="UTF-8"?>\n' + std_et.tostring(root) + b"\n"
            if row is not None:
                props.append(self._props(type_name, row, prefix + file_name))
                for tag, child in sorted(wanted_children or set()):
                    child_type = next(t for t, (p, g) in CHILD_TYPES.items() if p == type_name and g == tag)
                    full = child if type_name == "CustomLabels" else f"{name}.{child}"
                    props.append({**self._props(child_type, row, prefix + file_name), "fullName": full, "id": ""})
            else:
                props.append({**self._props(type_name, (name, file_name, "", b"", "", "", "", ""), prefix + file_name)})
        package = [f'<?xml version="1.0" encoding="UTF-8"?>\n<Package xmlns="{MD_URI}">']
        for type_name in sorted(manifest):
            package.append("    <types>")
            package.extend(f"        <members>{m}</members>" for m in sorted(manifest[type_name]))
            package.append(f"        <name>{type_name}</name>")
            package.append("    </types>")
        package.append(f"    <version>{api_version}</version>\n</Package>\n")
        files[prefix + "package.xml"] = "\n".join(package).encode()
        props.append({"createdById": "", "createdByName": "", "createdDate": "1970-01-01T00:00:00.000Z",
                      "fileName": prefix + "package.xml", "fullName": prefix + "package.xml", "id": "",
                      "lastModifiedById": "", "lastModifiedByName": "", "lastModifiedDate": "1970-01-01T00:00:00.000Z",
                      "manageableState": "unmanaged", "type": "Package"})
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in sorted(files):
                archive.writestr(name, files[name])
        return buf.getvalue(), props, messages

    @staticmethod
    def _want(parents: dict, parent_type: str, parent: str, tag: str, child: str) -> None:
        key = (parent_type, parent)
        if key in parents and parents[key] is None:
            return
        parents.setdefault(key, set()).add((tag, child))  # type: ignore[union-attr]

    @staticmethod
    def _has_child(body: bytes, tag: str, child: str) -> bool:
        root, _ = parse_xml(body)
        return any((el.findtext(NS + "fullName") or "").strip() == child for el in root.findall(NS + tag))

    @staticmethod
    def _missing(prefix: str, type_name: str, member: str) -> dict[str, str]:
        return {"fileName": prefix + "package.xml",
                "problem": f"Entity of type '{type_name}' named '{member}' cannot be found"}

    def _props(self, type_name: str, row: tuple, file_name: str) -> dict[str, Any]:
        full_name, _, mid, _, created, created_by, modified, modified_by = row

        def name(uid: str) -> str:
            return str(self.org.oauth.user(uid).get("Name") or "") if uid else ""

        return {"createdById": created_by, "createdByName": name(created_by), "createdDate": created or
                "1970-01-01T00:00:00.000Z", "fileName": file_name, "fullName": full_name, "id": mid,
                "lastModifiedById": modified_by, "lastModifiedByName": name(modified_by),
                "lastModifiedDate": modified or "1970-01-01T00:00:00.000Z", "manageableState": "unmanaged",
                "type": type_name}


def retriever(org: Org) -> Retriever:
    found = getattr(org, "_retriever", None)
    if found is None:
        found = Retriever(org)
        org._retriever = found  # type: ignore[attr-defined]
    return found
