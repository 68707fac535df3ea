/*
 * lightning/uiRecordApi, answered by the org's UI API with the request LDS makes: the record id, its fields and
 * optional fields as Object.Field paths.
 */
import { createAdapter, qualifiedField, request } from 'preview/org';

export const getRecord = createAdapter(['recordId'], async (config) => {
    const data = await request('GET', `ui-api/records/${encodeURIComponent(config.recordId)}`, {
        query: {
            fields: (config.fields || []).map(qualifiedField),
            optionalFields: (config.optionalFields || []).map(qualifiedField),
            layoutTypes: config.layoutTypes,
            modes: config.modes
        }
    });
    return { data, error: undefined };
});

function fieldPath(field) {
    // '@salesforce/schema/Opportunity.Referral__r.Name' -> ['Referral__r', 'Name']; strings carry the object too.
    const name = typeof field === 'string' ? field.split('.').slice(1).join('.') : field.fieldApiName;
    return name.split('.');
}

function fieldNode(record, field) {
    let node = record;
    const path = fieldPath(field);
    for (let i = 0; i < path.length; i++) {
        if (!node || !node.fields) {
            return undefined;
        }
        const entry = node.fields[path[i]];
        if (entry === undefined) {
            return undefined;
        }
        if (i === path.length - 1) {
            return entry;
        }
        node = entry.value;
    }
    return undefined;
}

export function getFieldValue(record, field) {
    const node = fieldNode(record, field);
    return node === undefined ? undefined : node.value;
}

export function getFieldDisplayValue(record, field) {
    const node = fieldNode(record, field);
    return node === undefined ? undefined : node.displayValue;
}

export function getRecordNotifyChange() {
    // The preview refetches on page load; nothing is cached across pages.
}
