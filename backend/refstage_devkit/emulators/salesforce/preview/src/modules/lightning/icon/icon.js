import { LightningElement, api } from 'lwc';

/** lightning-icon drawn from the SLDS icon sprites, as the base component draws it. */
export default class Icon extends LightningElement {
    @api iconName;
    @api size = 'medium';
    @api alternativeText;
    @api variant;

    get parts() {
        const [category, name] = (this.iconName || '').split(':');
        return { category, name };
    }

    get href() {
        const { category, name } = this.parts;
        return `/lightning/preview/assets/icons/${category}-sprite/svg/symbols.svg#${name}`;
    }

    get containerClass() {
        const { category, name } = this.parts;
        const base = `slds-icon_container slds-icon-${category}-${(name || '').replace(/_/g, '-')}`;
        return category === 'utility' ? base : `${base} slds-icon_container_circle`;
    }

    get svgClass() {
        const { category } = this.parts;
        const sized = `slds-icon slds-icon_${this.size}`;
        return category === 'utility' ? `${sized} slds-icon-text-default` : sized;
    }
}
