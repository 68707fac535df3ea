import { LightningElement, api } from 'lwc';

/** lightning-spinner: the SLDS spinner with its assistive text. */
export default class Spinner extends LightningElement {
    @api alternativeText;
    @api size = 'medium';
    @api variant;

    get spinnerClass() {
        return `slds-spinner slds-spinner_${this.size}${this.variant === 'brand' ? ' slds-spinner_brand' : ''}`;
    }
}
