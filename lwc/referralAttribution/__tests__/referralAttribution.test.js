import { createElement } from 'lwc';
import ReferralAttribution from 'c/referralAttribution';
import { getRecord } from 'lightning/uiRecordApi';
import { getRelatedListRecords } from 'lightning/uiRelatedListApi';
import { getPicklistValues } from 'lightning/uiObjectInfoApi';
import { getNavigateCalls, getGenerateUrlCalls, resetNavigationCalls } from 'lightning/navigation';

const { readLabels } = require('../../../scripts/jest/labels');
const LABELS = readLabels();

const mockAttributed = require('./data/getRecordAttributed.json');
const mockUnattributed = require('./data/getRecordUnattributed.json');
const mockRewards = require('./data/getRelatedListRecords.json');
const mockStages = require('./data/getPicklistValues.json');

const OPPORTUNITY_ID = '006000000000001AAA';

function flushPromises() {
    return Promise.resolve();
}

function withReferralFields(overrides) {
    const copy = JSON.parse(JSON.stringify(mockAttributed));
    Object.assign(copy.fields.Referral__r.value.fields, overrides);
    return copy;
}

describe('c-referral-attribution', () => {
    let element;

    beforeEach(() => {
        element = createElement('c-referral-attribution', { is: ReferralAttribution });
        element.recordId = OPPORTUNITY_ID;
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

    it('asks for the opportunity with schema-imported fields, the referral spans optional', () => {
        const config = getRecord.getLastConfig();
        expect(config.recordId).toBe(OPPORTUNITY_ID);
        expect(config.fields.map((f) => f.fieldApiName)).toEqual(
            expect.arrayContaining(['StageName', 'IsClosed', 'IsWon', 'Referral__c'])
        );
        expect(config.optionalFields.map((f) => f.fieldApiName)).toEqual(
            expect.arrayContaining([
                'Referral__r.Status__c',
                'Referral__r.Advocate__r.Name',
                'Referral__r.Program__r.Milestone_Value__c'
            ])
        );
    });

    describe('loading', () => {
        it('shows a labelled spinner and marks the card busy', async () => {
            const spinner = $('lightning-spinner');
            expect(spinner).not.toBeNull();
            expect(spinner.alternativeText).toBe('Loading referral attribution');
            expect($('article').getAttribute('aria-busy')).toBe('true');
            await expect(element).toBeAccessible();
        });
    });

    describe('error', () => {
        it('announces the error message in an alert', async () => {
            getRecord.emitError({ body: [{ message: 'Insufficient access' }] });
            await flushPromises();

            const alert = $('[role="alert"]');
            expect(alert).not.toBeNull();
            expect(alert.textContent).toContain('Insufficient access');
            expect($('lightning-spinner')).toBeNull();
            await expect(element).toBeAccessible();
        });
    });

    describe('empty', () => {
        it('says the opportunity has no referral and asks for no rewards', async () => {
            getRecord.emit(mockUnattributed);
            await flushPromises();

            expect($('[data-id="empty"]').textContent).toBe('This opportunity is not attributed to a referral.');
            expect($('[data-id="source"]')).toBeNull();
            expect(getRelatedListRecords.getLastConfig().parentRecordId).toBeFalsy();
            expect($('article').getAttribute('aria-busy')).toBe('false');
            await expect(element).toBeAccessible();
        });
    });

    describe('populated', () => {
        async function renderPopulated(record = mockAttributed, rewards = mockRewards) {
            getRecord.emit(record);
            await flushPromises();
            getPicklistValues.emit(mockStages);
            getRelatedListRecords.emit(rewards);
            await flushPromises();
        }

        it('shows advocate and program as keyboard-reachable links', async () => {
            await renderPopulated();

            const advocate = $('[data-id="advocate"] a');
            expect(advocate.textContent).toBe('Ada Lovelace');
            expect(advocate.getAttribute('href')).toBe('/lightning/r/003000000000001AAA/view');
            expect($('[data-id="program"] a').textContent).toBe('Partner Program 2026');
            expect($('[data-id="referral-link"]').textContent).toBe('REF-000042');
            expect($('[data-id="status"]').textContent).toBe('In Progress');
        });

        it('wires the rewards related list of the referral', async () => {
            await renderPopulated();

            const config = getRelatedListRecords.getLastConfig();
            expect(config.parentRecordId).toBe('a02000000000001AAA');
            expect(config.relatedListId).toBe('Rewards__r');
            expect(config.fields).toEqual(
                expect.arrayContaining(['Referral_Reward__c.Status__c', 'Referral_Reward__c.Amount__c'])
            );
            expect(getPicklistValues.getLastConfig().recordTypeId).toBe('012000000000000AAA');
        });

        it('renders the status timeline as an ordered list with the current step marked', async () => {
            await renderPopulated();

            const steps = $$('[data-id="timeline"] li');
            expect(steps.map((li) => li.textContent)).toEqual([
                expect.stringContaining('Captured'),
                expect.stringContaining('Routed'),
                expect.stringContaining('Qualified'),
                expect.stringContaining('Rewarded')
            ]);
            const current = steps.filter((li) => li.getAttribute('aria-current') === 'step');
            expect(current).toHaveLength(1);
            expect(current[0].textContent).toContain('Routed');
            expect(steps[2].textContent).toContain('Not reached');
        });

        it('tells where the deal stands against the program milestone', async () => {
            await renderPopulated();

            expect($('[data-id="milestone-value"]').textContent).toBe('Closed Won');
            expect($('[data-id="stage"]').textContent).toBe('Proposal/Price Quote');
            expect($('[data-id="milestone-standing"]').textContent).toBe(
                '2 stages to go before the program milestone.'
            );
            const progress = $('[data-id="milestone-progress"]');
            expect(progress.getAttribute('role')).toBe('progressbar');
            expect(progress.getAttribute('aria-valuenow')).toBe('78');
            expect(progress.textContent).toContain('78% of the way to the milestone');
            expect($('[data-id="qualification-summary"]').textContent).toContain('Closed Won');
        });

        it('says when the deal reached the milestone or was lost', async () => {
            const won = JSON.parse(JSON.stringify(mockAttributed));
            won.fields.StageName = { value: 'Closed Won', displayValue: 'Closed Won' };
            await renderPopulated(won);
            expect($('[data-id="milestone-standing"]').textContent).toBe(
                'This deal has reached the program milestone.'
            );

            const lost = JSON.parse(JSON.stringify(mockAttributed));
            lost.fields.StageName = { value: 'Closed Lost', displayValue: 'Closed Lost' };
            lost.fields.IsClosed = { value: true, displayValue: null };
            getRecord.emit(lost);
            await flushPromises();
            expect($('[data-id="milestone-standing"]').textContent).toBe(
                'This deal closed without reaching the program milestone.'
            );
        });

        it('lists rewards with amount, status and the review reason when held', async () => {
            await renderPopulated();

            const rewards = $$('[data-id="reward"]');
            expect(rewards).toHaveLength(2);
            const amount = rewards[0].querySelector('lightning-formatted-number');
            expect(amount.value).toBe(250);
            expect(amount.currencyCode).toBe('EUR');
            expect(rewards[0].querySelector('[data-id="reward-status"]').textContent).toBe('Pending Review');
            expect(rewards[0].querySelector('[data-id="reward-review-reason"]').textContent).toBe(
                'Review reason: Over Amount Threshold'
            );
            expect(rewards[1].textContent).toContain('Held until');
            expect(rewards[1].querySelector('[data-id="reward-review-reason"]')).toBeNull();
        });

        it('shows an empty reward state and a reward error without hiding the attribution', async () => {
            await renderPopulated(mockAttributed, { ...mockRewards, records: [], count: 0 });
            expect($('[data-id="rewards-empty"]').textContent).toBe('No reward yet.');

            getRelatedListRecords.emitError({ body: [{ message: 'Rewards unavailable' }] });
            await flushPromises();
            expect($('[data-id="rewards-error"]').textContent).toContain('Rewards unavailable');
            expect($('[data-id="advocate"]')).not.toBeNull();
        });

        it('explains an end state with its reason', async () => {
            await renderPopulated(
                withReferralFields({
                    Status__c: { value: 'disqualified', displayValue: 'Disqualified' },
                    Review_Reason__c: { value: 'milestone_regressed', displayValue: 'Milestone Regressed' }
                })
            );

            const endState = $('[data-id="end-state"]');
            expect(endState.getAttribute('role')).toBe('status');
            expect(endState.textContent).toContain('Disqualified');
            expect(endState.textContent).toContain('Milestone Regressed');
        });

        it('has one level-2 heading, labelled sections and no axe violations', async () => {
            await renderPopulated();

            const h2 = $$('h2');
            expect(h2).toHaveLength(1);
            expect(h2[0].textContent).toBe('Referral attribution');
            expect($$('h3').map((h) => h.textContent)).toEqual([
                'Source',
                'Status timeline',
                'Program milestone',
                'Rewards'
            ]);
            $$('section').forEach((section) => expect(section.getAttribute('aria-labelledby')).toBeTruthy());
            $$('a').forEach((link) => expect(link.getAttribute('href')).toMatch(/^\/lightning\/r\//));
            await expect(element).toBeAccessible();
        });
    });

    describe('labels and navigation', () => {
        async function render() {
            getRecord.emit(mockAttributed);
            await flushPromises();
            getRelatedListRecords.emit(mockRewards);
            await flushPromises();
        }

        it('takes every heading from the package custom labels', async () => {
            await render();
            expect($('h2').textContent).toBe(LABELS.Refstage_Attribution_Title);
            expect($$('h3').map((h) => h.textContent)).toEqual([
                LABELS.Refstage_Source,
                LABELS.Refstage_Status_Timeline,
                LABELS.Refstage_Program_Milestone,
                LABELS.Refstage_Rewards
            ]);
            expect($$('dt').map((dt) => dt.textContent)).toEqual(
                expect.arrayContaining([LABELS.Refstage_Referral, LABELS.Refstage_Advocate, LABELS.Refstage_Deal_Stage])
            );
        });

        it('fills label placeholders with the values, not with code-built sentences', async () => {
            getRecord.emitError({ body: [{ message: 'Insufficient access' }] });
            await flushPromises();
            expect($('[role="alert"] p').textContent).toBe(
                LABELS.Refstage_Attribution_Load_Failed.replace('{0}', 'Insufficient access')
            );
        });

        it('asks Salesforce for record URLs through NavigationMixin.GenerateUrl', async () => {
            await render();
            const requested = getGenerateUrlCalls().map((ref) => ref.attributes.recordId);
            expect(requested).toEqual(
                expect.arrayContaining(['a02000000000001AAA', '003000000000001AAA', 'a01000000000001AAA'])
            );
            getGenerateUrlCalls().forEach((ref) => {
                expect(ref.type).toBe('standard__recordPage');
                expect(ref.attributes.actionName).toBe('view');
            });
        });

        it('navigates with NavigationMixin.Navigate on a plain click and leaves modified clicks to the browser', async () => {
            await render();
            const link = $('[data-id="advocate"] a');
            const click = new MouseEvent('click', { bubbles: true, cancelable: true });
            link.dispatchEvent(click);
            expect(click.defaultPrevented).toBe(true);
            expect(getNavigateCalls()).toEqual([
                {
                    pageReference: {
                        type: 'standard__recordPage',
                        attributes: { recordId: '003000000000001AAA', actionName: 'view' }
                    },
                    replace: undefined
                }
            ]);
            const newTab = new MouseEvent('click', { bubbles: true, cancelable: true, ctrlKey: true });
            link.dispatchEvent(newTab);
            expect(newTab.defaultPrevented).toBe(false);
            expect(getNavigateCalls()).toHaveLength(1);
        });
    });
});
