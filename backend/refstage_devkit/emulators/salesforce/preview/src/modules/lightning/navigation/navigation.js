/*
 * lightning/navigation: page references become the preview's record page URLs, the same /lightning/r/ paths
 * Lightning Experience uses.
 */
const Navigate = Symbol('Navigate');
const GenerateUrl = Symbol('GenerateUrl');

function urlFor(pageReference) {
    const { type, attributes = {}, state = {} } = pageReference || {};
    const action = attributes.actionName || 'view';
    let path;
    if (type === 'standard__recordPage') {
        path = attributes.objectApiName
            ? `/lightning/r/${attributes.objectApiName}/${attributes.recordId}/${action}`
            : `/lightning/r/${attributes.recordId}/${action}`;
    } else if (type === 'standard__objectPage') {
        path = `/lightning/o/${attributes.objectApiName}/${attributes.actionName || 'home'}`;
    } else if (type === 'standard__recordRelationshipPage') {
        path = `/lightning/r/${attributes.objectApiName ? attributes.objectApiName + '/' : ''}${attributes.recordId}/related/${attributes.relationshipApiName}/view`;
    } else if (type === 'standard__webPage') {
        return attributes.url;
    } else {
        throw new Error(`Page reference type ${type} is not supported in the record page preview`);
    }
    const query = new URLSearchParams(state).toString();
    return query ? `${path}?${query}` : path;
}

export function NavigationMixin(Base) {
    return class extends Base {
        [Navigate](pageReference, replace) {
            const url = urlFor(pageReference);
            if (replace) {
                window.location.replace(url);
            } else {
                window.location.assign(url);
            }
        }

        [GenerateUrl](pageReference) {
            return Promise.resolve(urlFor(pageReference));
        }
    };
}
NavigationMixin.Navigate = Navigate;
NavigationMixin.GenerateUrl = GenerateUrl;

export class CurrentPageReference {
    constructor(dataCallback) {
        this.dataCallback = dataCallback;
    }

    connect() {
        const config = JSON.parse(document.getElementById('preview-config').textContent);
        this.dataCallback({
            type: 'standard__recordPage',
            attributes: { recordId: config.recordId, objectApiName: config.objectApiName, actionName: 'view' },
            state: {}
        });
    }

    disconnect() {}

    update() {}
}
