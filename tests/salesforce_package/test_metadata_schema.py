"""Every metadata file of the package (sfdx/, lwc/) and of the push-path bundle, rendered, against the official v65
schema (the vendored metadata WSDL's <types>); and each schema rule fires on a deliberately broken copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from refstage.adapters.crm.salesforce import metadata_schema as ms
from refstage.adapters.crm.salesforce.push_installer import TEMPLATE_FILES, render_files

ROOT = Path(__file__).resolve().parents[2]
FIELD = (ROOT / "sfdx/force-app/main/default/objects/Referral_Reward__c/fields/Amount__c.field-meta.xml").read_text()
TAB = (ROOT / "sfdx/force-app/main/default/tabs/Referral__c.tab-meta.xml").read_text()
FOLDER = (ROOT / "sfdx/force-app/main/default/reports/Refstage_Reports.reportFolder-meta.xml").read_text()


def test_the_schema_is_read_from_the_vendored_wsdl():
    schema = ms.load_schema()
    assert len(schema.complex) > 1500 and len(schema.enums) > 800
    custom_field = {p.name: p for p in schema.complex["CustomField"]}
    assert custom_field["fullName"].min == 0  # from the Metadata base type
    assert "Currency" in schema.enums["FieldType"] and "Number" in schema.enums["FieldType"]


def test_every_package_file_matches_the_v65_schema():
    files = [p for root in ("sfdx", "lwc") for p in (ROOT / root).rglob("*-meta.xml") if "__tests__" not in p.parts]
    assert len(files) > 70
    assert ms.schema_errors_of_tree([ROOT / "sfdx", ROOT / "lwc"]) == []


@pytest.mark.parametrize("flows_active", [True, False])
def test_the_rendered_push_path_bundle_matches_the_v65_schema(flows_active):
    files = render_files("ada@acme.example", "https://refer.example.org/webhooks/salesforce/outbound-message/c?k=1&x=2",
                         flows_active=flows_active)
    assert set(files) == set(TEMPLATE_FILES)
    assert ms.schema_errors_of_files(files) == []


@pytest.mark.parametrize(("text", "expected"), [
    (FIELD.replace("<label>Amount</label>", "<label>Amount</label><colour>red</colour>"), "CustomField has no element colour"),
    (FIELD.replace("<description>", "<type>Number</type><description>", 1), "may appear at most 1 time"),
    (FIELD.replace("<type>Number</type>", "<type>Decimal</type>"), "'Decimal' is not one of the FieldType values"),
    (FIELD.replace("<required>false</required>", "<required>no</required>"), "'no' is not a boolean"),
    (FIELD.replace("<precision>16</precision>", "<precision>sixteen</precision>"), "'sixteen' is not an integer"),
    (TAB.replace("<customObject>true</customObject>", "").replace("</motif>", "</motif><customObject>true</customObject>"),
     "out of order (customObject must come before motif in CustomTab)"),
    (FOLDER.replace("<sharedToType>Group</sharedToType>", "", 1), "FolderShare requires sharedToType"),
    (FOLDER.replace("<accessLevel>View</accessLevel>", "<accessLevel>Read</accessLevel>"),
     "'Read' is not one of the FolderShareAccessLevel values"),
    (FOLDER.replace("<name>Refstage Reports</name>", ""), "ReportFolder requires name"),
    (FIELD.replace('xmlns="http://soap.sforce.com/2006/04/metadata"', 'xmlns="urn:other"'), "not in the metadata namespace"),
    (FIELD.replace("CustomField", "CustomWidget"), "CustomWidget is not a Metadata API type"),
    (FIELD.replace("</label>", "</labl>"), "not well-formed XML"),
])
def test_each_schema_rule_fires_on_a_broken_copy(text, expected):
    errors = ms.validate_xml(text, "broken")
    assert any(expected in e for e in errors), errors


def test_lightning_component_meta_is_exempt_from_element_order_only():
    meta = (ROOT / "lwc/referralAttribution/referralAttribution.js-meta.xml").read_text()
    assert ms.validate_xml(meta, "lwc") == []  # targets before targetConfigs, as Salesforce's own examples
    assert any("has no element isExposd" in e for e in ms.validate_xml(meta.replace("isExposed", "isExposd"), "lwc"))


def test_an_entity_expansion_is_refused():
    bomb = ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>'
            '<CustomTab xmlns="http://soap.sforce.com/2006/04/metadata"><motif>&a;</motif></CustomTab>')
    assert any("DTD or entities" in e for e in ms.validate_xml(bomb, "bomb"))
