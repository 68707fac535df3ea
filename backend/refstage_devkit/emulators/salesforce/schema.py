"""Object and field definitions: the standard objects the emulator knows, and custom objects and fields
built from deployed ``CustomObject`` components (metadata format; see deploy.py)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


log = logging.getLogger(__name__)

MD_NS = "{http://soap.sforce.com/2006/04/metadata}"

# describe type -> (soapType, SQLite column type)
TYPES: dict[str, tuple[str, str]] = {
    "id": ("tns:ID", "TEXT"),
    "reference": ("tns:ID", "TEXT"),
    "string": ("xsd:string", "TEXT"),
    "textarea": ("xsd:string", "TEXT"),
    "email": ("xsd:string", "TEXT"),
    "phone": ("xsd:string", "TEXT"),
    "url": ("xsd:string", "TEXT"),
    "picklist": ("xsd:string", "TEXT"),
    "multipicklist": ("xsd:string", "TEXT"),
    "combobox": ("xsd:string", "TEXT"),
    "boolean": ("xsd:boolean", "INTEGER"),
    "int": ("xsd:int", "INTEGER"),
    "double": ("xsd:double", "REAL"),
    "currency": ("xsd:double", "REAL"),
    "percent": ("xsd:double", "REAL"),
    "date": ("xsd:date", "TEXT"),
    "datetime": ("xsd:dateTime", "TEXT"),
}
NUMERIC = {"int", "double", "currency", "percent"}
STRINGY = {"string", "textarea", "email", "phone", "url", "picklist", "multipicklist", "combobox"}


@dataclass
class Field:
    name: str
    type: str
    label: str = ""
    length: int = 0
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    unique: bool = False
    external_id: bool = False
    reference_to: list[str] = field(default_factory=list)
    relationship_name: str | None = None
    picklist: list[str] = field(default_factory=list)
    picklist_default: str | None = None
    restricted_picklist: bool = False
    default: Any = None
    precision: int = 0
    scale: int = 0
    custom: bool = False
    calculated: bool = False
    name_field: bool = False
    auto_number: bool = False
    cascade_delete: bool = False
    formula: str | None = None  # a formula field's expression (formulas.py computes it)
    formula_blank_as_zero: bool = False
    summary: Any = None  # a roll-up summary's formulas.Summary
    # Picklist value -> label, and a lookup's child relationship name as the metadata declares them (UI API).
    picklist_labels: dict[str, str] = field(default_factory=dict)
    child_relationship_name: str | None = None

    @property
    def sql_type(self) -> str:
        return TYPES[self.type][1]

    @property
    def filterable(self) -> bool:
        """A long text area (textarea over 255 characters: Long Text, Rich Text) can be selected, never
        filtered or sorted; a plain Text Area can."""
        return not (self.type == "textarea" and self.length > 255)

    @property
    def sortable(self) -> bool:
        return self.filterable and self.type != "multipicklist"

    @property
    def required(self) -> bool:
        return (not self.nillable) and self.createable and self.default is None and self.type != "boolean"

    def describe(self) -> dict[str, Any]:
        soap = TYPES[self.type][0]
        length = self.length if self.type in STRINGY or self.type in ("id", "reference") else 0
        return {
            "aggregatable": self.type not in ("textarea",),
            "autoNumber": self.auto_number,
            "byteLength": length * 3,
            "calculated": self.calculated,
            "calculatedFormula": self.formula,
            "cascadeDelete": self.cascade_delete,
            "caseSensitive": False,
            "createable": self.createable,
            "custom": self.custom,
            "defaultValue": self.default if self.type == "boolean" else None,
            "defaultedOnCreate": self.default is not None or self.name in _DEFAULTED_SYSTEM,
            "dependentPicklist": False,
            "digits": self.precision if self.type == "int" else 0,
            "externalId": self.external_id,
            "filterable": self.filterable,
            "groupable": self.type not in ("textarea", "double", "currency", "percent", "datetime"),
            "htmlFormatted": False,
            "idLookup": self.name == "Id" or self.external_id or (self.unique and self.type == "string"),
            "inlineHelpText": None,
            "label": self.label or self.name,
            "length": length,
            "name": self.name,
            "nameField": self.name_field,
            "namePointing": False,
            "nillable": self.nillable,
            "permissionable": self.nillable and self.custom,
            "picklistValues": [
                {"active": True, "defaultValue": v == self.picklist_default, "label": v, "validFor": None, "value": v}
                for v in self.picklist
            ],
            "polymorphicForeignKey": False,
            "precision": self.precision if self.type in ("double", "currency", "percent") else 0,
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "restrictedPicklist": self.restricted_picklist,
            "scale": self.scale if self.type in ("double", "currency", "percent") else 0,
            "soapType": soap,
            "sortable": self.sortable,
            "type": self.type,
            "unique": self.unique,
            "updateable": self.updateable,
        }


_DEFAULTED_SYSTEM = {"Id", "IsDeleted", "CreatedDate", "CreatedById", "LastModifiedDate",
                     "LastModifiedById", "SystemModstamp", "OwnerId"}


@dataclass
class SObject:
    name: str
    key_prefix: str
    label: str
    label_plural: str
    fields: dict[str, Field] = field(default_factory=dict)
    custom: bool = False
    owned: bool = True
    queryable: bool = True
    createable: bool = True

    def add(self, f: Field) -> None:
        self.fields[f.name] = f

    def field_ci(self, name: str) -> Field | None:
        f = self.fields.get(name)
        if f is not None:
            return f
        low = name.lower()
        for k, v in self.fields.items():
            if k.lower() == low:
                return v
        return None

    def relationship(self, rel: str) -> Field | None:
        low = rel.lower()
        for f in self.fields.values():
            if f.relationship_name and f.relationship_name.lower() == low:
                return f
        return None

    @property
    def table(self) -> str:
        return f'"o_{self.name}"'

    def external_id_fields(self) -> list[Field]:
        return [f for f in self.fields.values() if f.external_id or f.name == "Id"]

    def url(self, version: str) -> str:
        return f"/services/data/v{version}/sobjects/{self.name}"

    def describe_global(self, version: str) -> dict[str, Any]:
        base = self.url(version)
        return {
            "activateable": False, "associateEntityType": None, "associateParentEntity": None,
            "createable": self.createable, "custom": self.custom, "customSetting": False,
            "deepCloneable": False, "deletable": self.createable, "deprecatedAndHidden": False,
            "feedEnabled": False, "hasSubtypes": False, "isInterface": False, "isSubtype": False,
            "keyPrefix": self.key_prefix, "label": self.label, "labelPlural": self.label_plural,
            "layoutable": True, "mergeable": self.name in ("Account", "Contact", "Lead"),
            "mruEnabled": True, "name": self.name, "queryable": self.queryable, "replicateable": True,
            "retrieveable": True, "searchable": True, "triggerable": True, "undeletable": True,
            "updateable": self.createable,
            "urls": {"rowTemplate": f"{base}/{{ID}}", "defaultValues": f"{base}/defaultValues?recordTypeId&fields",
                     "describe": f"{base}/describe", "sobject": base},
        }


# ---------------------------------------------------------------- standard objects
def _f(name: str, type_: str, label: str = "", **kw: Any) -> Field:
    if type_ in ("string", "email", "phone", "url", "picklist", "combobox") and "length" not in kw:
        kw["length"] = {"email": 80, "phone": 40, "url": 255}.get(type_, 255)
    if type_ == "textarea" and "length" not in kw:
        kw["length"] = 32000
    if type_ in ("id", "reference"):
        kw.setdefault("length", 18)
    if type_ in ("currency", "double", "percent") and "precision" not in kw:
        kw["precision"], kw["scale"] = 18, 2
    if type_ == "boolean":
        kw.setdefault("nillable", False)
        kw.setdefault("default", False)
    return Field(name=name, type=type_, label=label or _label(name), **kw)


def _label(api: str) -> str:
    out = []
    for i, ch in enumerate(api.replace("__c", "").replace("_", " ")):
        if i and ch.isupper() and api[i - 1].islower():
            out.append(" ")
        out.append(ch)
    label = "".join(out)
    return label[:-3] + " ID" if label.endswith(" Id") else label


def _ref(name: str, to: str, rel: str, **kw: Any) -> Field:
    return _f(name, "reference", reference_to=[to], relationship_name=rel, **kw)


def _pick(name: str, values: list[str], pick_default: str | None = None, **kw: Any) -> Field:
    return _f(name, "picklist", picklist=values, picklist_default=pick_default, **kw)


RO = {"createable": False, "updateable": False}

STAGES = [
    # name, probability, closed, won, forecast category
    ("Prospecting", 10, False, False, "Pipeline"),
    ("Qualification", 10, False, False, "Pipeline"),
    ("Needs Analysis", 20, False, False, "Pipeline"),
    ("Value Proposition", 50, False, False, "Pipeline"),
    ("Id. Decision Makers", 60, False, False, "Pipeline"),
    ("Perception Analysis", 70, False, False, "Pipeline"),
    ("Proposal/Price Quote", 75, False, False, "Pipeline"),
    ("Negotiation/Review", 90, False, False, "Pipeline"),
    ("Closed Won", 100, True, True, "Closed"),
    ("Closed Lost", 0, True, False, "Omitted"),
]
LEAD_STATUSES = [
    # name, converted, default
    ("Open - Not Contacted", False, True),
    ("Working - Contacted", False, False),
    ("Closed - Converted", True, False),
    ("Closed - Not Converted", False, False),
]
INDUSTRIES = ["Agriculture", "Banking", "Biotechnology", "Chemicals", "Communications", "Construction",
              "Consulting", "Education", "Electronics", "Energy", "Engineering", "Entertainment",
              "Finance", "Healthcare", "Insurance", "Manufacturing", "Media", "Retail", "Technology",
              "Telecommunications", "Transportation", "Other"]
LEAD_SOURCES = ["Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other"]


def _system(obj: SObject) -> None:
    obj.add(_f("Id", "id", "Record ID", nillable=False, **RO))
    obj.add(_f("IsDeleted", "boolean", "Deleted", **RO))
    obj.add(_f("CreatedDate", "datetime", nillable=False, **RO))
    obj.add(_ref("CreatedById", "User", "CreatedBy", nillable=False, **RO))
    obj.add(_f("LastModifiedDate", "datetime", nillable=False, **RO))
    obj.add(_ref("LastModifiedById", "User", "LastModifiedBy", nillable=False, **RO))
    obj.add(_f("SystemModstamp", "datetime", "System Modstamp", nillable=False, **RO))
    if obj.owned:
        obj.add(_ref("OwnerId", "User", "Owner", nillable=False, label="Owner ID"))


def _std(name: str, prefix: str, label: str, plural: str, fields: list[Field], owned: bool = True) -> SObject:
    obj = SObject(name, prefix, label, plural, owned=owned)
    _system(obj)
    for f in fields:
        obj.add(f)
    return obj


def standard_objects() -> dict[str, SObject]:
    person = [
        _f("Salutation", "picklist", picklist=["Mr.", "Ms.", "Mrs.", "Dr.", "Prof."]),
        _f("FirstName", "string", length=40),
        _f("LastName", "string", length=80, nillable=False),
        _f("Name", "string", "Full Name", length=121, name_field=True, **RO),
    ]
    objs = [
        _std("User", "005", "User", "Users", [
            _f("Username", "string", length=80, nillable=False, unique=True),
            _f("FirstName", "string", length=40), _f("LastName", "string", length=80, nillable=False),
            _f("Name", "string", "Full Name", length=121, name_field=True, **RO),
            _f("Email", "email", length=128, nillable=False), _f("Alias", "string", length=8),
            _f("Title", "string", length=80), _f("Department", "string", length=80),
            _f("CompanyName", "string", length=80), _f("IsActive", "boolean", "Active", default=True),
            _f("TimeZoneSidKey", "picklist", "Time Zone", picklist=["GMT", "Europe/Paris", "America/New_York"],
               default="GMT"),
            _f("UserType", "picklist", picklist=["Standard"], default="Standard", **RO),
        ], owned=False),
        _std("Account", "001", "Account", "Accounts", [
            _f("Name", "string", "Account Name", nillable=False, name_field=True),
            _ref("ParentId", "Account", "Parent", label="Parent Account ID"),
            _pick("Type", ["Prospect", "Customer - Direct", "Customer - Channel", "Channel Partner / Reseller",
                           "Installation Partner", "Technology Partner", "Other"]),
            _pick("Industry", INDUSTRIES), _pick("AccountSource", LEAD_SOURCES),
            _f("AnnualRevenue", "currency"), _f("NumberOfEmployees", "int", "Employees", precision=8),
            _f("Phone", "phone"), _f("Website", "url"),
            _f("BillingStreet", "textarea", length=255), _f("BillingCity", "string", length=40),
            _f("BillingState", "string", length=80), _f("BillingPostalCode", "string", length=20),
            _f("BillingCountry", "string", length=80), _f("Description", "textarea"),
        ]),
        _std("Contact", "003", "Contact", "Contacts", [
            _ref("AccountId", "Account", "Account"), *person,
            _f("Email", "email"), _f("Phone", "phone", "Business Phone"), _f("MobilePhone", "phone"),
            _f("Title", "string", length=128), _f("Department", "string", length=80),
            _pick("LeadSource", LEAD_SOURCES), _f("MailingCity", "string", length=40),
            _f("MailingCountry", "string", length=80), _f("Description", "textarea"),
        ]),
        _std("Lead", "00Q", "Lead", "Leads", [
            *[Field(**{**f.__dict__}) for f in person],
            _f("Company", "string", nillable=False), _f("Title", "string", length=128),
            _f("Email", "email"), _f("Phone", "phone"), _f("Website", "url"),
            _pick("Status", [s[0] for s in LEAD_STATUSES], "Open - Not Contacted", nillable=False,
                  default="Open - Not Contacted"),
            _pick("LeadSource", LEAD_SOURCES), _pick("Industry", INDUSTRIES),
            _pick("Rating", ["Hot", "Warm", "Cold"]), _f("AnnualRevenue", "currency"),
            _f("NumberOfEmployees", "int", "Employees", precision=8),
            _f("Street", "textarea", length=255), _f("City", "string", length=40),
            _f("State", "string", length=80), _f("PostalCode", "string", "Zip/Postal Code", length=20),
            _f("Country", "string", length=80), _f("Description", "textarea"),
            _f("IsConverted", "boolean", "Converted", **RO),
            _f("ConvertedDate", "date", **RO),
            _ref("ConvertedAccountId", "Account", "ConvertedAccount", **RO),
            _ref("ConvertedContactId", "Contact", "ConvertedContact", **RO),
            _ref("ConvertedOpportunityId", "Opportunity", "ConvertedOpportunity", **RO),
            _f("IsUnreadByOwner", "boolean", "Unread By Owner", default=True),
        ]),
        _std("Campaign", "701", "Campaign", "Campaigns", [
            _f("Name", "string", "Campaign Name", length=80, nillable=False, name_field=True),
            _ref("ParentId", "Campaign", "Parent", label="Parent Campaign ID"),
            _pick("Type", ["Advertisement", "Email", "Telemarketing", "Banner Ads", "Seminar / Conference",
                           "Public Relations", "Partners", "Referral Program", "Other"]),
            _pick("Status", ["Planned", "In Progress", "Completed", "Aborted"], "Planned"),
            _f("StartDate", "date"), _f("EndDate", "date"), _f("IsActive", "boolean", "Active"),
            _f("BudgetedCost", "currency"), _f("ActualCost", "currency"),
            _f("ExpectedRevenue", "currency"), _f("Description", "textarea"),
        ]),
        _std("Opportunity", "006", "Opportunity", "Opportunities", [
            _ref("AccountId", "Account", "Account"),
            _f("Name", "string", length=120, nillable=False, name_field=True),
            _f("Description", "textarea"),
            _pick("StageName", [s[0] for s in STAGES], nillable=False, label="Stage"),
            _f("Amount", "currency"), _f("Probability", "percent", "Probability (%)", precision=3, scale=0),
            _f("CloseDate", "date", nillable=False), _pick("Type", ["Existing Business", "New Business"]),
            _f("NextStep", "string", length=255), _pick("LeadSource", LEAD_SOURCES),
            _f("IsClosed", "boolean", "Closed", **RO), _f("IsWon", "boolean", "Won", **RO),
            _pick("ForecastCategoryName", ["Omitted", "Pipeline", "Best Case", "Commit", "Closed"],
                  label="Forecast Category"),
            _ref("CampaignId", "Campaign", "Campaign"),
        ]),
        _std("CampaignMember", "00v", "Campaign Member", "Campaign Members", [
            _ref("CampaignId", "Campaign", "Campaign", nillable=False),
            _ref("LeadId", "Lead", "Lead"), _ref("ContactId", "Contact", "Contact"),
            _pick("Status", ["Planned", "Sent", "Received", "Responded"], "Sent", default="Sent"),
            _f("HasResponded", "boolean", "Responded", **RO), _f("FirstRespondedDate", "date", **RO),
            _f("Name", "string", length=121, name_field=True, **RO),
        ], owned=False),
        _std("OpportunityStage", "01J", "Opportunity Stage", "Opportunity Stages", [
            _f("MasterLabel", "string", "Master Label", nillable=False, name_field=True),
            _f("ApiName", "string", "Api Name", nillable=False),
            _f("IsActive", "boolean", default=True), _f("SortOrder", "int", precision=9),
            _f("IsClosed", "boolean", "Closed"), _f("IsWon", "boolean", "Won"),
            _pick("ForecastCategory", ["Omitted", "Pipeline", "BestCase", "Forecast", "Closed"]),
            _f("ForecastCategoryName", "string", length=40),
            _f("DefaultProbability", "percent", precision=3, scale=0), _f("Description", "string"),
        ], owned=False),
        _std("LeadStatus", "01K", "Lead Status Value", "Lead Status Values", [
            _f("MasterLabel", "string", "Master Label", nillable=False, name_field=True),
            _f("ApiName", "string", "Api Name", nillable=False),
            _f("SortOrder", "int", precision=9), _f("IsDefault", "boolean", "Is Default"),
            _f("IsConverted", "boolean", "Is Converted"),
        ], owned=False),
        _std("AssignmentRule", "01Q", "Assignment Rule", "Assignment Rules", [
            _f("Name", "string", length=120, nillable=False, name_field=True),
            _pick("SobjectType", ["Lead", "Case"], nillable=False, label="Object"),
            _f("Active", "boolean"),
        ], owned=False),
        *org_setup_objects(),
    ]
    return {o.name: o for o in objs}


def org_setup_objects() -> list[SObject]:
    """Setup objects clients read: the org itself and permission sets with their assignments."""
    org = _std("Organization", "00D", "Organization", "Organizations", [
        _f("Name", "string", length=80, nillable=False, name_field=True),
        _f("Division", "string", length=80), _f("Street", "textarea", length=255),
        _f("City", "string", length=40), _f("Country", "string", length=80),
        _f("Phone", "phone"), _f("PrimaryContact", "string", length=80),
        _pick("DefaultLocaleSidKey", ["en_US", "en_GB", "fr_FR", "de_DE"], label="Locale"),
        _pick("LanguageLocaleKey", ["en_US", "fr", "de"], label="Language"),
        _pick("TimeZoneSidKey", ["GMT", "Europe/Paris", "America/New_York"], label="Time Zone"),
        _f("InstanceName", "string", length=5, **RO), _f("IsSandbox", "boolean", **RO),
        _f("TrialExpirationDate", "datetime", **RO), _f("NamespacePrefix", "string", length=15, **RO),
        _pick("OrganizationType", ["Team Edition", "Professional Edition", "Enterprise Edition",
                                   "Developer Edition", "Personal Edition", "Unlimited Edition",
                                   "Contact Manager Edition", "Base Edition"], label="Edition", **RO),
        _f("IsReadOnly", "boolean", **RO), _f("DefaultCurrencyIsoCode", "string", length=3, **RO),
    ], owned=False)
    org.createable = False
    perm = _std("PermissionSet", "0PS", "Permission Set", "Permission Sets", [
        _f("Name", "string", length=80, nillable=False, name_field=True, unique=True),
        _f("Label", "string", length=80, nillable=False), _f("Description", "string", length=255),
        _f("NamespacePrefix", "string", length=15, **RO), _f("IsOwnedByProfile", "boolean", **RO),
        _f("IsCustom", "boolean", **RO), _f("HasActivationRequired", "boolean"),
    ], owned=False)
    assignment = _std("PermissionSetAssignment", "0Pa", "Permission Set Assignment", "Permission Set Assignments", [
        _ref("AssigneeId", "User", "Assignee", nillable=False),
        _ref("PermissionSetId", "PermissionSet", "PermissionSet", nillable=False),
        _f("IsActive", "boolean", default=True, **RO), _f("ExpirationDate", "datetime"),
    ], owned=False)
    flows = _std("FlowDefinitionView", "300", "Flow Definition View", "Flow Definition Views", [
        _f("ApiName", "string", "API Name", length=80, nillable=False, **RO),
        _f("Label", "string", length=255, name_field=True, **RO), _f("Description", "textarea", **RO),
        _f("ProcessType", "string", length=40, **RO), _f("TriggerType", "string", length=40, **RO),
        _f("TriggerObjectOrEventLabel", "string", length=255, **RO),
        _f("IsActive", "boolean", **RO), _f("ActiveVersionId", "string", "Active Version ID", length=18, **RO),
        _f("LatestVersionId", "string", "Latest Version ID", length=18, **RO),
        _f("ApiVersion", "double", precision=18, scale=1, **RO),
    ], owned=False)
    flows.createable = False
    return [org, perm, assignment, flows]


# ---------------------------------------------------------------- SFDX metadata
_MD_TYPES = {
    "Text": "string", "TextArea": "textarea", "LongTextArea": "textarea", "Html": "textarea",
    "EncryptedText": "string", "Email": "email", "Phone": "phone", "Url": "url",
    "Number": "double", "Currency": "currency", "Percent": "percent", "Checkbox": "boolean",
    "Date": "date", "DateTime": "datetime", "Picklist": "picklist",
    "MultiselectPicklist": "multipicklist", "Lookup": "reference", "MasterDetail": "reference",
    "AutoNumber": "string", "Summary": "double",
}


def _text(el: Any, tag: str, default: str | None = None) -> str | None:
    child = el.find(MD_NS + tag)
    if child is None:
        child = el.find(tag)
    return child.text.strip() if child is not None and child.text else default


def _iter(el: Any, path: str) -> list[Any]:
    ns_path = "/".join(MD_NS + p for p in path.split("/"))
    return list(el.findall(ns_path)) or list(el.findall(path))


def field_from_element(root: Any, name_hint: str = "") -> Field | None:
    """A CustomField element (source file root or a ``<fields>`` child of a CustomObject) -> Field."""
    name = _text(root, "fullName") or name_hint
    md_type = _text(root, "type")
    formula = _text(root, "formula")
    if md_type is None and formula is None:
        return None
    if formula is not None:
        ret = _text(root, "type") or "Text"
        type_ = _MD_TYPES.get(ret, "string")
    else:
        type_ = _MD_TYPES.get(md_type or "Text", "string")
    kw: dict[str, Any] = {"custom": name.endswith("__c")}
    if type_ in ("string", "email", "phone", "url"):
        kw["length"] = int(_text(root, "length", "0") or 0) or {"email": 80, "phone": 40}.get(type_, 255)
    if md_type == "AutoNumber":
        kw.update(auto_number=True, createable=False, updateable=False, length=30)
    if type_ == "textarea":
        kw["length"] = int(_text(root, "length", "0") or 0) or 255
    if type_ in ("double", "currency", "percent"):
        precision = int(_text(root, "precision", "18") or 18)
        scale = int(_text(root, "scale", "0") or 0)
        kw.update(precision=precision, scale=scale)
    if type_ == "boolean":
        kw["default"] = (_text(root, "defaultValue", "false") or "false").lower() == "true"
        kw["nillable"] = False
    if type_ == "reference":
        target = _text(root, "referenceTo") or ""
        rel = name[:-3] + "__r" if name.endswith("__c") else name
        kw.update(reference_to=[target], relationship_name=rel)
        child_rel = _text(root, "relationshipName")
        if child_rel:
            kw["child_relationship_name"] = child_rel + "__r"
        if md_type == "MasterDetail":
            kw.update(nillable=False, cascade_delete=True)
        elif (_text(root, "deleteConstraint") or "") == "Cascade":
            kw["cascade_delete"] = True
    if type_ in ("picklist", "multipicklist"):
        values = []
        labels = {}
        default = None
        for v in _iter(root, "valueSet/valueSetDefinition/value"):
            full = _text(v, "fullName")
            if full:
                values.append(full)
                labels[full] = _text(v, "label") or full
                if (_text(v, "default", "false") or "").lower() == "true":
                    default = full
        kw.update(picklist=values, picklist_default=default, length=255, picklist_labels=labels)
        kw["restricted_picklist"] = (_text(_first(root, "valueSet"), "restricted", "false") or "") == "true"
        if default is not None:
            kw["default"] = default
    if formula is not None or md_type == "Summary":
        kw.update(calculated=True, createable=False, updateable=False)
    if formula is not None:
        kw.update(formula=formula, formula_blank_as_zero=_text(root, "formulaTreatBlanksAs") == "BlankAsZero")
    if md_type == "Summary":
        kw["summary"] = _summary(root)
    if (_text(root, "required", "false") or "").lower() == "true" and type_ != "boolean":
        kw["nillable"] = False
    kw["external_id"] = (_text(root, "externalId", "false") or "").lower() == "true"
    kw["unique"] = (_text(root, "unique", "false") or "").lower() == "true"
    return Field(name=name, type=type_, label=_text(root, "label") or _label(name), **kw)


def _summary(root: Any) -> Any:
    from .formulas import Summary

    child, _, foreign_key = (_text(root, "summaryForeignKey") or ".").partition(".")
    summarized = (_text(root, "summarizedField") or "").partition(".")[2] or None
    filters = [((_text(item, "field") or "").partition(".")[2] or (_text(item, "field") or ""),
                _text(item, "operation") or "equals", _text(item, "value") or "")
               for item in _iter(root, "summaryFilterItems")]
    return Summary((_text(root, "summaryOperation") or "count").lower(), child, foreign_key, summarized, filters,
                   _text(root, "summaryBooleanFilter"))


def _first(root: Any, tag: str) -> Any:
    el = root.find(MD_NS + tag)
    if el is None:
        el = root.find(tag)
    return el if el is not None else root.makeelement("x", {})


def default_metadata_dir() -> Path:
    """The repository package's objects folder: what a new org installs, through the deploy, by default."""
    # backend/refstage_devkit/emulators/salesforce/schema.py -> the repository root is parents[4]
    return Path(__file__).resolve().parents[4] / "sfdx" / "force-app" / "main" / "default" / "objects"


def custom_object_from_element(name: str, root: Any, key_prefix: str, existing: SObject | None) -> SObject:
    """Apply a deployed CustomObject (metadata format: the object plus its ``<fields>``) to the schema.

    A standard object only gains fields; a custom object is (re)built with its system and name fields."""
    if existing is not None and not existing.custom:
        obj = existing
    else:
        label = _text(root, "label") or (existing.label if existing else name[:-3].replace("_", " "))
        plural = _text(root, "pluralLabel") or (existing.label_plural if existing else label + "s")
        obj = SObject(name, key_prefix, label, plural, custom=True)
        _system(obj)
        nf = _first(root, "nameField")
        if existing is not None and _text(nf, "type") is None:
            obj.add(existing.fields["Name"])
        else:
            auto = (_text(nf, "type") or "Text") == "AutoNumber"
            obj.add(_f("Name", "string", _text(nf, "label") or f"{label} Name", length=80, name_field=True,
                       auto_number=auto, createable=not auto, updateable=not auto))
        if existing is not None:
            for f in existing.fields.values():
                if f.custom and f.name not in obj.fields:
                    obj.add(f)
    for fel in _iter(root, "fields"):
        f = field_from_element(fel)
        if f is not None:
            obj.add(f)
    if obj.custom and any(f.cascade_delete and not f.nillable for f in obj.fields.values()):
        obj.owned = False  # master-detail children are owned by their parent
        obj.fields.pop("OwnerId", None)
    return obj
