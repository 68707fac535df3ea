/*
 * The validator must catch what `sf project convert source` lets through. Each case copies the project's
 * own metadata into a temporary folder, breaks one thing, and expects exactly that to be reported.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { validateProject } from '../validate-metadata.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const DEFAULT = 'sfdx/force-app/main/default';
const MANIFEST = 'backend/refstage/adapters/crm/salesforce/package_fields.json';

function copyProject() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'refstage-validate-'));
    for (const item of ['sfdx-project.json', 'sfdx', 'lwc', MANIFEST]) {
        fs.cpSync(path.join(ROOT, item), path.join(dir, item), { recursive: true });
    }
    return dir;
}

function edit(dir, file, from, to) {
    const full = path.join(dir, file);
    const source = fs.readFileSync(full, 'utf8');
    assert.ok(source.includes(from), `${file} does not contain ${from}`);
    fs.writeFileSync(full, source.replace(from, to));
}

function errorsAfter(change) {
    const dir = copyProject();
    try {
        change(dir);
        return validateProject(dir).errors;
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

function assertReported(errors, pattern) {
    assert.ok(errors.some((e) => pattern.test(e)), `expected an error matching ${pattern}, got:\n${errors.join('\n')}`);
}

test('the project as committed is valid', () => {
    assert.deepEqual(validateProject(ROOT).errors, []);
});

test('malformed XML', () => {
    const errors = errorsAfter((dir) => edit(dir, `${DEFAULT}/objects/Referral__c/fields/Friend_Name__c.field-meta.xml`, '</label>', '</labl>'));
    assertReported(errors, /Friend_Name__c.*malformed XML/);
});

test('an invalid field type', () => {
    const errors = errorsAfter((dir) => edit(dir, `${DEFAULT}/objects/Referral__c/fields/Friend_Name__c.field-meta.xml`, '<type>Text</type>', '<type>String</type>'));
    assertReported(errors, /invalid field type "String"/);
});

test('a currency field without precision', () => {
    const errors = errorsAfter((dir) => edit(dir, `${DEFAULT}/objects/Referral_Reward__c/fields/Amount__c.field-meta.xml`, '<precision>16</precision>', ''));
    assertReported(errors, /precision 1\.\.18/);
});

test('a field without help text', () => {
    const errors = errorsAfter((dir) => edit(dir, `${DEFAULT}/objects/Lead/fields/Referral_Link__c.field-meta.xml`, /<inlineHelpText>[^<]*<\/inlineHelpText>/.exec(fs.readFileSync(path.join(ROOT, DEFAULT, 'objects/Lead/fields/Referral_Link__c.field-meta.xml'), 'utf8'))[0], ''));
    assertReported(errors, /Lead\.Referral_Link__c has no help text/);
});

test('a picklist that drifts from the backend states', () => {
    const errors = errorsAfter((dir) => edit(dir, `${DEFAULT}/objects/Referral__c/fields/Status__c.field-meta.xml`, '<fullName>in_progress</fullName>', '<fullName>working</fullName>'));
    assertReported(errors, /Referral__c\.Status__c values must match the backend/);
});

test('an invalid LWC target', () => {
    const errors = errorsAfter((dir) => edit(dir, 'lwc/referralAttribution/referralAttribution.js-meta.xml', '<target>lightning__RecordPage</target>', '<target>lightning__RecordPages</target>'));
    assertReported(errors, /invalid LWC target lightning__RecordPages/);
});

test('a schema import of a field that does not exist', () => {
    const errors = errorsAfter((dir) => edit(dir, 'lwc/referralAttribution/referralAttribution.js', 'Opportunity.Referral__r.Advocate__r.Name', 'Opportunity.Referral__r.Advocat__r.Name'));
    assertReported(errors, /schema import Opportunity\.Referral__r\.Advocat__r\.Name/);
});

test('a GraphQL query naming an unknown field', () => {
    const errors = errorsAfter((dir) => edit(dir, 'lwc/accountReferrals/accountReferrals.js', 'Friend_Name__c {', 'Friend_Nam__c {'));
    assertReported(errors, /GraphQL query uses Friend_Nam__c/);
});

test('a permission set granting an unknown field, or edit on a roll-up', () => {
    const file = `${DEFAULT}/permissionsets/Referral_Viewer.permissionset-meta.xml`;
    assertReported(errorsAfter((dir) => edit(dir, file, '<field>Referral__c.Friend_Name__c</field>', '<field>Referral__c.Friend_Nickname__c</field>')), /fieldPermissions: Referral__c\.Friend_Nickname__c/);
    const admin = `${DEFAULT}/permissionsets/Referral_Admin.permissionset-meta.xml`;
    const source = fs.readFileSync(path.join(ROOT, admin), 'utf8');
    const block = /<fieldPermissions>\s*<editable>false<\/editable>\s*<field>Referral__c\.Reward_Count__c<\/field>/.exec(source)[0];
    assertReported(errorsAfter((dir) => edit(dir, admin, block, block.replace('false', 'true'))), /Reward_Count__c is calculated and cannot be editable/);
});

test('a report column outside its report type', () => {
    const errors = errorsAfter((dir) => edit(dir, `${DEFAULT}/reports/Refstage_Reports/Top_Advocates.report-meta.xml`, '<field>Referral__c$Status__c</field>', '<field>Referral__c$Stage__c</field>'));
    assertReported(errors, /report column Referral__c\$Stage__c/);
});

test('a write-back field missing from the metadata or from the integration permission set', () => {
    const added = errorsAfter((dir) => {
        const file = path.join(dir, MANIFEST);
        const manifest = JSON.parse(fs.readFileSync(file, 'utf8'));
        manifest.Referral__c.push('Payout_Reference__c');
        fs.writeFileSync(file, JSON.stringify(manifest));
    });
    assertReported(added, /the backend writes Referral__c\.Payout_Reference__c, which does not exist/);
    const file = `${DEFAULT}/permissionsets/Referral_Integration.permissionset-meta.xml`;
    const source = fs.readFileSync(path.join(ROOT, file), 'utf8');
    const block = /<fieldPermissions>\s*<editable>true<\/editable>\s*<field>Contact\.Referral_Link__c<\/field>/.exec(source)[0];
    assertReported(errorsAfter((dir) => edit(dir, file, block, block.replace('true', 'false'))), /does not grant edit on Contact\.Referral_Link__c/);
});

test('a flexipage placing a component on an object it is not configured for', () => {
    const errors = errorsAfter((dir) => edit(dir, `${DEFAULT}/flexipages/Account_Record_Page_Refstage.flexipage-meta.xml`, '<componentName>accountReferrals</componentName>', '<componentName>referralAttribution</componentName>'));
    assertReported(errors, /referralAttribution is not configured for Account/);
});

test('an outbound message sending an unknown field', () => {
    const errors = errorsAfter((dir) => edit(dir, `${DEFAULT}/workflows/Opportunity.workflow-meta.xml`, '<fields>StageName</fields>', '<fields>Stage</fields>'));
    assertReported(errors, /Opportunity\.Stage does not exist/);
});
