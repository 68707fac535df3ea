#!/usr/bin/env node
/*
 * Offline validator for the Refstage SFDX project.
 *
 * No npm package ships a current Metadata API schema and `sf project convert source` accepts bad field
 * types, invalid LWC targets and dangling references, so this script checks what a deploy would reject
 * (and a few project rules):
 *   - every *-meta.xml is well-formed, in the metadata namespace, with the root element its suffix implies;
 *   - custom objects and fields: valid types with their required attributes, help text on every field,
 *     external ids, relationship names, roll-up summaries, picklist values matching the backend's states;
 *   - every field referenced by a component (schema imports and GraphQL), a permission set, a layout,
 *     a list view, a report type, a report, an outbound message, a flow or the backend's write-back manifest
 *     exists; LWC targets are valid; flexipages place exposed components on the right objects.
 *
 * Usage: node scripts/validate-metadata.mjs [projectRoot]   (exit code 1 on any error)
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { XMLParser, XMLValidator } from 'fast-xml-parser';

const METADATA_NS = 'http://soap.sforce.com/2006/04/metadata';

/** Root element expected for each source-format suffix. */
const ROOT_BY_SUFFIX = {
    '.object-meta.xml': 'CustomObject',
    '.field-meta.xml': 'CustomField',
    '.listView-meta.xml': 'ListView',
    '.permissionset-meta.xml': 'PermissionSet',
    '.layout-meta.xml': 'Layout',
    '.tab-meta.xml': 'CustomTab',
    '.reportType-meta.xml': 'ReportType',
    '.report-meta.xml': 'Report',
    '.reportFolder-meta.xml': 'ReportFolder',
    '.dashboard-meta.xml': 'Dashboard',
    '.dashboardFolder-meta.xml': 'DashboardFolder',
    '.workflow-meta.xml': 'Workflow',
    '.flow-meta.xml': 'Flow',
    '.flexipage-meta.xml': 'FlexiPage',
    '.js-meta.xml': 'LightningComponentBundle',
    '.app-meta.xml': 'CustomApplication',
    '.group-meta.xml': 'Group',
    '.cls-meta.xml': 'ApexClass',
    '.labels-meta.xml': 'CustomLabels',
    '.eca-meta.xml': 'ExternalClientApplication',
    '.ecaOauth-meta.xml': 'ExtlClntAppOauthSettings',
    '.ecaGlblOauth-meta.xml': 'ExtlClntAppGlobalOauthSettings',
    '.ecaOauthPlcy-meta.xml': 'ExtlClntAppOauthConfigurablePolicies'
};

const FIELD_TYPES = new Set([
    'AutoNumber',
    'Checkbox',
    'Currency',
    'Date',
    'DateTime',
    'Email',
    'EncryptedText',
    'Html',
    'Location',
    'Lookup',
    'LongTextArea',
    'MasterDetail',
    'MultiselectPicklist',
    'Number',
    'Percent',
    'Phone',
    'Picklist',
    'Summary',
    'Text',
    'TextArea',
    'Time',
    'Url'
]);
const EXTERNAL_ID_TYPES = new Set(['Text', 'Number', 'Email', 'AutoNumber']);
const UNIQUE_TYPES = new Set(['Text', 'Number', 'Email']);
const NUMERIC_TYPES = new Set(['Currency', 'Number', 'Percent']);
const SHARING_MODELS = new Set([
    'Private',
    'Read',
    'ReadWrite',
    'ReadWriteTransfer',
    'FullAccess',
    'ControlledByParent',
    'ControlledByCampaign',
    'ControlledByLeadOrContact'
]);
const DELETE_CONSTRAINTS = new Set(['SetNull', 'Restrict', 'Cascade']);
const SUMMARY_OPERATIONS = new Set(['count', 'sum', 'min', 'max']);

/** Targets a LightningComponentBundle may declare. */
const LWC_TARGETS = new Set([
    'lightning__AppPage',
    'lightning__HomePage',
    'lightning__RecordPage',
    'lightning__RecordAction',
    'lightning__Tab',
    'lightning__FlowScreen',
    'lightning__FlowAction',
    'lightning__Inbox',
    'lightning__UtilityBar',
    'lightning__UrlAddressable',
    'lightning__GlobalAction',
    'lightning__ChatMessage',
    'lightning__Dashboard',
    'lightning__EnablePrebuiltComponent',
    'lightning__VoiceExtension',
    'lightningCommunity__Page',
    'lightningCommunity__Default',
    'lightningCommunity__Page_Layout',
    'lightningCommunity__Theme_Layout',
    'lightningSnapin__ChatHeader',
    'lightningSnapin__ChatMessage',
    'lightningSnapin__Minimized',
    'lightningSnapin__PreChat',
    'lightningSnapin__ChannelMenu',
    'lightningStatic__Email',
    'analytics__Dashboard',
    'lightning__ServiceCloudVoiceToolkitApi',
    'lightning__RecordField',
    'lightning__AgentforceInput',
    'lightning__AgentforceOutput'
]);

/** Standard fields this package may reference, per standard object (relationship names included). */
const STANDARD_FIELDS = {
    Account: [
        'Id',
        'Name',
        'OwnerId',
        'Owner',
        'Type',
        'Industry',
        'SystemModstamp',
        'LastModifiedDate',
        'CreatedDate'
    ],
    Contact: [
        'Id',
        'Name',
        'FirstName',
        'LastName',
        'Email',
        'AccountId',
        'Account',
        'OwnerId',
        'Owner',
        'SystemModstamp',
        'LastModifiedDate',
        'CreatedDate'
    ],
    Lead: [
        'Id',
        'Name',
        'FirstName',
        'LastName',
        'Email',
        'Company',
        'Status',
        'LeadSource',
        'IsConverted',
        'ConvertedDate',
        'ConvertedAccountId',
        'ConvertedContactId',
        'ConvertedOpportunityId',
        'OwnerId',
        'Owner',
        'SystemModstamp',
        'LastModifiedDate',
        'CreatedDate'
    ],
    Opportunity: [
        'Id',
        'Name',
        'StageName',
        'Amount',
        'CloseDate',
        'IsClosed',
        'IsWon',
        'AccountId',
        'Account',
        'OwnerId',
        'Owner',
        'Probability',
        'SystemModstamp',
        'LastModifiedDate',
        'CreatedDate'
    ],
    User: ['Id', 'Name', 'Email', 'Username']
};
/** Standard fields every custom object has. */
const CUSTOM_OBJECT_STANDARD_FIELDS = [
    'Id',
    'Name',
    'OwnerId',
    'Owner',
    'CreatedDate',
    'CreatedById',
    'LastModifiedDate',
    'LastModifiedById',
    'SystemModstamp',
    'IsDeleted'
];
const STANDARD_REFERENCES = {
    Account: { Owner: 'User' },
    Contact: { Account: 'Account', Owner: 'User' },
    Lead: { Owner: 'User' },
    Opportunity: { Account: 'Account', Owner: 'User' }
};

/** Picklists that mirror the backend's domain: API names must match exactly, in this order. */
const DOMAIN_PICKLISTS = {
    'Referral__c.Status__c': [
        'captured',
        'routed',
        'in_progress',
        'qualified',
        'rewarded',
        'duplicate',
        'rejected',
        'disqualified'
    ],
    'Referral__c.Source__c': ['link', 'form', 'api', 'crm', 'self_enrolment'],
    'Referral__c.Review_Reason__c': [
        'self_referral',
        'duplicate_existing_record',
        'existing_customer',
        'over_amount_threshold',
        'advocate_cap_reached',
        'milestone_regressed',
        'suspicious_velocity'
    ],
    'Referral_Reward__c.Status__c': ['pending_hold', 'pending_review', 'approved', 'issued', 'rejected', 'cancelled'],
    'Referral_Reward__c.Type__c': ['fixed', 'percentage', 'tier_bonus'],
    'Referral_Reward__c.Recipient__c': ['advocate', 'friend'],
    'Referral_Reward__c.Review_Reason__c': [
        'self_referral',
        'duplicate_existing_record',
        'existing_customer',
        'over_amount_threshold',
        'advocate_cap_reached',
        'milestone_regressed',
        'suspicious_velocity'
    ],
    'Referral_Program__c.Status__c': ['draft', 'live', 'paused']
};
/** Objects that must carry a unique, external-id Backend_Id__c (upsert key of the backend). */
const BACKEND_ID_OBJECTS = ['Referral_Program__c', 'Referral__c', 'Referral_Reward__c'];
const INTEGRATION_PERMSET = 'Referral_Integration';
const WRITE_BACK_MANIFEST = 'backend/refstage/adapters/crm/salesforce/package_fields.json';
/** The push-path bundle the backend deploys after OAuth (metadata format, with {{placeholders}}). */
const PUSH_PATH_DIR = 'backend/refstage/adapters/crm/salesforce/push_path';
const PUSH_PATH_SAMPLE = {
    integration_user: 'admin@acme-sample.invalid',
    endpoint_url: 'https://refstage.invalid/webhooks/salesforce/outbound-message/sample',
    flow_status: 'Active'
};
/** Permission sets that must cover every custom field, object, tab and app of the package. */
const COVERING_PERMSETS = ['Referral_Admin', 'Referral_Viewer'];
/** Elements whose value is a username: resolved at deploy time, different in every org. */
const USER_REFERENCE_ELEMENTS = ['integrationUser', 'runningUser', 'user', 'recipient', 'senderAddress'];
/** Hosts that only ever stand for "fill this in later". */
const PLACEHOLDER_HOST = /(^|\.)(example\.(com|org|net)|localhost|[^.]+\.(test|invalid|example|local))$/i;
/** The tab styles the Salesforce CLI knows (plugin-sobject's tab generator holds the list). */
const TAB_STYLES_SOURCE = 'node_modules/@salesforce/plugin-sobject/lib/commands/schema/generate/tab.js';
/** Standard Lightning pages whose record pages carry the Sales Path: they need the subheader template. */
const SUBHEADER_PARENTS = {
    sfa__Opportunity_rec_L: 'flexipage:recordHomeWithSubheaderTemplateDesktop',
    sfa__Lead_rec_L: 'flexipage:recordHomeWithSubheaderTemplateDesktop'
};

const parser = new XMLParser({
    ignoreAttributes: false,
    attributeNamePrefix: '@',
    parseTagValue: false,
    trimValues: true
});

const arr = (value) => (value === undefined || value === null ? [] : Array.isArray(value) ? value : [value]);
const text = (value) =>
    value === undefined || value === null ? undefined : typeof value === 'object' ? value['#text'] : String(value);

function urlHost(url) {
    try {
        return new URL(url).hostname;
    } catch {
        return '';
    }
}

/** Tab styles from the Salesforce CLI's own list ("Custom41: Cash", ...), or null when the CLI is absent. */
function cliTabStyles(root) {
    const file = path.join(root, TAB_STYLES_SOURCE);
    const fallback = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', TAB_STYLES_SOURCE);
    const found = [file, fallback].find((f) => fs.existsSync(f));
    if (!found) {
        return null;
    }
    return new Set(fs.readFileSync(found, 'utf8').match(/Custom\d+: [^'"`]+/g) || []);
}

function walk(dir, out = []) {
    if (!fs.existsSync(dir)) {
        return out;
    }
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const full = path.join(dir, entry.name);
        // sfdx/force-app/main/default/lwc is a symlink to the top-level lwc/ folder: follow it
        if (entry.isDirectory() || (entry.isSymbolicLink() && fs.statSync(full).isDirectory())) {
            if (entry.name !== 'node_modules' && entry.name !== '__tests__') {
                walk(full, out);
            }
        } else {
            out.push(full);
        }
    }
    return out;
}

export function validateProject(root) {
    const errors = [];
    const rel = (file) => path.relative(root, file);
    const error = (file, message) => errors.push(`${file ? rel(file) : '(project)'}: ${message}`);

    // ----- project layout ----------------------------------------------------------------------------
    const projectFile = path.join(root, 'sfdx-project.json');
    if (!fs.existsSync(projectFile)) {
        error(null, 'sfdx-project.json is missing');
        return { errors, stats: {} };
    }
    const project = JSON.parse(fs.readFileSync(projectFile, 'utf8'));
    if (!/^\d+\.0$/.test(project.sourceApiVersion || '')) {
        error(projectFile, 'sourceApiVersion must be set, e.g. "65.0"');
    }
    const packageDirs = arr(project.packageDirectories).map((d) => path.join(root, d.path));
    packageDirs
        .filter((d) => !fs.existsSync(d))
        .forEach((d) => error(projectFile, `package directory ${rel(d)} does not exist`));
    const files = packageDirs.flatMap((d) => walk(d));

    // ----- parse every *-meta.xml --------------------------------------------------------------------
    const docs = new Map();
    for (const file of files.filter((f) => f.endsWith('-meta.xml'))) {
        const source = fs.readFileSync(file, 'utf8');
        const valid = XMLValidator.validate(source);
        if (valid !== true) {
            error(file, `malformed XML: ${valid.err.msg} (line ${valid.err.line})`);
            continue;
        }
        const parsed = parser.parse(source);
        const rootName = Object.keys(parsed).find((k) => k !== '?xml');
        const suffix = Object.keys(ROOT_BY_SUFFIX).find((s) => file.endsWith(s));
        if (!suffix) {
            error(file, 'unknown metadata suffix');
            continue;
        }
        if (rootName !== ROOT_BY_SUFFIX[suffix]) {
            error(file, `root element <${rootName}> but ${suffix} files hold <${ROOT_BY_SUFFIX[suffix]}>`);
            continue;
        }
        const body = parsed[rootName] || {};
        if (body['@xmlns'] !== METADATA_NS) {
            error(file, `root element must declare xmlns="${METADATA_NS}"`);
        }
        docs.set(file, { suffix, body });
    }
    const bySuffix = (suffix) =>
        [...docs.entries()].filter(([, d]) => d.suffix === suffix).map(([file, d]) => ({ file, body: d.body }));

    // ----- the push-path bundle (not in the package): read with sample values, checked like the package
    const pushPath = [];
    const pushPathDir = path.join(root, PUSH_PATH_DIR);
    if (fs.existsSync(pushPathDir)) {
        for (const file of walk(pushPathDir).filter((f) => /\.(workflow|flow)$/.test(f))) {
            const source = fs
                .readFileSync(file, 'utf8')
                .replace(/\{\{(\w+)\}\}/g, (_, key) => PUSH_PATH_SAMPLE[key] ?? `{{${key}}}`);
            const valid = XMLValidator.validate(source);
            if (valid !== true) {
                error(file, `malformed XML: ${valid.err.msg} (line ${valid.err.line})`);
                continue;
            }
            const parsed = parser.parse(source);
            const kind = file.endsWith('.flow') ? 'Flow' : 'Workflow';
            pushPath.push({ file, kind, body: parsed[kind] || {} });
        }
    }

    // ----- user references and placeholder URLs ------------------------------------------------------
    for (const file of docs.keys()) {
        const source = fs.readFileSync(file, 'utf8');
        for (const element of USER_REFERENCE_ELEMENTS) {
            for (const [, value] of source.matchAll(new RegExp(`<${element}>([^<]*@[^<]*)</${element}>`, 'g'))) {
                error(
                    file,
                    `user reference <${element}>${value}</${element}>: usernames are resolved at deploy time and ` +
                        'differ in every org ("Cannot find a user that matches any of the following usernames")'
                );
            }
        }
        for (const [, url] of source.matchAll(/<(?:endpointUrl|url|callbackUrl|iconUrl|infoUrl)>([^<]+)</g)) {
            if (PLACEHOLDER_HOST.test(urlHost(url))) {
                error(file, `placeholder URL ${url}`);
            }
        }
    }

    // ----- objects and fields ------------------------------------------------------------------------
    const objects = new Map(); // name -> { custom, body, file, fields: Map }
    const ensureObject = (name) => {
        if (!objects.has(name)) {
            objects.set(name, { custom: name.endsWith('__c'), body: undefined, file: undefined, fields: new Map() });
        }
        return objects.get(name);
    };
    for (const { file, body } of bySuffix('.object-meta.xml')) {
        const name = path.basename(file, '.object-meta.xml');
        if (path.basename(path.dirname(file)) !== name) {
            error(file, 'object file must sit in objects/<ObjectName>/');
        }
        Object.assign(ensureObject(name), { body, file });
    }
    for (const { file, body } of bySuffix('.field-meta.xml')) {
        const objectName = path.basename(path.dirname(path.dirname(file)));
        const name = path.basename(file, '.field-meta.xml');
        ensureObject(objectName).fields.set(name, { file, body });
    }
    for (const name of Object.keys(STANDARD_FIELDS)) {
        ensureObject(name);
    }

    const fieldType = (objectName, fieldName) => text(objects.get(objectName)?.fields.get(fieldName)?.body.type);
    /** Does Object.Field exist (custom field in metadata, or a known standard field)? */
    const fieldExists = (objectName, fieldName) => {
        const object = objects.get(objectName);
        if (!object) {
            return false;
        }
        if (fieldName.endsWith('__c')) {
            return object.fields.has(fieldName);
        }
        if (object.custom) {
            return CUSTOM_OBJECT_STANDARD_FIELDS.includes(fieldName);
        }
        return (STANDARD_FIELDS[objectName] || []).includes(fieldName);
    };
    /** Object a relationship segment (Rel__r, Owner, Account) of objectName points to. */
    const relationshipTarget = (objectName, segment) => {
        if (segment.endsWith('__r')) {
            const field = objects.get(objectName)?.fields.get(segment.replace(/__r$/, '__c'));
            const type = text(field?.body.type);
            return type === 'Lookup' || type === 'MasterDetail' ? text(field.body.referenceTo) : undefined;
        }
        if (segment === 'Owner') {
            return 'User';
        }
        return STANDARD_REFERENCES[objectName]?.[segment];
    };
    /** Resolve a dotted path such as Referral__r.Advocate__r.Name from objectName; returns an error or null. */
    const resolvePath = (objectName, dotted) => {
        const segments = dotted.split('.');
        let current = objectName;
        for (let i = 0; i < segments.length - 1; i++) {
            const next = relationshipTarget(current, segments[i]);
            if (!next) {
                return `${current}.${segments[i]} is not a relationship`;
            }
            current = next;
        }
        const last = segments[segments.length - 1];
        return fieldExists(current, last) ? null : `${current}.${last} does not exist`;
    };
    /** Child relationships: "<relationshipName>__r" on parent -> { child, field }. */
    const childRelationships = new Map();

    for (const [objectName, object] of objects) {
        if (object.custom && !object.body) {
            error(
                null,
                `fields exist for ${objectName} but objects/${objectName}/${objectName}.object-meta.xml is missing`
            );
            continue;
        }
        if (object.body) {
            const o = object.body;
            for (const required of ['label', 'pluralLabel', 'nameField', 'sharingModel', 'deploymentStatus']) {
                if (o[required] === undefined) {
                    error(object.file, `<${required}> is required`);
                }
            }
            if (o.sharingModel && !SHARING_MODELS.has(text(o.sharingModel))) {
                error(object.file, `invalid sharingModel ${text(o.sharingModel)}`);
            }
            const nameType = text(o.nameField?.type);
            if (!['Text', 'AutoNumber'].includes(nameType)) {
                error(object.file, 'nameField type must be Text or AutoNumber');
            }
            if (nameType === 'AutoNumber' && !text(o.nameField.displayFormat)) {
                error(object.file, 'an AutoNumber nameField needs a displayFormat');
            }
            if (!text(o.description)) {
                error(object.file, 'every object needs a description');
            }
        }
        for (const [fieldName, { file, body: f }] of object.fields) {
            const type = text(f.type);
            const where = `${objectName}.${fieldName}`;
            if (text(f.fullName) !== fieldName) {
                error(file, `fullName ${text(f.fullName)} does not match the file name ${fieldName}`);
            }
            if (
                !fieldName.endsWith('__c') ||
                !/^[A-Za-z][A-Za-z0-9_]*[A-Za-z0-9]__c$/.test(fieldName) ||
                fieldName.includes('___')
            ) {
                error(file, `${fieldName} is not a valid custom field API name`);
            }
            if (!FIELD_TYPES.has(type)) {
                error(file, `invalid field type "${type}"`);
                continue;
            }
            const label = text(f.label);
            if (!label || label.length > 40) {
                error(file, 'label is required and at most 40 characters');
            }
            const help = text(f.inlineHelpText);
            if (!help) {
                error(file, `${where} has no help text (inlineHelpText); every field needs one`);
            } else if (help.length > 510) {
                error(file, 'inlineHelpText is longer than 510 characters');
            }
            if (!text(f.description)) {
                error(file, `${where} has no description`);
            }
            const isFormula = f.formula !== undefined;
            const num = (key) => (f[key] === undefined ? undefined : Number(text(f[key])));
            if (type === 'Text' || type === 'EncryptedText') {
                const length = num('length');
                if (isFormula ? length !== undefined : !(length >= 1 && length <= 255)) {
                    error(file, 'Text fields need a length between 1 and 255 (none for formulas)');
                }
            }
            if (type === 'LongTextArea' || type === 'Html') {
                if (!(num('length') >= 256 && num('length') <= 131072)) {
                    error(file, `${type} fields need a length between 256 and 131072`);
                }
                if (!(num('visibleLines') >= 1)) {
                    error(file, `${type} fields need visibleLines`);
                }
            }
            if (NUMERIC_TYPES.has(type) && !(type === 'Summary')) {
                const precision = num('precision');
                const scale = num('scale');
                if (!(precision >= 1 && precision <= 18) || !(scale >= 0 && scale <= precision)) {
                    error(file, `${type} fields need precision 1..18 and scale 0..precision`);
                }
            }
            if (type === 'Picklist' || type === 'MultiselectPicklist') {
                const values = arr(f.valueSet?.valueSetDefinition?.value);
                if (!f.valueSet || (values.length === 0 && !text(f.valueSet.valueSetName))) {
                    error(file, 'picklists need a valueSet with values or a valueSetName');
                }
                const names = values.map((v) => text(v.fullName));
                values.forEach((v) => {
                    if (!text(v.label)) {
                        error(file, `picklist value ${text(v.fullName)} has no label`);
                    }
                });
                if (new Set(names).size !== names.length) {
                    error(file, 'duplicate picklist values');
                }
                if (values.filter((v) => text(v.default) === 'true').length > 1) {
                    error(file, 'more than one default picklist value');
                }
                const expected = DOMAIN_PICKLISTS[where];
                if (expected && JSON.stringify(names) !== JSON.stringify(expected)) {
                    error(
                        file,
                        `${where} values must match the backend exactly: [${expected.join(', ')}], found [${names.join(', ')}]`
                    );
                }
                if (expected && text(f.valueSet?.restricted) !== 'true') {
                    error(file, `${where} mirrors backend states and must be a restricted picklist`);
                }
            }
            if (type === 'Lookup' || type === 'MasterDetail') {
                const target = text(f.referenceTo);
                const relName = text(f.relationshipName);
                if (!target || !relName) {
                    error(file, `${type} fields need referenceTo and relationshipName`);
                } else {
                    if (!objects.has(target)) {
                        error(file, `referenceTo ${target} is neither a package object nor a known standard object`);
                    }
                    const key = `${target}:${relName}__r`;
                    if (childRelationships.has(key)) {
                        error(
                            file,
                            `relationshipName ${relName} is already used on ${target} by ${childRelationships.get(key).child}.${childRelationships.get(key).field}`
                        );
                    }
                    childRelationships.set(key, { child: objectName, field: fieldName });
                }
                if (
                    type === 'Lookup' &&
                    f.deleteConstraint !== undefined &&
                    !DELETE_CONSTRAINTS.has(text(f.deleteConstraint))
                ) {
                    error(file, `invalid deleteConstraint ${text(f.deleteConstraint)}`);
                }
                if (
                    type === 'Lookup' &&
                    text(f.required) !== 'true' &&
                    text(f.deleteConstraint) !== 'SetNull' &&
                    text(f.deleteConstraint) !== 'Restrict'
                ) {
                    error(file, 'optional lookups need deleteConstraint SetNull or Restrict');
                }
                if (type === 'MasterDetail') {
                    if (f.relationshipOrder === undefined) {
                        error(file, 'MasterDetail fields need relationshipOrder');
                    }
                    if (object.body && text(object.body.sharingModel) !== 'ControlledByParent') {
                        error(
                            object.file,
                            `${objectName} has a master-detail field, so its sharingModel must be ControlledByParent`
                        );
                    }
                }
            }
            if (type === 'Summary') {
                const op = text(f.summaryOperation);
                if (!SUMMARY_OPERATIONS.has(op)) {
                    error(file, `invalid summaryOperation ${op}`);
                }
                const [childObject, childFk] = (text(f.summaryForeignKey) || '').split('.');
                if (
                    !childFk ||
                    fieldType(childObject, childFk) !== 'MasterDetail' ||
                    text(objects.get(childObject).fields.get(childFk).body.referenceTo) !== objectName
                ) {
                    error(
                        file,
                        `summaryForeignKey ${text(f.summaryForeignKey)} must be a master-detail field pointing to ${objectName}`
                    );
                }
                if (op !== 'count') {
                    const [sObject, sField] = (text(f.summarizedField) || '').split('.');
                    if (
                        sObject !== childObject ||
                        (!NUMERIC_TYPES.has(fieldType(sObject, sField)) &&
                            !['Date', 'DateTime'].includes(fieldType(sObject, sField)))
                    ) {
                        error(
                            file,
                            `summarizedField ${text(f.summarizedField)} must be a numeric or date field of ${childObject}`
                        );
                    }
                }
                for (const item of arr(f.summaryFilterItems)) {
                    const [fo, ff] = (text(item.field) || '').split('.');
                    if (fo !== childObject || !fieldExists(fo, ff)) {
                        error(file, `summary filter field ${text(item.field)} does not exist on ${childObject}`);
                    }
                }
            }
            if (text(f.externalId) === 'true' && !EXTERNAL_ID_TYPES.has(type)) {
                error(file, `${type} fields cannot be external ids`);
            }
            if (text(f.unique) === 'true' && !UNIQUE_TYPES.has(type)) {
                error(file, `${type} fields cannot be unique`);
            }
            if (
                isFormula &&
                !['Checkbox', 'Currency', 'Date', 'DateTime', 'Number', 'Percent', 'Text', 'Time'].includes(type)
            ) {
                error(file, `${type} cannot be a formula type`);
            }
            if (isFormula) {
                for (const ref of (text(f.formula) || '').match(/\b[A-Za-z0-9_]+__c\b/g) || []) {
                    if (!fieldExists(objectName, ref)) {
                        error(file, `formula references ${objectName}.${ref}, which does not exist`);
                    }
                }
            }
        }
    }
    for (const objectName of BACKEND_ID_OBJECTS) {
        const f = objects.get(objectName)?.fields.get('Backend_Id__c')?.body;
        if (!f || text(f.externalId) !== 'true' || text(f.unique) !== 'true') {
            error(null, `${objectName}.Backend_Id__c must exist as a unique External Id`);
        }
    }
    const isReadOnlyField = (objectName, fieldName) => {
        const f = objects.get(objectName)?.fields.get(fieldName)?.body;
        return !!f && (f.formula !== undefined || ['Summary', 'AutoNumber'].includes(text(f.type)));
    };
    const isMasterDetailOrRequired = (objectName, fieldName) => {
        const f = objects.get(objectName)?.fields.get(fieldName)?.body;
        return !!f && (text(f.type) === 'MasterDetail' || text(f.required) === 'true');
    };
    const checkQualified = (file, qualified, context) => {
        const dot = qualified.indexOf('.');
        if (dot < 0) {
            error(file, `${context}: ${qualified} is not Object.Field`);
            return false;
        }
        const problem = resolvePath(qualified.slice(0, dot), qualified.slice(dot + 1));
        if (problem) {
            error(file, `${context}: ${qualified} — ${problem}`);
            return false;
        }
        return true;
    };

    // ----- list views and layouts ------------------------------------------------------------------
    for (const { file, body } of bySuffix('.listView-meta.xml')) {
        const objectName = path.basename(path.dirname(path.dirname(file)));
        for (const column of arr(body.columns).map(text)) {
            if (column !== 'NAME' && !fieldExists(objectName, column)) {
                error(file, `list view column ${objectName}.${column} does not exist`);
            }
        }
    }
    const onLayouts = new Set();
    for (const { file, body } of bySuffix('.layout-meta.xml')) {
        const objectName = path.basename(file).split('-')[0];
        if (!objects.has(objectName)) {
            error(file, `layout for unknown object ${objectName}`);
            continue;
        }
        for (const section of arr(body.layoutSections)) {
            for (const column of arr(section.layoutColumns)) {
                for (const item of arr(column.layoutItems)) {
                    const field = text(item.field);
                    onLayouts.add(`${objectName}.${field}`);
                    if (field && !fieldExists(objectName, field)) {
                        error(file, `layout field ${objectName}.${field} does not exist`);
                    }
                    if (field && isReadOnlyField(objectName, field) && text(item.behavior) !== 'Readonly') {
                        error(file, `${objectName}.${field} is calculated: its layout behavior must be Readonly`);
                    }
                }
            }
        }
        for (const list of arr(body.relatedLists)) {
            const [child, fk] = (text(list.relatedList) || '').split('.');
            if (!fk || text(objects.get(child)?.fields.get(fk)?.body.referenceTo) !== objectName) {
                error(file, `related list ${text(list.relatedList)} is not a relationship to ${objectName}`);
                continue;
            }
            for (const column of arr(list.fields).map(text)) {
                if (column !== 'NAME' && !fieldExists(child, column)) {
                    error(file, `related list column ${child}.${column} does not exist`);
                }
            }
        }
    }

    // Fields the package adds to standard objects must be on a packaged layout, or nobody sees them.
    for (const [objectName, object] of objects) {
        if (object.custom) {
            continue;
        }
        for (const [fieldName, { file }] of object.fields) {
            if (!onLayouts.has(`${objectName}.${fieldName}`)) {
                error(file, `${objectName}.${fieldName} is on no page layout of the package`);
            }
        }
    }

    // ----- tabs and permission sets ------------------------------------------------------------------
    const tabs = new Set(bySuffix('.tab-meta.xml').map(({ file }) => path.basename(file, '.tab-meta.xml')));
    for (const tab of tabs) {
        if (!objects.get(tab)?.body) {
            error(null, `tab ${tab} has no custom object`);
        }
    }
    const tabStyles = cliTabStyles(root);
    for (const { file, body } of bySuffix('.tab-meta.xml')) {
        const motif = text(body.motif);
        if (tabStyles && motif && !tabStyles.has(motif)) {
            error(file, `tab style "${motif}" is not one of the styles Salesforce knows (e.g. "Custom41: Cash")`);
        }
    }
    const apps = new Map(
        bySuffix('.app-meta.xml').map(({ file, body }) => [path.basename(file, '.app-meta.xml'), { file, body }])
    );
    for (const tab of tabs) {
        if (![...apps.values()].some(({ body }) => arr(body.tabs).map(text).includes(tab))) {
            error(null, `tab ${tab} is in no Lightning app of the package`);
        }
    }
    for (const [name, { file, body }] of apps) {
        for (const tab of arr(body.tabs).map(text)) {
            if (!tab.startsWith('standard-') && !tabs.has(tab)) {
                error(file, `app ${name} lists tab ${tab}, which the package does not define`);
            }
        }
    }
    const permsets = new Map();
    for (const { file, body } of bySuffix('.permissionset-meta.xml')) {
        const name = path.basename(file, '.permissionset-meta.xml');
        permsets.set(name, body);
        if (!text(body.label) || !text(body.description)) {
            error(file, 'permission sets need a label and a description');
        }
        const seen = new Set();
        for (const fp of arr(body.fieldPermissions)) {
            const field = text(fp.field);
            if (seen.has(field)) {
                error(file, `duplicate fieldPermissions for ${field}`);
            }
            seen.add(field);
            if (!checkQualified(file, field, 'fieldPermissions')) {
                continue;
            }
            const [objectName, fieldName] = field.split('.');
            if (isMasterDetailOrRequired(objectName, fieldName)) {
                error(file, `${field} is master-detail or required: it cannot be listed in fieldPermissions`);
            }
            if (text(fp.editable) === 'true' && isReadOnlyField(objectName, fieldName)) {
                error(file, `${field} is calculated and cannot be editable`);
            }
            if (text(fp.editable) === 'true' && text(fp.readable) !== 'true') {
                error(file, `${field} is editable but not readable`);
            }
        }
        for (const op of arr(body.objectPermissions)) {
            const objectName = text(op.object);
            if (!objects.has(objectName)) {
                error(file, `objectPermissions for unknown object ${objectName}`);
            }
            const flag = (k) => text(op[k]) === 'true';
            if (
                (flag('allowCreate') || flag('allowEdit') || flag('allowDelete') || flag('viewAllRecords')) &&
                !flag('allowRead')
            ) {
                error(file, `${objectName}: every object permission needs allowRead`);
            }
            if (flag('allowDelete') && !flag('allowEdit')) {
                error(file, `${objectName}: allowDelete needs allowEdit`);
            }
            if (flag('modifyAllRecords') && !(flag('viewAllRecords') && flag('allowDelete'))) {
                error(file, `${objectName}: modifyAllRecords needs viewAllRecords and allowDelete`);
            }
        }
        for (const ts of arr(body.tabSettings)) {
            if (!tabs.has(text(ts.tab))) {
                error(file, `tabSettings for unknown tab ${text(ts.tab)}`);
            }
        }
    }

    for (const name of COVERING_PERMSETS) {
        const body = permsets.get(name);
        if (!body) {
            error(null, `permission set ${name} is missing`);
            continue;
        }
        const file = path.join(root, 'sfdx/force-app/main/default/permissionsets', `${name}.permissionset-meta.xml`);
        const granted = new Set(arr(body.fieldPermissions).map((fp) => text(fp.field)));
        for (const [objectName, object] of objects) {
            for (const fieldName of object.fields.keys()) {
                if (!isMasterDetailOrRequired(objectName, fieldName) && !granted.has(`${objectName}.${fieldName}`)) {
                    error(file, `${name} grants no access to ${objectName}.${fieldName}`);
                }
            }
            if (
                object.custom &&
                object.body &&
                !arr(body.objectPermissions).some((op) => text(op.object) === objectName)
            ) {
                error(file, `${name} grants no access to object ${objectName}`);
            }
        }
        const tabsGranted = new Set(arr(body.tabSettings).map((ts) => text(ts.tab)));
        [...tabs].filter((t) => !tabsGranted.has(t)).forEach((t) => error(file, `${name} has no tab setting for ${t}`));
        const appsGranted = new Set(
            arr(body.applicationVisibilities)
                .filter((a) => text(a.visible) === 'true')
                .map((a) => text(a.application))
        );
        [...apps.keys()]
            .filter((a) => !appsGranted.has(a))
            .forEach((a) => error(file, `${name} does not show app ${a}`));
    }

    // ----- backend write-back manifest -----------------------------------------------------------------
    const manifestFile = path.join(root, WRITE_BACK_MANIFEST);
    let manifestFields = 0;
    if (!fs.existsSync(manifestFile)) {
        error(null, `${WRITE_BACK_MANIFEST} is missing`);
    } else {
        const manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8'));
        const integration = permsets.get(INTEGRATION_PERMSET);
        const editable = new Set(
            arr(integration?.fieldPermissions)
                .filter((fp) => text(fp.editable) === 'true')
                .map((fp) => text(fp.field))
        );
        const objectPerms = new Map(arr(integration?.objectPermissions).map((op) => [text(op.object), op]));
        for (const [objectName, fields] of Object.entries(manifest)) {
            if (!objects.has(objectName)) {
                error(manifestFile, `object ${objectName} does not exist in the metadata`);
                continue;
            }
            const op = objectPerms.get(objectName);
            if (!op || text(op.allowEdit) !== 'true') {
                error(
                    manifestFile,
                    `${INTEGRATION_PERMSET} must grant edit on ${objectName}, which the backend writes`
                );
            }
            for (const fieldName of fields) {
                manifestFields++;
                if (!fieldExists(objectName, fieldName)) {
                    error(
                        manifestFile,
                        `the backend writes ${objectName}.${fieldName}, which does not exist in the metadata`
                    );
                } else if (isReadOnlyField(objectName, fieldName)) {
                    error(manifestFile, `the backend writes ${objectName}.${fieldName}, which is calculated`);
                } else if (
                    fieldName.endsWith('__c') &&
                    !isMasterDetailOrRequired(objectName, fieldName) &&
                    !editable.has(`${objectName}.${fieldName}`)
                ) {
                    error(
                        manifestFile,
                        `${INTEGRATION_PERMSET} does not grant edit on ${objectName}.${fieldName}, which the backend writes`
                    );
                }
            }
        }
        for (const field of editable) {
            const [objectName, fieldName] = field.split('.');
            if (!(manifest[objectName] || []).includes(fieldName)) {
                error(
                    manifestFile,
                    `${INTEGRATION_PERMSET} grants edit on ${field}, which the backend never writes (least privilege)`
                );
            }
        }
    }

    // ----- report types, reports, dashboards ---------------------------------------------------------
    const reportTypes = new Map();
    for (const { file, body } of bySuffix('.reportType-meta.xml')) {
        const name = path.basename(file, '.reportType-meta.xml');
        const base = text(body.baseObject);
        if (!objects.has(base)) {
            error(file, `baseObject ${base} does not exist`);
            continue;
        }
        const tables = new Map([[base, base]]);
        let parent = base;
        let prefix = base;
        for (let join = body.join; join; join = join.join) {
            const relationship = text(join.relationship);
            const child = childRelationships.get(`${parent}:${relationship}`);
            if (!child) {
                error(file, `join ${relationship} is not a child relationship of ${parent}`);
                break;
            }
            prefix = `${prefix}.${relationship}`;
            tables.set(prefix, child.child);
            parent = child.child;
        }
        const columns = new Set();
        for (const section of arr(body.sections)) {
            for (const column of arr(section.columns)) {
                const table = text(column.table);
                const field = text(column.field);
                if (!tables.has(table)) {
                    error(file, `column table ${table} is not part of this report type`);
                    continue;
                }
                const problem = resolvePath(tables.get(table), field);
                if (problem && !relationshipTarget(tables.get(table), field)) {
                    error(file, `column ${table}.${field}: ${problem}`);
                }
                columns.add(`${table}$${field}`);
            }
        }
        reportTypes.set(`${name}__c`, { base, columns, tables });
    }
    const reports = new Set();
    const reportBodies = new Map();
    /** Objects whose amounts carry their own currency in a text field (Referral_Reward__c.Currency_Code__c). */
    const currencyCodeOf = (objectName) =>
        [...(objects.get(objectName)?.fields.keys() || [])].find((f) => /^Currency(_Code)?__c$/.test(f));
    for (const [objectName, object] of objects) {
        const code = currencyCodeOf(objectName);
        for (const [fieldName, { file, body: f }] of object.fields) {
            if (code && text(f.type) === 'Currency') {
                error(
                    file,
                    `${objectName}.${fieldName} is a Currency field but the amount's currency is ${code}: ` +
                        'Salesforce would show and convert it in the record or org currency'
                );
            }
            if (text(f.type) === 'Summary' && text(f.summaryOperation) === 'sum') {
                const [child] = (text(f.summarizedField) || '').split('.');
                if (currencyCodeOf(child)) {
                    error(file, `roll-up ${objectName}.${fieldName} sums ${text(f.summarizedField)} across currencies`);
                }
            }
        }
    }
    for (const { file, body } of bySuffix('.report-meta.xml')) {
        const reportName = `${path.basename(path.dirname(file))}/${path.basename(file, '.report-meta.xml')}`;
        reports.add(reportName);
        reportBodies.set(reportName, { file, body });
        const type = reportTypes.get(text(body.reportType));
        if (!type) {
            error(file, `reportType ${text(body.reportType)} is not a report type of this package`);
            continue;
        }
        const used = [
            ...arr(body.columns).map((c) => text(c.field)),
            ...arr(body.groupingsDown).map((g) => text(g.field)),
            ...arr(body.groupingsAcross).map((g) => text(g.field)),
            ...arr(body.filter?.criteriaItems).map((c) => text(c.column)),
            text(body.timeFrameFilter?.dateColumn)
        ].filter(Boolean);
        for (const column of used) {
            if (!type.columns.has(column)) {
                error(file, `report column ${column} is not a column of report type ${text(body.reportType)}`);
            }
        }
        for (const aggregate of arr(body.aggregates)) {
            for (const ref of (text(aggregate.calculatedFormula) || '').match(/[A-Za-z0-9_]+\.[A-Za-z0-9_]+(?=:)/g) ||
                []) {
                checkQualified(file, ref, 'custom summary formula');
            }
        }
        if (!['Tabular', 'Summary', 'Matrix', 'MultiBlock'].includes(text(body.format))) {
            error(file, `invalid report format ${text(body.format)}`);
        }
        // A sum of amounts that carry their own currency is only meaningful inside one currency.
        const groupings = arr(body.groupingsDown).map((g) => text(g.field));
        for (const column of arr(body.columns)) {
            if (!arr(column.aggregateTypes).map(text).includes('Sum')) {
                continue;
            }
            const [table, fieldName] = text(column.field).split('$');
            const objectName = type.tables.get(table);
            const code = objectName && currencyCodeOf(objectName);
            if (code && fieldName !== code) {
                const codeColumn = `${table}$${code}`;
                if (groupings[0] !== codeColumn || text(body.showGrandTotal) === 'true') {
                    error(
                        file,
                        `sums ${text(column.field)} across currencies: group by ${codeColumn} first and show no grand total`
                    );
                }
            }
            if (objectName && fieldType(objectName, fieldName) === 'Checkbox') {
                error(file, `a Checkbox column (${text(column.field)}) cannot be summed`);
            }
        }
    }
    const groups = new Set(bySuffix('.group-meta.xml').map(({ file }) => path.basename(file, '.group-meta.xml')));
    const groupLabels = new Map(
        bySuffix('.group-meta.xml').map(({ file, body }) => [path.basename(file, '.group-meta.xml'), text(body.name)])
    );
    for (const { file, body } of [...bySuffix('.reportFolder-meta.xml'), ...bySuffix('.dashboardFolder-meta.xml')]) {
        const shares = arr(body.folderShares);
        if (!shares.length) {
            error(file, 'the folder is shared with nobody: only its creator and admins would see its contents');
        }
        for (const share of shares) {
            const target = text(share.sharedTo);
            if (text(share.sharedToType) === 'Group') {
                if (!groups.has(target)) {
                    error(file, `folder shared with group ${target}, which the package does not define`);
                } else if (
                    !COVERING_PERMSETS.some((ps) =>
                        (text(permsets.get(ps)?.description) || '').includes(groupLabels.get(target))
                    )
                ) {
                    error(
                        file,
                        `no permission set description tells admins to add users to ${groupLabels.get(target)}`
                    );
                }
            } else if (['User', 'Role', 'RoleAndSubordinates'].includes(text(share.sharedToType))) {
                error(file, `folder shared with the org-specific ${text(share.sharedToType)} ${target}`);
            }
        }
    }
    for (const { file, body } of bySuffix('.dashboard-meta.xml')) {
        for (const component of arr(body.dashboardGridLayout?.dashboardGridComponents)) {
            const report = text(component.dashboardComponent?.report);
            if (!reports.has(report)) {
                error(file, `dashboard component uses report ${report}, which is not in this package`);
                continue;
            }
            if (text(component.dashboardComponent?.componentType) === 'Table') {
                const sort = text(component.dashboardComponent?.sortBy) || '';
                const first = arr(reportBodies.get(report).body.groupingsDown)[0];
                if (!sort.startsWith('RowValue') || text(first?.sortType) !== 'Aggregate') {
                    error(
                        file,
                        `table of ${report} is not ranked: sort the component by value and the report's grouping by an aggregate`
                    );
                }
            }
        }
    }

    // ----- outbound messages and flows -----------------------------------------------------------------
    const outboundMessages = new Set();
    const packagedWorkflows = bySuffix('.workflow-meta.xml').map((w) => ({ ...w, packaged: true }));
    const bundleWorkflows = pushPath.filter((p) => p.kind === 'Workflow').map((w) => ({ ...w, packaged: false }));
    for (const { file, body, packaged } of [...packagedWorkflows, ...bundleWorkflows]) {
        const objectName = path.basename(file).replace(/\.workflow(-meta\.xml)?$/, '');
        if (packaged && arr(body.outboundMessages).length) {
            error(
                file,
                'outbound messages do not belong in the package: they need an org username and a per-connection ' +
                    'endpoint, so the backend deploys them (push path)'
            );
        }
        for (const message of arr(body.outboundMessages)) {
            const name = text(message.fullName);
            outboundMessages.add(`${objectName}.${name}`);
            for (const required of ['endpointUrl', 'integrationUser', 'name', 'apiVersion']) {
                if (!text(message[required])) {
                    error(file, `outbound message ${name} needs <${required}>`);
                }
            }
            if (!/^https:\/\//.test(text(message.endpointUrl) || '')) {
                error(file, `outbound message ${name}: endpointUrl must be https`);
            }
            if (packaged && PLACEHOLDER_HOST.test(urlHost(text(message.endpointUrl)))) {
                error(file, `outbound message ${name}: placeholder endpoint ${text(message.endpointUrl)}`);
            }
            const fields = arr(message.fields).map(text);
            if (!fields.includes('Id')) {
                error(file, `outbound message ${name} must send Id`);
            }
            fields
                .filter((f) => !fieldExists(objectName, f))
                .forEach((f) => error(file, `outbound message ${name}: ${objectName}.${f} does not exist`));
        }
    }
    const apexTests = bySuffix('.cls-meta.xml').filter(({ file }) =>
        /@IsTest/i.test(fs.readFileSync(file.replace(/-meta\.xml$/, ''), 'utf8'))
    );
    const packagedFlows = bySuffix('.flow-meta.xml').map((f) => ({ ...f, packaged: true }));
    const bundleFlows = pushPath.filter((p) => p.kind === 'Flow').map((f) => ({ ...f, packaged: false }));
    for (const { file, body, packaged } of [...packagedFlows, ...bundleFlows]) {
        const start = body.start || {};
        if (
            packaged &&
            text(body.status) === 'Active' &&
            text(body.processType) === 'AutoLaunchedFlow' &&
            !apexTests.length
        ) {
            error(
                file,
                'an active autolaunched flow with no Apex test in the package: production deploys it inactive, ' +
                    'or rolls back for flow test coverage when "Deploy processes and flows as active" is on'
            );
        }
        const objectName = text(start.object);
        if (objectName) {
            if (!objects.has(objectName)) {
                error(file, `flow starts on unknown object ${objectName}`);
            }
            arr(start.filters)
                .map((f) => text(f.field))
                .filter((f) => !fieldExists(objectName, f))
                .forEach((f) => error(file, `flow entry filter field ${objectName}.${f} does not exist`));
        }
        for (const action of arr(body.actionCalls)) {
            if (text(action.actionType) === 'outboundMessage' && !outboundMessages.has(text(action.actionName))) {
                error(file, `flow action sends outbound message ${text(action.actionName)}, which no workflow defines`);
            }
        }
        if (!['Active', 'Draft', 'Obsolete', 'InvalidDraft'].includes(text(body.status))) {
            error(file, `invalid flow status ${text(body.status)}`);
        }
    }

    // ----- Lightning web components ---------------------------------------------------------------------
    const labels = new Set(
        bySuffix('.labels-meta.xml').flatMap(({ body }) => arr(body.labels).map((label) => text(label.fullName)))
    );
    const usedLabels = new Set();
    const bundles = new Map();
    for (const { file, body } of bySuffix('.js-meta.xml')) {
        // Text a person reads must come from custom labels: no words outside {expressions} in templates.
        for (const htmlFile of fs.readdirSync(path.dirname(file)).filter((f) => f.endsWith('.html'))) {
            const htmlPath = path.join(path.dirname(file), htmlFile);
            const html = fs.readFileSync(htmlPath, 'utf8').replace(/<!--[\s\S]*?-->/g, '');
            for (const [, textNode] of html.matchAll(/>([^<]+)</g)) {
                const words = textNode.replace(/\{[^}]*\}/g, '').trim();
                if (/\p{L}{2,}/u.test(words)) {
                    error(htmlPath, `hard-coded text "${words}": use a custom label`);
                }
            }
            for (const [, attribute, value] of html.matchAll(
                /\s(alternative-text|title|label|placeholder)="([^"{]+)"/g
            )) {
                if (/\p{L}{2,}/u.test(value)) {
                    error(htmlPath, `hard-coded ${attribute}="${value}": use a custom label`);
                }
            }
        }
        const bundle = path.basename(path.dirname(file));
        if (path.basename(file, '.js-meta.xml') !== bundle) {
            error(file, 'the .js-meta.xml file must be named after its bundle folder');
        }
        if (!/^[a-z][A-Za-z0-9]*$/.test(bundle)) {
            error(file, `bundle name ${bundle} must be camelCase, starting with a lower-case letter`);
        }
        if (!fs.existsSync(path.join(path.dirname(file), `${bundle}.js`))) {
            error(file, `bundle ${bundle} has no ${bundle}.js`);
        }
        if (!/^\d+\.0$/.test(text(body.apiVersion) || '')) {
            error(file, 'apiVersion is required');
        }
        const targets = arr(body.targets?.target).map(text);
        targets.filter((t) => !LWC_TARGETS.has(t)).forEach((t) => error(file, `invalid LWC target ${t}`));
        const exposed = text(body.isExposed) === 'true';
        if (targets.length && !exposed) {
            error(file, 'a bundle with targets must be isExposed=true');
        }
        const objectsByTarget = new Map();
        for (const config of arr(body.targetConfigs?.targetConfig)) {
            const configTargets = (config['@targets'] || '').split(',').map((t) => t.trim());
            configTargets
                .filter((t) => !targets.includes(t))
                .forEach((t) => error(file, `targetConfig for ${t}, which is not among the bundle's targets`));
            const configObjects = arr(config.objects?.object).map(text);
            configObjects
                .filter((o) => !objects.has(o))
                .forEach((o) => error(file, `targetConfig object ${o} is unknown`));
            configTargets.forEach((t) => objectsByTarget.set(t, configObjects));
        }
        bundles.set(bundle, { exposed, targets, objectsByTarget });

        // field references in the component's JavaScript
        for (const jsFile of fs.readdirSync(path.dirname(file)).filter((f) => f.endsWith('.js'))) {
            const jsPath = path.join(path.dirname(file), jsFile);
            const source = fs.readFileSync(jsPath, 'utf8');
            for (const [, ref] of source.matchAll(/['"]@salesforce\/schema\/([^'"]+)['"]/g)) {
                const [objectName, ...rest] = ref.split('.');
                if (!objects.has(objectName)) {
                    error(jsPath, `schema import ${ref}: object ${objectName} is unknown`);
                } else if (rest.length) {
                    const problem = resolvePath(objectName, rest.join('.'));
                    if (problem) {
                        error(jsPath, `schema import ${ref}: ${problem}`);
                    }
                }
            }
            // GraphQL documents cannot use schema imports: every custom name they use must exist
            for (const [, document] of source.matchAll(/gql`([\s\S]*?)`/g)) {
                for (const [name] of document.matchAll(/\b[A-Za-z][A-Za-z0-9_]*__[cr]\b/g)) {
                    const known = name.endsWith('__r')
                        ? [...objects.keys()].some((o) => relationshipTarget(o, name))
                        : objects.get(name)?.body || [...objects.values()].some((o) => o.fields.has(name));
                    if (!known) {
                        error(jsPath, `GraphQL query uses ${name}, which no package object or field defines`);
                    }
                }
            }
            for (const [, name] of source.matchAll(/['"]@salesforce\/label\/c\.([^'"]+)['"]/g)) {
                usedLabels.add(name);
                if (!labels.has(name)) {
                    error(jsPath, `custom label ${name} is not defined in the package`);
                }
            }
            if (/['"`]\/lightning\/r\//.test(source)) {
                error(jsPath, 'record URLs are built as strings: use NavigationMixin (GenerateUrl / Navigate)');
            }
            for (const [, relatedList] of source.matchAll(
                /relatedListId\s*=\s*['"]([^'"]+)['"]|REWARDS_RELATED_LIST\s*=\s*['"]([^'"]+)['"]/g
            )) {
                if (relatedList && ![...childRelationships.keys()].some((k) => k.endsWith(`:${relatedList}`))) {
                    error(jsPath, `related list ${relatedList} is not a child relationship in the metadata`);
                }
            }
        }
    }

    [...labels]
        .filter((name) => !usedLabels.has(name))
        .forEach((name) => error(null, `custom label ${name} is used by no component`));

    // ----- flexipages ------------------------------------------------------------------------------------
    for (const { file, body } of bySuffix('.flexipage-meta.xml')) {
        const sobject = text(body.sobjectType);
        if (text(body.type) === 'RecordPage' && !objects.has(sobject)) {
            error(file, `record page for unknown object ${sobject}`);
        }
        const wanted = SUBHEADER_PARENTS[text(body.parentFlexiPage)];
        if (wanted && text(body.template?.name) !== wanted) {
            error(
                file,
                `pages built on ${text(body.parentFlexiPage)} use ${wanted} (the Sales Path lives in its subheader)`
            );
        }
        for (const region of arr(body.flexiPageRegions)) {
            const instances = [
                ...arr(region.itemInstances).map((i) => i.componentInstance),
                ...arr(region.componentInstances)
            ].filter(Boolean);
            for (const instance of instances) {
                const name = text(instance.componentName);
                if (!name || name.includes(':')) {
                    continue; // standard components (force:, flexipage:, runtime_...)
                }
                const bundle = bundles.get(name);
                if (!bundle) {
                    error(file, `component ${name} is not an LWC bundle of this project`);
                } else if (!bundle.exposed || !bundle.targets.includes('lightning__RecordPage')) {
                    error(file, `component ${name} is not exposed for lightning__RecordPage`);
                } else {
                    const allowed = bundle.objectsByTarget.get('lightning__RecordPage');
                    if (allowed && allowed.length && !allowed.includes(sobject)) {
                        error(file, `component ${name} is not configured for ${sobject} record pages`);
                    }
                }
            }
        }
    }

    const stats = {
        metadataFiles: docs.size,
        customObjects: [...objects.values()].filter((o) => o.body).length,
        fields: [...objects.values()].reduce((n, o) => n + o.fields.size, 0),
        permissionSets: permsets.size,
        reportTypes: reportTypes.size,
        reports: reports.size,
        components: bundles.size,
        writeBackFields: manifestFields
    };
    return { errors, stats };
}

function main() {
    const root = path.resolve(process.argv[2] || path.join(path.dirname(fileURLToPath(import.meta.url)), '..'));
    const { errors, stats } = validateProject(root);
    if (errors.length) {
        console.error(`Metadata validation failed with ${errors.length} error(s):`);
        errors.forEach((e) => console.error(`  - ${e}`));
        process.exit(1);
    }
    console.log(
        `Metadata valid: ${stats.metadataFiles} metadata files, ${stats.customObjects} custom objects, ${stats.fields} fields, ` +
            `${stats.permissionSets} permission sets, ${stats.reportTypes} report types, ${stats.reports} reports, ` +
            `${stats.components} components, ${stats.writeBackFields} write-back fields checked.`
    );
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
    main();
}
