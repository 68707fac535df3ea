/*
 * lightning/uiRelatedListApi: getRelatedListRecords posts the request body LDS sends (fields, optional fields,
 * page size, sort, filter) to the org's related-list-records resource.
 */
import { createAdapter, qualifiedField, request } from 'preview/org';

export const getRelatedListRecords = createAdapter(['parentRecordId', 'relatedListId'], async (config) => {
    const body = {};
    if (config.fields) {
        body.fields = config.fields.map(qualifiedField);
    }
    if (config.optionalFields) {
        body.optionalFields = config.optionalFields.map(qualifiedField);
    }
    ['pageSize', 'pageToken', 'sortBy', 'where'].forEach((key) => {
        if (config[key] !== undefined) {
            body[key] = config[key];
        }
    });
    const data = await request(
        'POST',
        `ui-api/related-list-records/${encodeURIComponent(config.parentRecordId)}/${encodeURIComponent(config.relatedListId)}`,
        { body }
    );
    return { data, error: undefined };
});
