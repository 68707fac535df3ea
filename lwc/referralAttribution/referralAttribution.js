import { LightningElement, api, wire } from 'lwc';
import { NavigationMixin } from 'lightning/navigation';
import { getRecord, getFieldValue, getFieldDisplayValue } from 'lightning/uiRecordApi';
import { getRelatedListRecords } from 'lightning/uiRelatedListApi';
import { getPicklistValues } from 'lightning/uiObjectInfoApi';
import { reduceErrors, formatLabel, generateRecordUrls, navigateOnPlainClick } from 'c/ldsUtils';

import ERROR from '@salesforce/label/c.Refstage_Error';
import UNKNOWN_ERROR from '@salesforce/label/c.Refstage_Unknown_Error';
import UNKNOWN from '@salesforce/label/c.Refstage_Unknown';
import NOT_RECORDED from '@salesforce/label/c.Refstage_Not_Recorded';
import REFERRAL from '@salesforce/label/c.Refstage_Referral';
import ADVOCATE from '@salesforce/label/c.Refstage_Advocate';
import PROGRAM from '@salesforce/label/c.Refstage_Program';
import STATUS from '@salesforce/label/c.Refstage_Status';
import TITLE from '@salesforce/label/c.Refstage_Attribution_Title';
import LOADING from '@salesforce/label/c.Refstage_Attribution_Loading';
import LOAD_FAILED from '@salesforce/label/c.Refstage_Attribution_Load_Failed';
import EMPTY from '@salesforce/label/c.Refstage_Attribution_Empty';
import SOURCE from '@salesforce/label/c.Refstage_Source';
import ENDED_AS from '@salesforce/label/c.Refstage_Ended_As';
import REASON from '@salesforce/label/c.Refstage_Reason';
import HELD_FOR_REVIEW from '@salesforce/label/c.Refstage_Held_For_Review';
import STATUS_TIMELINE from '@salesforce/label/c.Refstage_Status_Timeline';
import STEP_CAPTURED from '@salesforce/label/c.Refstage_Step_Captured';
import STEP_ROUTED from '@salesforce/label/c.Refstage_Step_Routed';
import STEP_QUALIFIED from '@salesforce/label/c.Refstage_Step_Qualified';
import STEP_REWARDED from '@salesforce/label/c.Refstage_Step_Rewarded';
import STEP_NOT_REACHED from '@salesforce/label/c.Refstage_Step_Not_Reached';
import STEP_CURRENT from '@salesforce/label/c.Refstage_Step_Current';
import STEP_COMPLETED from '@salesforce/label/c.Refstage_Step_Completed';
import PROGRAM_MILESTONE from '@salesforce/label/c.Refstage_Program_Milestone';
import MILESTONE from '@salesforce/label/c.Refstage_Milestone';
import DEAL_STAGE from '@salesforce/label/c.Refstage_Deal_Stage';
import MILESTONE_PROGRESS from '@salesforce/label/c.Refstage_Milestone_Progress';
import MILESTONE_PROGRESS_VALUE from '@salesforce/label/c.Refstage_Milestone_Progress_Value';
import MILESTONE_NONE from '@salesforce/label/c.Refstage_Milestone_None';
import MILESTONE_OTHER_FIELD from '@salesforce/label/c.Refstage_Milestone_Other_Field';
import MILESTONE_REACHED from '@salesforce/label/c.Refstage_Milestone_Reached';
import MILESTONE_CLOSED_LOST from '@salesforce/label/c.Refstage_Milestone_Closed_Lost';
import MILESTONE_NOT_YET from '@salesforce/label/c.Refstage_Milestone_Not_Yet';
import MILESTONE_PAST from '@salesforce/label/c.Refstage_Milestone_Past';
import MILESTONE_ONE_STAGE from '@salesforce/label/c.Refstage_Milestone_One_Stage';
import MILESTONE_STAGES from '@salesforce/label/c.Refstage_Milestone_Stages';
import REWARDS from '@salesforce/label/c.Refstage_Rewards';
import REWARDS_LOADING from '@salesforce/label/c.Refstage_Rewards_Loading';
import REWARDS_LOAD_FAILED from '@salesforce/label/c.Refstage_Rewards_Load_Failed';
import REWARDS_NONE from '@salesforce/label/c.Refstage_Rewards_None';
import HELD_UNTIL from '@salesforce/label/c.Refstage_Held_Until';
import REVIEW_REASON from '@salesforce/label/c.Refstage_Review_Reason';
import ISSUED from '@salesforce/label/c.Refstage_Issued';

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
    { status: 'captured', label: STEP_CAPTURED, dateField: CAPTURED_DATE_FIELD },
    { status: 'routed', label: STEP_ROUTED, dateField: ROUTED_DATE_FIELD },
    { status: 'qualified', label: STEP_QUALIFIED, dateField: QUALIFIED_DATE_FIELD },
    { status: 'rewarded', label: STEP_REWARDED, dateField: REWARDED_DATE_FIELD }
];
/** How far along the timeline each status is (in_progress sits between routed and qualified). */
const STATUS_POSITION = { captured: 0, routed: 1, in_progress: 1, qualified: 2, rewarded: 3 };
const END_STATES = ['duplicate', 'rejected', 'disqualified'];
const HELD_REWARD_STATUSES = ['pending_hold', 'pending_review'];
const CANCELLED_REWARD_STATUSES = ['rejected', 'cancelled'];

/** Every text of the card: custom labels, so an org can translate them (Translation Workbench). */
const LABELS = {
    error: ERROR,
    notRecorded: NOT_RECORDED,
    referral: REFERRAL,
    advocate: ADVOCATE,
    program: PROGRAM,
    status: STATUS,
    title: TITLE,
    loading: LOADING,
    empty: EMPTY,
    source: SOURCE,
    statusTimeline: STATUS_TIMELINE,
    programMilestone: PROGRAM_MILESTONE,
    milestone: MILESTONE,
    dealStage: DEAL_STAGE,
    milestoneProgress: MILESTONE_PROGRESS,
    rewards: REWARDS,
    rewardsLoading: REWARDS_LOADING,
    rewardsNone: REWARDS_NONE,
    heldUntil: HELD_UNTIL,
    issued: ISSUED
};

export default class ReferralAttribution extends NavigationMixin(LightningElement) {
    /** Id of the Opportunity whose record page hosts the component. */
    @api recordId;

    label = LABELS;
    /** Record id -> URL that Salesforce generated for its page (NavigationMixin.GenerateUrl). */
    recordUrls = {};
    pendingUrls = new Set();

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
        if (data) {
            this.generateUrls([this.referralId, this.value(ADVOCATE_FIELD), this.value(PROGRAM_FIELD)]);
        }
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

    // ----- navigation --------------------------------------------------------------------------

    generateUrls(recordIds) {
        generateRecordUrls(this, recordIds);
    }

    handleRecordLink(event) {
        navigateOnPlainClick(this, event);
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
        return reduceErrors(this.opportunityError).join(' ') || UNKNOWN_ERROR;
    }

    get loadFailedMessage() {
        return formatLabel(LOAD_FAILED, this.errorMessages);
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
        return this.value(REFERRAL_NAME_FIELD) || REFERRAL;
    }

    get referralUrl() {
        return this.recordUrls[this.referralId];
    }

    get advocateName() {
        return this.value(ADVOCATE_NAME_FIELD);
    }

    get advocateId() {
        return this.value(ADVOCATE_FIELD);
    }

    get advocateUrl() {
        return this.recordUrls[this.advocateId];
    }

    get programName() {
        return this.value(PROGRAM_NAME_FIELD);
    }

    get programId() {
        return this.value(PROGRAM_FIELD);
    }

    get programUrl() {
        return this.recordUrls[this.programId];
    }

    get status() {
        return this.value(REFERRAL_STATUS_FIELD);
    }

    get statusLabel() {
        return this.display(REFERRAL_STATUS_FIELD) || UNKNOWN;
    }

    get endStateMessage() {
        const ended = formatLabel(ENDED_AS, this.statusLabel);
        return this.referralReviewReason ? `${ended} ${formatLabel(REASON, this.referralReviewReason)}` : ended;
    }

    get heldForReviewMessage() {
        return formatLabel(HELD_FOR_REVIEW, this.referralReviewReason);
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
            let stateLabel = STEP_NOT_REACHED;
            if (current) {
                stateLabel = STEP_CURRENT;
            } else if (reached) {
                stateLabel = STEP_COMPLETED;
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
            return MILESTONE_NONE;
        }
        if (!this.tracksOpportunityStage) {
            return formatLabel(
                MILESTONE_OTHER_FIELD,
                this.value(MILESTONE_OBJECT_FIELD),
                this.value(MILESTONE_FIELD_FIELD),
                milestone
            );
        }
        const stage = this.value(STAGE_FIELD);
        if (stage === milestone) {
            return MILESTONE_REACHED;
        }
        if (this.value(IS_CLOSED_FIELD) && !this.value(IS_WON_FIELD)) {
            return MILESTONE_CLOSED_LOST;
        }
        const stages = (this.stageValues || []).map((entry) => entry.value);
        const current = stages.indexOf(stage);
        const target = stages.indexOf(milestone);
        if (current === -1 || target === -1) {
            return MILESTONE_NOT_YET;
        }
        if (current > target) {
            return MILESTONE_PAST;
        }
        const remaining = target - current;
        return remaining === 1 ? MILESTONE_ONE_STAGE : formatLabel(MILESTONE_STAGES, remaining);
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

    get milestoneProgressValue() {
        return formatLabel(MILESTONE_PROGRESS_VALUE, this.milestoneProgress);
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
        return this.rewardsError
            ? formatLabel(REWARDS_LOAD_FAILED, reduceErrors(this.rewardsError).join(' ') || UNKNOWN_ERROR)
            : undefined;
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
                reviewReason: held && reason ? formatLabel(REVIEW_REASON, reason) : undefined
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
