import { LightningElement, api, wire } from 'lwc';
import { getRecord, getFieldValue, getFieldDisplayValue } from 'lightning/uiRecordApi';
import { getRelatedListRecords } from 'lightning/uiRelatedListApi';
import { getPicklistValues } from 'lightning/uiObjectInfoApi';
import { reduceErrors, recordUrl } from 'c/ldsUtils';

import STAGE_FIELD from '@salesforce/schema/Opportunity.StageName';
import IS_CLOSED_FIELD from '@salesforce/schema/Opportunity.IsClosed';
import IS_WON_FIELD from '@salesforce/schema/Opportunity.IsWon';
import REFERRAL_FIELD from '@salesforce/schema/Opportunity.Referral__c';
import REFERRAL_NAME_FIELD from '@salesforce/schema/Opportunity.Referral__r.Name';
import REFERRAL_STATUS_FIELD from '@salesforce/schema/Opportunity.Referral__r.Status__c';
import REFERRAL_REVIEW_REASON_FIELD from '@salesforce/schema/Opportunity.Referral__r.Review_Reason__c';
import CAPTURED_DATE_FIELD from '@salesforce/schema/Opportunity.Referral__r.Captured_Date__c';
import ROUTED_DATE_FIELD from '@salesforce/schema/Opportunity.Referral__r.Routed_Date__c';
import QUALIFIED_DATE_FIELD from '@salesforce/schema/Opportunity.Referral__r.Qualified_Date__c';
import REWARDED_DATE_FIELD from '@salesforce/schema/Opportunity.Referral__r.Rewarded_Date__c';
import ADVOCATE_FIELD from '@salesforce/schema/Opportunity.Referral__r.Advocate__c';
import ADVOCATE_NAME_FIELD from '@salesforce/schema/Opportunity.Referral__r.Advocate__r.Name';
import PROGRAM_FIELD from '@salesforce/schema/Opportunity.Referral__r.Program__c';
import PROGRAM_NAME_FIELD from '@salesforce/schema/Opportunity.Referral__r.Program__r.Name';
import MILESTONE_OBJECT_FIELD from '@salesforce/schema/Opportunity.Referral__r.Program__r.Milestone_Object__c';
import MILESTONE_FIELD_FIELD from '@salesforce/schema/Opportunity.Referral__r.Program__r.Milestone_Field__c';
import MILESTONE_VALUE_FIELD from '@salesforce/schema/Opportunity.Referral__r.Program__r.Milestone_Value__c';
import QUALIFICATION_SUMMARY_FIELD from '@salesforce/schema/Opportunity.Referral__r.Program__r.Qualification_Summary__c';

import REWARD_OBJECT from '@salesforce/schema/Referral_Reward__c';
import REWARD_NAME_FIELD from '@salesforce/schema/Referral_Reward__c.Name';
import REWARD_RECIPIENT_FIELD from '@salesforce/schema/Referral_Reward__c.Recipient__c';
import REWARD_AMOUNT_FIELD from '@salesforce/schema/Referral_Reward__c.Amount__c';
import REWARD_CURRENCY_FIELD from '@salesforce/schema/Referral_Reward__c.Currency_Code__c';
import REWARD_TYPE_FIELD from '@salesforce/schema/Referral_Reward__c.Type__c';
import REWARD_STATUS_FIELD from '@salesforce/schema/Referral_Reward__c.Status__c';
import REWARD_HOLD_UNTIL_FIELD from '@salesforce/schema/Referral_Reward__c.Hold_Until__c';
import REWARD_ISSUED_DATE_FIELD from '@salesforce/schema/Referral_Reward__c.Issued_Date__c';
import REWARD_REVIEW_REASON_FIELD from '@salesforce/schema/Referral_Reward__c.Review_Reason__c';

/** Child relationship of Referral_Reward__c.Referral__c (master-detail) on Referral__c. */
const REWARDS_RELATED_LIST = 'Rewards__r';

const OPTIONAL_FIELDS = [
    REFERRAL_NAME_FIELD,
    REFERRAL_STATUS_FIELD,
    REFERRAL_REVIEW_REASON_FIELD,
    CAPTURED_DATE_FIELD,
    ROUTED_DATE_FIELD,
    QUALIFIED_DATE_FIELD,
    REWARDED_DATE_FIELD,
    ADVOCATE_FIELD,
    ADVOCATE_NAME_FIELD,
    PROGRAM_FIELD,
    PROGRAM_NAME_FIELD,
    MILESTONE_OBJECT_FIELD,
    MILESTONE_FIELD_FIELD,
    MILESTONE_VALUE_FIELD,
    QUALIFICATION_SUMMARY_FIELD
];

const REWARD_FIELDS = [
    REWARD_NAME_FIELD,
    REWARD_RECIPIENT_FIELD,
    REWARD_AMOUNT_FIELD,
    REWARD_CURRENCY_FIELD,
    REWARD_TYPE_FIELD,
    REWARD_STATUS_FIELD,
    REWARD_HOLD_UNTIL_FIELD,
    REWARD_ISSUED_DATE_FIELD,
    REWARD_REVIEW_REASON_FIELD
].map((field) => `${field.objectApiName}.${field.fieldApiName}`);

/** The main path of a referral; the other statuses are end states off this path. */
const TIMELINE = [
    { status: 'captured', label: 'Captured', dateField: CAPTURED_DATE_FIELD },
    { status: 'routed', label: 'Routed', dateField: ROUTED_DATE_FIELD },
    { status: 'qualified', label: 'Qualified', dateField: QUALIFIED_DATE_FIELD },
    { status: 'rewarded', label: 'Rewarded', dateField: REWARDED_DATE_FIELD }
];
/** How far along the timeline each status is (in_progress sits between routed and qualified). */
const STATUS_POSITION = { captured: 0, routed: 1, in_progress: 1, qualified: 2, rewarded: 3 };
const END_STATES = ['duplicate', 'rejected', 'disqualified'];
const HELD_REWARD_STATUSES = ['pending_hold', 'pending_review'];
const CANCELLED_REWARD_STATUSES = ['rejected', 'cancelled'];

export default class ReferralAttribution extends LightningElement {
    /** Id of the Opportunity whose record page hosts the component. */
    @api recordId;

    opportunity;
    opportunityError;
    rewards;
    rewardsError;
    stageValues;

    @wire(getRecord, {
        recordId: '$recordId',
        fields: [STAGE_FIELD, IS_CLOSED_FIELD, IS_WON_FIELD, REFERRAL_FIELD],
        optionalFields: OPTIONAL_FIELDS
    })
    wiredOpportunity({ data, error }) {
        this.opportunity = data;
        this.opportunityError = error;
    }

    @wire(getRelatedListRecords, {
        parentRecordId: '$referralId',
        relatedListId: REWARDS_RELATED_LIST,
        fields: REWARD_FIELDS,
        sortBy: [`${REWARD_OBJECT.objectApiName}.${REWARD_NAME_FIELD.fieldApiName}`]
    })
    wiredRewards({ data, error }) {
        this.rewards = data;
        this.rewardsError = error;
    }

    @wire(getPicklistValues, { recordTypeId: '$recordTypeId', fieldApiName: STAGE_FIELD })
    wiredStages({ data }) {
        // Without stage order the component still shows the milestone, only not the distance to it.
        this.stageValues = data ? data.values : undefined;
    }

    // ----- state -------------------------------------------------------------------------------

    get isLoading() {
        return !this.opportunity && !this.opportunityError;
    }

    get ariaBusy() {
        return this.isLoading ? 'true' : 'false';
    }

    get hasError() {
        return !!this.opportunityError;
    }

    get errorMessages() {
        return reduceErrors(this.opportunityError).join(' ') || 'Unknown error.';
    }

    get referralId() {
        return this.opportunity ? getFieldValue(this.opportunity, REFERRAL_FIELD) : undefined;
    }

    get recordTypeId() {
        return this.opportunity ? this.opportunity.recordTypeId : undefined;
    }

    get isEmpty() {
        return !!this.opportunity && !this.referralId;
    }

    get hasReferral() {
        return !!this.referralId;
    }

    // ----- referral --------------------------------------------------------------------------

    value(field) {
        return getFieldValue(this.opportunity, field);
    }

    display(field) {
        return getFieldDisplayValue(this.opportunity, field) ?? getFieldValue(this.opportunity, field);
    }

    get referralName() {
        return this.value(REFERRAL_NAME_FIELD) || 'Referral';
    }

    get referralUrl() {
        return recordUrl(this.referralId);
    }

    get advocateName() {
        return this.value(ADVOCATE_NAME_FIELD);
    }

    get advocateUrl() {
        return recordUrl(this.value(ADVOCATE_FIELD));
    }

    get programName() {
        return this.value(PROGRAM_NAME_FIELD);
    }

    get programUrl() {
        return recordUrl(this.value(PROGRAM_FIELD));
    }

    get status() {
        return this.value(REFERRAL_STATUS_FIELD);
    }

    get statusLabel() {
        return this.display(REFERRAL_STATUS_FIELD) || 'Unknown';
    }

    get isEndState() {
        return END_STATES.includes(this.status);
    }

    get referralReviewReason() {
        return this.display(REFERRAL_REVIEW_REASON_FIELD);
    }

    get timeline() {
        const position = STATUS_POSITION[this.status];
        return TIMELINE.map((step, index) => {
            const date = this.value(step.dateField);
            const reached = !!date || (position !== undefined && index <= position);
            const current = position === index;
            let stateLabel = 'Not reached';
            if (current) {
                stateLabel = 'Current step';
            } else if (reached) {
                stateLabel = 'Completed';
            }
            return {
                key: step.status,
                label: step.label,
                date,
                stateLabel,
                ariaCurrent: current ? 'step' : undefined,
                className: `timeline-step slds-p-vertical_xx-small${reached ? ' timeline-step_reached' : ''}${current ? ' timeline-step_current' : ''}`,
                iconName: reached ? 'utility:success' : 'utility:routing_offline'
            };
        });
    }

    // ----- milestone ---------------------------------------------------------------------------

    get milestoneValue() {
        return this.value(MILESTONE_VALUE_FIELD);
    }

    get qualificationSummary() {
        return this.value(QUALIFICATION_SUMMARY_FIELD);
    }

    get tracksOpportunityStage() {
        const object = this.value(MILESTONE_OBJECT_FIELD);
        const field = this.value(MILESTONE_FIELD_FIELD);
        return (!object || object === 'Opportunity') && (!field || field === STAGE_FIELD.fieldApiName);
    }

    get stageName() {
        return this.display(STAGE_FIELD);
    }

    get milestoneStanding() {
        const milestone = this.milestoneValue;
        if (!milestone) {
            return 'This program has no milestone recorded.';
        }
        if (!this.tracksOpportunityStage) {
            return `Qualifies when ${this.value(MILESTONE_OBJECT_FIELD)}.${this.value(MILESTONE_FIELD_FIELD)} reaches "${milestone}".`;
        }
        const stage = this.value(STAGE_FIELD);
        if (stage === milestone) {
            return 'This deal has reached the program milestone.';
        }
        if (this.value(IS_CLOSED_FIELD) && !this.value(IS_WON_FIELD)) {
            return 'This deal closed without reaching the program milestone.';
        }
        const stages = (this.stageValues || []).map((entry) => entry.value);
        const current = stages.indexOf(stage);
        const target = stages.indexOf(milestone);
        if (current === -1 || target === -1) {
            return 'This deal has not reached the program milestone yet.';
        }
        if (current > target) {
            return 'This deal is past the program milestone stage.';
        }
        const remaining = target - current;
        return `${remaining} ${remaining === 1 ? 'stage' : 'stages'} to go before the program milestone.`;
    }

    get milestoneProgress() {
        if (!this.tracksOpportunityStage || !this.stageValues || !this.milestoneValue) {
            return undefined;
        }
        const stages = this.stageValues.map((entry) => entry.value);
        const current = stages.indexOf(this.value(STAGE_FIELD));
        const target = stages.indexOf(this.milestoneValue);
        if (current === -1 || target === -1) {
            return undefined;
        }
        return Math.min(100, Math.round(((current + 1) / (target + 1)) * 100));
    }

    get milestoneProgressStyle() {
        return `width: ${this.milestoneProgress}%`;
    }

    get hasMilestoneProgress() {
        return this.milestoneProgress !== undefined;
    }

    // ----- rewards ----------------------------------------------------------------------------

    get rewardsLoading() {
        return this.hasReferral && !this.rewards && !this.rewardsError;
    }

    get rewardsErrorMessage() {
        return this.rewardsError ? reduceErrors(this.rewardsError).join(' ') || 'Unknown error.' : undefined;
    }

    get rewardItems() {
        if (!this.rewards || !this.rewards.records) {
            return [];
        }
        return this.rewards.records.map((record) => {
            const status = getFieldValue(record, REWARD_STATUS_FIELD);
            const reason =
                getFieldDisplayValue(record, REWARD_REVIEW_REASON_FIELD) ??
                getFieldValue(record, REWARD_REVIEW_REASON_FIELD);
            const held = HELD_REWARD_STATUSES.includes(status);
            let badgeClass = 'slds-badge';
            if (status === 'issued' || status === 'approved') {
                badgeClass = 'slds-badge slds-theme_success';
            } else if (CANCELLED_REWARD_STATUSES.includes(status)) {
                badgeClass = 'slds-badge slds-theme_error';
            } else if (held) {
                badgeClass = 'slds-badge slds-theme_warning';
            }
            return {
                id: record.id,
                name: getFieldValue(record, REWARD_NAME_FIELD),
                recipient:
                    getFieldDisplayValue(record, REWARD_RECIPIENT_FIELD) ??
                    getFieldValue(record, REWARD_RECIPIENT_FIELD),
                type: getFieldDisplayValue(record, REWARD_TYPE_FIELD) ?? getFieldValue(record, REWARD_TYPE_FIELD),
                amount: getFieldValue(record, REWARD_AMOUNT_FIELD),
                currency: getFieldValue(record, REWARD_CURRENCY_FIELD) || undefined,
                statusLabel: getFieldDisplayValue(record, REWARD_STATUS_FIELD) ?? status,
                badgeClass,
                holdUntil: status === 'pending_hold' ? getFieldValue(record, REWARD_HOLD_UNTIL_FIELD) : undefined,
                issuedDate: getFieldValue(record, REWARD_ISSUED_DATE_FIELD),
                reviewReason: held ? reason : undefined
            };
        });
    }

    get hasRewards() {
        return this.rewardItems.length > 0;
    }

    get noRewards() {
        return !!this.rewards && !this.hasRewards;
    }
}
