/*
 * lightning/graphql: the gql document goes to the org's GraphQL endpoint with its variables, as the wire
 * adapter sends it; the component receives { data, errors }.
 */
import { request } from 'preview/org';

export function gql(strings, ...values) {
    return strings.reduce((out, part, i) => out + part + (i < values.length ? values[i] : ''), '');
}

export class graphql {
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
        const { query, variables, operationName } = this.config;
        if (!query || variables === undefined) {
            return;
        }
        const sequence = ++this.sequence;
        const body = { query, variables };
        if (operationName) {
            body.operationName = operationName;
        }
        request('POST', 'graphql', { body }).then(
            (payload) => {
                if (sequence === this.sequence) {
                    const errors = payload.errors && payload.errors.length ? payload.errors : undefined;
                    this.dataCallback({ data: payload.data || undefined, errors });
                }
            },
            (error) => {
                if (sequence === this.sequence) {
                    const messages = Array.isArray(error.body) ? error.body : [{ message: error.statusText }];
                    this.dataCallback({ data: undefined, errors: messages });
                }
            }
        );
    }
}
