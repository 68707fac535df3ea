import { createElement } from 'lwc';
import AccountReferrals from 'c/accountReferrals';
import { getRecord } from 'lightning/uiRecordApi';
import { graphql } from 'lightning/graphql';
import { getNavigateCalls, getGenerateUrlCalls, resetNavigationCalls } from 'lightning/navigation';

const { readLabels } = require('../../../scripts/jest/labels');
const LABELS = readLabels();

const mockReferred = require('./data/getRecordReferred.json');
const mockPlain = require('./data/getRecordPlain.json');
const mockReferrals = require('./data/graphqlReferrals.json');
const mockEmpty = require('./data/graphqlEmpty.json');

const ACCOUNT_ID = '001000000000001AAA';

function flushPromises() {
    return Promise.resolve();
}

describe('c-account-referrals', () => {
    let element;

    beforeEach(() => {
        element = createElement('c-account-referrals', { is: AccountReferrals });
        element.recordId = ACCOUNT_ID;
        document.body.appendChild(element);
    });

    afterEach(() => {
        while (document.body.firstChild) {
            document.body.removeChild(document.body.firstChild);
        }
        jest.clearAllMocks();
        resetNavigationCalls();
    });

    const $ = (selector) => element.shadowRoot.querySelector(selector);
    const $$ = (selector) => [...element.shadowRoot.querySelectorAll(selector)];

    async function render(account, referrals) {
        getRecord.emit(account);
        graphql.emit(referrals);
        await flushPromises();
    }

    it('wires the account with schema-imported fields and the GraphQL query with the account id', () => {
        const config = getRecord.getLastConfig();
        expect(config.recordId).toBe(ACCOUNT_ID);
        expect(config.fields.map((f) => f.fieldApiName)).toEqual(['Name', 'Referral__c']);
        expect(config.optionalFields.map((f) => f.fieldApiName)).toEqual(
            expect.arrayContaining(['Referral__r.Status__c', 'Referral__r.Advocate__r.Name'])
        );
        expect(graphql.getLastConfig().variables).toEqual({ accountId: ACCOUNT_ID, pageSize: 50 });
    });

    describe('loading', () => {
        it('shows a labelled spinner until both the record and the query have answered', async () => {
            expect($('lightning-spinner').alternativeText).toBe('Loading referrals');
            expect($('article').getAttribute('aria-busy')).toBe('true');

            getRecord.emit(mockReferred);
            await flushPromises();
            expect($('lightning-spinner')).not.toBeNull();
            await expect(element).toBeAccessible();
        });
    });

    describe('error', () => {
        it('announces GraphQL errors in an alert', async () => {
            getRecord.emit(mockReferred);
            graphql.emitErrors([{ message: 'No such column Friend_Name__c' }]);
            await flushPromises();

            const alert = $('[role="alert"]');
            expect(alert.textContent).toContain('No such column Friend_Name__c');
            expect($('[data-id="advocated"]')).toBeNull();
            await expect(element).toBeAccessible();
        });

        it('announces record errors in an alert', async () => {
            getRecord.emitError({ body: [{ message: 'Record not accessible' }] });
            graphql.emit(mockEmpty);
            await flushPromises();

            expect($('[role="alert"]').textContent).toContain('Record not accessible');
        });
    });

    describe('empty', () => {
        it('says no referral involves the account', async () => {
            await render(mockPlain, mockEmpty);

            expect($('[data-id="empty"]').textContent).toBe('No referrals involve this account yet.');
            expect($('table')).toBeNull();
            expect($('article').getAttribute('aria-busy')).toBe('false');
            await expect(element).toBeAccessible();
        });
    });

    describe('populated', () => {
        it('shows the referral that brought the account in', async () => {
            await render(mockReferred, mockReferrals);

            const link = $('[data-id="source-link"]');
            expect(link.textContent).toBe('REF-000009');
            expect(link.getAttribute('href')).toBe('/lightning/r/a02000000000009AAA/view');
            expect($('[data-id="source-advocate"]').textContent).toBe('Grace Hopper');
            expect($('[data-id="source-status"]').textContent).toBe('Rewarded');
        });

        it("lists the referrals made by the account's contacts in an accessible table", async () => {
            await render(mockReferred, mockReferrals);

            const table = $('table');
            expect(table.getAttribute('aria-labelledby')).toBeTruthy();
            expect($$('thead th').map((th) => [th.textContent, th.getAttribute('scope')])).toEqual([
                ['Friend', 'col'],
                ['Advocate', 'col'],
                ['Status', 'col'],
                ['Captured', 'col']
            ]);
            const rows = $$('[data-id="referral-row"]');
            expect(rows).toHaveLength(3);
            expect(rows[0].querySelector('th[scope="row"]').textContent).toBe('Charles Babbage');
            expect(rows[0].textContent).toContain('Ada Lovelace');
            expect(rows[0].textContent).toContain('Qualified');
            expect($('[data-id="referral-count"]').textContent).toBe('3 referrals');
        });

        it('says how many referrals exist when only the latest are shown', async () => {
            const many = JSON.parse(JSON.stringify(mockReferrals));
            many.uiapi.query.Referral__c.totalCount = 120;
            await render(mockReferred, many);

            expect($('[data-id="referral-count"]').textContent).toBe('120 referrals (latest 3 shown)');
        });

        it('totals advocate rewards per status and per currency, in lifecycle order', async () => {
            await render(mockReferred, mockReferrals);

            expect($$('[data-id="reward-status"]').map((dt) => dt.textContent)).toEqual([
                'Pending Review (1)',
                'Issued (3)'
            ]);
            const issued = $$('[data-id="reward-total"]')[1].querySelectorAll('lightning-formatted-number');
            expect([...issued].map((n) => [n.value, n.currencyCode])).toEqual([
                [250, 'EUR'],
                [80, 'USD']
            ]);
        });

        it('still shows how the account came in when its contacts referred nobody', async () => {
            await render(mockReferred, mockEmpty);

            expect($('[data-id="source"]')).not.toBeNull();
            expect($('[data-id="advocated-empty"]').textContent).toBe(
                "None of this account's contacts has referred anyone yet."
            );
            expect($('[data-id="rewards-empty"]').textContent).toBe('No advocate rewards yet.');
        });

        it('has one level-2 heading, labelled sections and no axe violations', async () => {
            await render(mockReferred, mockReferrals);

            expect($$('h2').map((h) => h.textContent)).toEqual(['Referrals']);
            expect($$('h3').map((h) => h.textContent)).toEqual([
                'How this account came in',
                "Referrals by this account's contacts",
                'Advocate rewards by status'
            ]);
            $$('section').forEach((section) => expect(section.getAttribute('aria-labelledby')).toBeTruthy());
            await expect(element).toBeAccessible();
        });
    });

    describe('labels and navigation', () => {
        it('takes its title, headings and column names from the package custom labels', async () => {
            await render(mockReferred, mockReferrals);
            expect($('h2').textContent).toBe(LABELS.Refstage_Referrals);
            expect($$('h3').map((h) => h.textContent)).toEqual([
                LABELS.Refstage_Account_Source,
                LABELS.Refstage_Account_Advocated,
                LABELS.Refstage_Account_Rewards
            ]);
            expect($$('thead th').map((th) => th.textContent)).toEqual([
                LABELS.Refstage_Friend,
                LABELS.Refstage_Advocate,
                LABELS.Refstage_Status,
                LABELS.Refstage_Captured
            ]);
        });

        it('generates every record link through NavigationMixin and navigates on click', async () => {
            await render(mockReferred, mockReferrals);
            await flushPromises();
            const generated = getGenerateUrlCalls().map((ref) => ref.attributes.recordId);
            expect(generated).toContain('a02000000000009AAA');
            $$('a').forEach((link) => expect(generated).toContain(link.dataset.recordId));
            const rowLink = $('[data-id="referral-row"] a');
            const click = new MouseEvent('click', { bubbles: true, cancelable: true });
            rowLink.dispatchEvent(click);
            expect(click.defaultPrevented).toBe(true);
            expect(getNavigateCalls()[0].pageReference).toEqual({
                type: 'standard__recordPage',
                attributes: { recordId: rowLink.dataset.recordId, actionName: 'view' }
            });
        });
    });
});
