/*
 * Mounts the package's component for this record page on the open-source LWC engine, with synthetic shadow so
 * SLDS's global styles reach inside components as they do in Lightning Experience.
 */
import '@lwc/synthetic-shadow';
import { createElement } from 'lwc';
import ReferralAttribution from 'c/referralAttribution';
import AccountReferrals from 'c/accountReferrals';

const COMPONENTS = {
    'c-referral-attribution': ReferralAttribution,
    'c-account-referrals': AccountReferrals
};

const config = JSON.parse(document.getElementById('preview-config').textContent);
document.querySelectorAll('[data-component]').forEach((slot) => {
    const name = slot.dataset.component;
    const element = createElement(name, { is: COMPONENTS[name] });
    element.recordId = config.recordId;
    slot.appendChild(element);
});
