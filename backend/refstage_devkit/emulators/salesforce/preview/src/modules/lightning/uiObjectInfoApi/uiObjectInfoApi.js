/* lightning/uiObjectInfoApi: object info and picklist values from the org's UI API. */
import { createAdapter, request } from 'preview/org';

export const getObjectInfo = createAdapter(['objectApiName'], async (config) => {
    const name = typeof config.objectApiName === 'string' ? config.objectApiName : config.objectApiName.objectApiName;
    const data = await request('GET', `ui-api/object-info/${encodeURIComponent(name)}`);
    return { data, error: undefined };
});

export const getPicklistValues = createAdapter(['recordTypeId', 'fieldApiName'], async (config) => {
    const field = config.fieldApiName;
    const [objectApiName, fieldApiName] =
        typeof field === 'string' ? field.split('.') : [field.objectApiName, field.fieldApiName];
    const data = await request(
        'GET',
        `ui-api/object-info/${encodeURIComponent(objectApiName)}/picklist-values/${encodeURIComponent(config.recordTypeId)}/${encodeURIComponent(fieldApiName)}`
    );
    return { data, error: undefined };
});
