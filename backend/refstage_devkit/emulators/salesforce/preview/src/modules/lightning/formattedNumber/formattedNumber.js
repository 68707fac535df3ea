import { LightningElement, api } from 'lwc';
import { ORG_CURRENCY } from 'preview/org';

/** lightning-formatted-number: Intl number formatting in the user's locale; currency defaults to the org's. */
export default class FormattedNumber extends LightningElement {
    @api value;
    @api formatStyle = 'decimal';
    @api currencyCode;
    @api currencyDisplayAs = 'symbol';
    @api minimumFractionDigits;
    @api maximumFractionDigits;

    get formatted() {
        if (this.value === undefined || this.value === null || this.value === '') {
            return '';
        }
        const number = Number(this.value);
        if (Number.isNaN(number)) {
            return '';
        }
        const options = { style: this.formatStyle === 'percent-fixed' ? 'percent' : this.formatStyle };
        if (this.formatStyle === 'currency') {
            options.currency = this.currencyCode || ORG_CURRENCY;
            options.currencyDisplay = this.currencyDisplayAs;
        }
        if (this.minimumFractionDigits !== undefined) {
            options.minimumFractionDigits = Number(this.minimumFractionDigits);
        }
        if (this.maximumFractionDigits !== undefined) {
            options.maximumFractionDigits = Number(this.maximumFractionDigits);
        }
        const shown = this.formatStyle === 'percent-fixed' ? number / 100 : number;
        return new Intl.NumberFormat(navigator.language || 'en-US', options).format(shown);
    }
}
