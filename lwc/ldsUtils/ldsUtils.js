/**
 * Helpers shared by the Refstage components for Lightning Data Service results.
 */
import { NavigationMixin } from 'lightning/navigation';

/**
 * Turns the errors LDS, UI API and GraphQL wire adapters return into readable messages.
 * @param {Object|Object[]} errors a FetchResponse, a JS Error, a GraphQL error list, or an array of those
 * @returns {string[]} the distinct messages, never empty strings
 */
export function reduceErrors(errors) {
    const list = Array.isArray(errors) ? errors : [errors];
    const messages = list
        .filter((error) => !!error)
        .flatMap((error) => {
            // UI API read errors: { body: [{ message }] }
            if (Array.isArray(error.body)) {
                return error.body.map((entry) => entry.message);
            }
            // UI API DML, page-level and field-level errors
            if (error.body && typeof error.body === 'object') {
                const body = error.body;
                const found = [];
                if (body.output) {
                    (body.output.errors || []).forEach((e) => found.push(e.message));
                    Object.values(body.output.fieldErrors || {}).forEach((fieldErrors) =>
                        fieldErrors.forEach((e) => found.push(e.message))
                    );
                }
                if (found.length === 0 && typeof body.message === 'string') {
                    found.push(body.message);
                }
                return found;
            }
            // GraphQL errors and JS errors: { message }
            if (typeof error.message === 'string') {
                return [error.message];
            }
            if (typeof error.statusText === 'string') {
                return [error.statusText];
            }
            return [];
        })
        .filter((message) => typeof message === 'string' && message.length > 0);
    return [...new Set(messages)];
}

/**
 * Sums amounts by a key, keeping one total per currency so mixed currencies never add up.
 * @param {Array<{key: string, label: string, amount: number, currency: string}>} items
 * @param {string[]} order keys in the order the totals should be listed
 * @returns {Array<{key: string, label: string, count: number, totals: Array<{currency: string, amount: number}>}>}
 */
export function totalsByKey(items, order = []) {
    const groups = new Map();
    items.forEach((item) => {
        if (!groups.has(item.key)) {
            groups.set(item.key, { key: item.key, label: item.label, count: 0, byCurrency: new Map() });
        }
        const group = groups.get(item.key);
        group.count += 1;
        const currency = item.currency || '';
        group.byCurrency.set(currency, (group.byCurrency.get(currency) || 0) + (Number(item.amount) || 0));
    });
    const rank = (key) => {
        const index = order.indexOf(key);
        return index === -1 ? order.length : index;
    };
    return [...groups.values()]
        .sort((a, b) => rank(a.key) - rank(b.key) || a.label.localeCompare(b.label))
        .map((group) => ({
            key: group.key,
            label: group.label,
            count: group.count,
            totals: [...group.byCurrency.entries()].map(([currency, amount]) => ({
                key: `${group.key}-${currency}`,
                currency: currency || undefined,
                amount
            }))
        }));
}

/**
 * Page reference of a record's view page, for NavigationMixin (GenerateUrl for the link's href, Navigate on
 * click), so Salesforce decides the URL in every container (Lightning Experience, the mobile app, consoles).
 * @param {string} recordId
 * @returns {object|undefined}
 */
export function recordPage(recordId) {
    return recordId ? { type: 'standard__recordPage', attributes: { recordId, actionName: 'view' } } : undefined;
}

/**
 * Asks Salesforce for the URL of each record page once; links show it as their href. The component
 * (a NavigationMixin) keeps the asked ids in `pendingUrls` and the answers in `recordUrls`.
 * @param {Object} component
 * @param {string[]} recordIds
 */
export function generateRecordUrls(component, recordIds) {
    recordIds
        .filter((id) => id && !component.pendingUrls.has(id))
        .forEach((id) => {
            component.pendingUrls.add(id);
            component[NavigationMixin.GenerateUrl](recordPage(id)).then((url) => {
                component.recordUrls = { ...component.recordUrls, [id]: url };
            });
        });
}

/**
 * A plain click on a record link navigates inside Salesforce; modified clicks (new tab) keep the
 * generated href.
 * @param {Object} component a NavigationMixin
 * @param {Event} event the click on an element with data-record-id
 */
export function navigateOnPlainClick(component, event) {
    const recordId = event.currentTarget.dataset.recordId;
    if (!recordId || event.metaKey || event.ctrlKey || event.shiftKey || event.button > 0) {
        return;
    }
    event.preventDefault();
    component[NavigationMixin.Navigate](recordPage(recordId));
}

/**
 * A custom label with its {0}, {1}, ... placeholders filled in (labels keep word order translatable).
 * @param {string} label
 * @param {...*} values
 * @returns {string}
 */
export function formatLabel(label, ...values) {
    return String(label ?? '').replace(/\{(\d+)\}/g, (match, index) => {
        const value = values[Number(index)];
        return value === undefined ? match : String(value);
    });
}
