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
const PUSH_PATH = 'backend/refstage/adapters/crm/salesforce/push_path';

function copyProject() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'refstage-validate-'));
    for (const item of ['sfdx-project.json', 'sfdx', 'lwc', MANIFEST, PUSH_PATH]) {
        fs.cpSync(path.join(ROOT, item), path.join(dir, item), { recursive: true, verbatimSymlinks: true });
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

test('an outbound message of the push-path bundle sending an unknown field', () => {
    const errors = errorsAfter((dir) => edit(dir, `${PUSH_PATH}/workflows/Opportunity.workflow`, '<fields>StageName</fields>', '<fields>Stage</fields>'));
    assertReported(errors, /Opportunity\.Stage does not exist/);
});

/** The package as it was before issue 19: the push path inside it, with placeholder user and endpoint. */
function putPushPathInPackage(dir) {
    for (const [from, to] of [
        ['workflows/Lead.workflow', 'workflows/Lead.workflow-meta.xml'],
        ['flows/Refstage_Lead_Status_Changed.flow', 'flows/Refstage_Lead_Status_Changed.flow-meta.xml']
    ]) {
        const source = fs
            .readFileSync(path.join(ROOT, PUSH_PATH, from), 'utf8')
            .replace('{{integration_user}}', 'refstage-integration@example.com')
            .replace('{{endpoint_url}}', 'https://refstage.example.com/webhooks/salesforce/outbound-message')
            .replace('{{flow_status}}', 'Active');
        fs.mkdirSync(path.dirname(path.join(dir, DEFAULT, to)), { recursive: true });
        fs.writeFileSync(path.join(dir, DEFAULT, to), source);
    }
}

test('issue 19 #1: a username and a placeholder endpoint in the package', () => {
    const errors = errorsAfter(putPushPathInPackage);
    assertReported(errors, /Lead\.workflow-meta\.xml: user reference <integrationUser>refstage-integration@example\.com/);
    assertReported(errors, /placeholder endpoint https:\/\/refstage\.example\.com/);
    assertReported(errors, /outbound messages do not belong in the package/);
});

test('issue 19 #2: an active record-triggered flow without Apex tests', () => {
    assertReported(errorsAfter(putPushPathInPackage), /Refstage_Lead_Status_Changed\.flow-meta\.xml: an active autolaunched flow with no Apex test/);
});

test('issue 19 #4: a permission set missing a field, a tab or the app', () => {
    const file = `${DEFAULT}/permissionsets/Referral_Viewer.permissionset-meta.xml`;
    const source = fs.readFileSync(path.join(ROOT, file), 'utf8');
    const block = /\s*<fieldPermissions>\s*<editable>false<\/editable>\s*<field>Lead\.Refstage_Referral_Id__c<\/field>\s*<readable>true<\/readable>\s*<\/fieldPermissions>/.exec(source)[0];
    assertReported(errorsAfter((dir) => edit(dir, file, block, '')), /Referral_Viewer grants no access to Lead\.Refstage_Referral_Id__c/);
    const tab = /\s*<tabSettings>\s*<tab>Referral__c<\/tab>\s*<visibility>\w+<\/visibility>\s*<\/tabSettings>/.exec(source)[0];
    assertReported(errorsAfter((dir) => edit(dir, file, tab, '')), /Referral_Viewer has no tab setting for Referral__c/);
    assertReported(errorsAfter((dir) => edit(dir, file, '<visible>true</visible>', '<visible>false</visible>')), /Referral_Viewer does not show app Refstage/);
});

test('issue 19 #5: amounts in a Currency field, a roll-up sum and a report sum across currencies', () => {
    const amount = `${DEFAULT}/objects/Referral_Reward__c/fields/Amount__c.field-meta.xml`;
    assertReported(errorsAfter((dir) => edit(dir, amount, '<type>Number</type>', '<type>Currency</type>')), /Amount__c is a Currency field but the amount's currency is Currency_Code__c/);
    const rollup = `${DEFAULT}/objects/Referral__c/fields/Issued_Reward_Count__c.field-meta.xml`;
    assertReported(
        errorsAfter((dir) => edit(dir, rollup, '<summaryOperation>count</summaryOperation>', '<summarizedField>Referral_Reward__c.Amount__c</summarizedField><summaryOperation>sum</summaryOperation>')),
        /roll-up Referral__c\.Issued_Reward_Count__c sums Referral_Reward__c\.Amount__c across currencies/
    );
    const report = `${DEFAULT}/reports/Refstage_Reports/Rewards_Issued_by_Month.report-meta.xml`;
    assertReported(errorsAfter((dir) => edit(dir, report, '<showGrandTotal>false</showGrandTotal>', '<showGrandTotal>true</showGrandTotal>')), /sums Referral__c\.Rewards__r\$Amount__c across currencies/);
});

test('issue 19 #6: Top Advocates not ranked', () => {
    const dashboard = `${DEFAULT}/dashboards/Refstage_Dashboards/Refstage_Referral_Governance.dashboard-meta.xml`;
    assertReported(errorsAfter((dir) => edit(dir, dashboard, '<sortBy>RowValueDescending</sortBy>', '<sortBy>RowLabelAscending</sortBy>')), /table of Refstage_Reports\/Top_Advocates is not ranked/);
    const report = `${DEFAULT}/reports/Refstage_Reports/Top_Advocates.report-meta.xml`;
    assertReported(errorsAfter((dir) => edit(dir, report, '<sortType>Aggregate</sortType>', '')), /Top_Advocates is not ranked/);
});

test('issue 19 #7: folders shared with nobody, or with a group the package lacks', () => {
    const folder = `${DEFAULT}/reports/Refstage_Reports.reportFolder-meta.xml`;
    const source = fs.readFileSync(path.join(ROOT, folder), 'utf8');
    assertReported(errorsAfter((dir) => edit(dir, folder, source, source.replace(/\s*<folderShares>[\s\S]*<\/folderShares>/, ''))), /shared with nobody/);
    assertReported(errorsAfter((dir) => edit(dir, folder, '<sharedTo>Refstage_Users</sharedTo>', '<sharedTo>Sales_Team</sharedTo>')), /group Sales_Team, which the package does not define/);
});

test('issue 19 #8: a tab style Salesforce does not know', () => {
    assertReported(errorsAfter((dir) => edit(dir, `${DEFAULT}/tabs/Referral__c.tab-meta.xml`, '<motif>Custom14: Hands</motif>', '<motif>Custom20: Cash</motif>')), /tab style "Custom20: Cash"/);
});

test('issue 19 #9: an Opportunity page without the subheader template', () => {
    const page = `${DEFAULT}/flexipages/Opportunity_Record_Page_Refstage.flexipage-meta.xml`;
    assertReported(errorsAfter((dir) => edit(dir, page, 'flexipage:recordHomeWithSubheaderTemplateDesktop', 'flexipage:recordHomeTemplateDesktop')), /sfa__Opportunity_rec_L use flexipage:recordHomeWithSubheaderTemplateDesktop/);
});

test('issue 19 #11: a tab in no Lightning app', () => {
    assertReported(errorsAfter((dir) => edit(dir, `${DEFAULT}/applications/Refstage.app-meta.xml`, '<tabs>Referral_Reward__c</tabs>', '')), /tab Referral_Reward__c is in no Lightning app/);
});

test('issue 19 #11: hard-coded component text, an unknown label and string-built record URLs', () => {
    const html = 'lwc/referralAttribution/referralAttribution.html';
    assertReported(errorsAfter((dir) => edit(dir, html, '{label.rewardsNone}', 'No reward yet.')), /hard-coded text "No reward yet\."/);
    assertReported(errorsAfter((dir) => edit(dir, html, 'alternative-text={label.loading}', 'alternative-text="Loading"')), /hard-coded alternative-text="Loading"/);
    const js = 'lwc/referralAttribution/referralAttribution.js';
    assertReported(errorsAfter((dir) => edit(dir, js, 'c.Refstage_Rewards_None', 'c.Refstage_Rewards_Nothing')), /custom label Refstage_Rewards_Nothing is not defined/);
    assertReported(
        errorsAfter((dir) => edit(dir, js, 'return this.recordUrls[this.advocateId];', 'return `/lightning/r/${this.advocateId}/view`;')),
        /record URLs are built as strings/
    );
});

test('issue 19 #11: a field on a standard object that no layout shows', () => {
    const layout = `${DEFAULT}/layouts/Lead-Lead (Refstage).layout-meta.xml`;
    const source = fs.readFileSync(path.join(ROOT, layout), 'utf8');
    const item = /\s*<layoutItems>\s*<behavior>Readonly<\/behavior>\s*<field>Refstage_Referral_Id__c<\/field>\s*<\/layoutItems>/.exec(source)[0];
    assertReported(errorsAfter((dir) => edit(dir, layout, item, '')), /Lead\.Refstage_Referral_Id__c is on no page layout/);
});

test('issue 19 #10: the package definition the CLI reads', async () => {
    const { checkPackageDefinition } = await import('../package-definition.mjs');
    const withProject = (change) => {
        const dir = copyProject();
        try {
            fs.cpSync(path.join(ROOT, 'config'), path.join(dir, 'config'), { recursive: true });
            const file = path.join(dir, 'sfdx-project.json');
            const project = JSON.parse(fs.readFileSync(file, 'utf8'));
            change(project, dir);
            fs.writeFileSync(file, JSON.stringify(project));
            return checkPackageDefinition(dir);
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    };
    assert.deepEqual(withProject(() => {}), []);
    // the project file as it was before issue 19: no package, two package directories
    const before = withProject((p) => {
        p.packageDirectories = [{ path: 'sfdx/force-app', default: true }, { path: 'lwc' }];
    });
    assertReported(before, /must define exactly one package/);
    assertReported(before, /lwc must not be a package directory/);
    assertReported(
        withProject((p) => delete p.packageDirectories[0].versionNumber),
        /sfdx-project\.json: .*Unrecognized key/
    );
    assertReported(withProject((p) => (p.packageDirectories[0].versionNumber = '1.0')), /is not major\.minor\.patch/);
    assertReported(
        withProject((p, dir) => fs.writeFileSync(path.join(dir, 'config/project-scratch-def.json'), '{"edition":"Free"}')),
        /project-scratch-def\.json/
    );
});

test('a dashboard component showing a report the package lacks', () => {
    const dashboard = `${DEFAULT}/dashboards/Refstage_Dashboards/Refstage_Referral_Governance.dashboard-meta.xml`;
    assertReported(
        errorsAfter((dir) => edit(dir, dashboard, 'Refstage_Reports/Referral_Pipeline_by_Stage', 'Refstage_Reports/Pipeline')),
        /dashboard component uses report Refstage_Reports\/Pipeline, which is not in this package/
    );
});
