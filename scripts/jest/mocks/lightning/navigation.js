/*
 * lightning/navigation for Jest, recording what a component asked for (sfdx-lwc-jest's stub records
 * nothing). GenerateUrl answers the Lightning Experience URL of a standard__recordPage reference.
 */
import { createTestWireAdapter } from '@salesforce/wire-service-jest-util';

export const CurrentPageReference = createTestWireAdapter(jest.fn());

const Navigate = Symbol('Navigate');
const GenerateUrl = Symbol('GenerateUrl');
const calls = { navigate: [], generateUrl: [] };

export function urlOf(pageReference) {
    const { recordId, actionName } = pageReference?.attributes || {};
    return pageReference?.type === 'standard__recordPage' && recordId
        ? `/lightning/r/${recordId}/${actionName || 'view'}`
        : undefined;
}

export const NavigationMixin = (Base) =>
    class extends Base {
        [Navigate](pageReference, replace) {
            calls.navigate.push({ pageReference, replace });
        }
        [GenerateUrl](pageReference) {
            calls.generateUrl.push(pageReference);
            return Promise.resolve(urlOf(pageReference));
        }
    };
NavigationMixin.Navigate = Navigate;
NavigationMixin.GenerateUrl = GenerateUrl;

export const getNavigateCalls = () => calls.navigate;
export const getGenerateUrlCalls = () => calls.generateUrl;
export function resetNavigationCalls() {
    calls.navigate.length = 0;
    calls.generateUrl.length = 0;
}
