/*
 * The page's connection to the emulated org: the REST base path, API version and the session's access token
 * the org put into the page (as a Lightning page has its session), and a fetch that turns UI API failures into
 * the FetchResponse-shaped errors Lightning Data Service hands to components.
 */
const config = JSON.parse(document.getElementById('preview-config').textContent);

export const API_VERSION = config.apiVersion;
export const USER_TIME_ZONE = config.userTimeZone;
export const ORG_CURRENCY = config.orgCurrency;

export async function request(method, path, { query, body } = {}) {
    const url = new URL(`/services/data/v${API_VERSION}/${path}`, window.location.origin);
    Object.entries(query || {}).forEach(([key, value]) => {
        if (value !== undefined && value !== null && !(Array.isArray(value) && value.length === 0)) {
            url.searchParams.set(key, Array.isArray(value) ? value.join(',') : String(value));
        }
    });
    const response = await fetch(url, {
        method,
        headers: {
            Authorization: `Bearer ${config.accessToken}`,
            Accept: 'application/json',
            ...(body ? { 'Content-Type': 'application/json' } : {})
        },
        body: body ? JSON.stringify(body) : undefined,
        credentials: 'omit'
    });
    let payload;
    try {
        payload = await response.json();
    } catch (e) {
        payload = undefined;
    }
    if (!response.ok) {
        // LDS's FetchResponse: the UI API's error list stays in body.
        const error = { ok: false, status: response.status, statusText: response.statusText, body: payload };
        window.dispatchEvent(new CustomEvent('preview:request', { detail: { method, url: url.href, status: response.status } }));
        throw error;
    }
    window.dispatchEvent(new CustomEvent('preview:request', { detail: { method, url: url.href, status: response.status } }));
    return payload;
}

/** A schema import ({objectApiName, fieldApiName}) or a string, as the qualified name LDS sends. */
export function qualifiedField(field) {
    if (typeof field === 'string') {
        return field;
    }
    return `${field.objectApiName}.${field.fieldApiName}`;
}

/**
 * A wire adapter class that calls `load(config)` whenever the config changes and every required key has a value
 * (LDS does not request while a reactive parameter is undefined).
 */
export function createAdapter(required, load) {
    return class {
        constructor(dataCallback) {
            this.dataCallback = dataCallback;
            this.connected = false;
            this.config = undefined;
            this.sequence = 0;
        }

        update(config) {
            this.config = config;
            if (this.connected) {
                this.fetch();
            }
        }

        connect() {
            this.connected = true;
            if (this.config) {
                this.fetch();
            }
        }

        disconnect() {
            this.connected = false;
        }

        fetch() {
            const config = this.config;
            if (required.some((key) => config[key] === undefined || config[key] === null || config[key] === '')) {
                return;
            }
            const sequence = ++this.sequence;
            load(config).then(
                (result) => sequence === this.sequence && this.dataCallback(result),
                (error) => sequence === this.sequence && this.dataCallback({ data: undefined, error })
            );
        }
    };
}
