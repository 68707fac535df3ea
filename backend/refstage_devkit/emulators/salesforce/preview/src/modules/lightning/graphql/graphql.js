/*
 * lightning/graphql: the gql document goes to the org's GraphQL endpoint with its variables, as the wire
 * adapter sends it; the component receives { data, errors }.
 */
import { createAdapter, request } from 'preview/org';

export function gql(strings, ...values) {
    return strings.reduce((out, part, i) => out + part + (i < values.length ? values[i] : ''), '');
}

// The same wire life cycle as the other adapters (preview/org.createAdapter): no request until the query and
// its variables are set, and only the latest answer is delivered.
export const graphql = createAdapter(['query', 'variables'], ({ query, variables, operationName }) => {
    const body = { query, variables };
    if (operationName) {
        body.operationName = operationName;
    }
    return request('POST', 'graphql', { body }).then(
        (payload) => ({
            data: payload.data || undefined,
            errors: payload.errors && payload.errors.length ? payload.errors : undefined
        }),
        (error) => ({
            data: undefined,
            errors: Array.isArray(error.body) ? error.body : [{ message: error.statusText }]
        })
    );
});
