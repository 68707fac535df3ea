import { LightningElement, api, wire } from 'lwc';
import { NavigationMixin } from 'lightning/navigation';
import { getRecord, getFieldValue, getFieldDisplayValue } from 'lightning/uiRecordApi';
import { gql, graphql } from 'lightning/graphql';
import { reduceErrors, formatLabel, totalsByKey, generateRecordUrls, navigateOnPlainClick } from 'c/ldsUtils';

import ERROR from '@salesforce/label/c.Refstage_Error';
import UNKNOWN_ERROR from '@salesforce/label/c.Refstage_Unknown_Error';
import UNKNOWN from '@salesforce/label/c.Refstage_Unknown';
import NOT_RECORDED from '@salesforce/label/c.Refstage_Not_Recorded';
import REFERRAL from '@salesforce/label/c.Refstage_Referral';
import ADVOCATE from '@salesforce/label/c.Refstage_Advocate';
import PROGRAM from '@salesforce/label/c.Refstage_Program';
import STATUS from '@salesforce/label/c.Refstage_Status';
import TITLE from '@salesforce/label/c.Refstage_Referrals';
import LOADING from '@salesforce/label/c.Refstage_Referrals_Loading';
import LOAD_FAILED from '@salesforce/label/c.Refstage_Referrals_Load_Failed';
import EMPTY from '@salesforce/label/c.Refstage_Account_Empty';
import SOURCE from '@salesforce/label/c.Refstage_Account_Source';
import ADVOCATED from '@salesforce/label/c.Refstage_Account_Advocated';
import ADVOCATED_NONE from '@salesforce/label/c.Refstage_Account_Advocated_None';
import FRIEND from '@salesforce/label/c.Refstage_Friend';
import CAPTURED from '@salesforce/label/c.Refstage_Captured';
import UNNAMED_FRIEND from '@salesforce/label/c.Refstage_Unnamed_Friend';
import REFERRAL_COUNT_ONE from '@salesforce/label/c.Refstage_Referral_Count_One';
import REFERRAL_COUNT from '@salesforce/label/c.Refstage_Referral_Count';
import REFERRAL_COUNT_PARTIAL from '@salesforce/label/c.Refstage_Referral_Count_Partial';
import REWARDS from '@salesforce/label/c.Refstage_Account_Rewards';
import REWARDS_NONE from '@salesforce/label/c.Refstage_Account_Rewards_None';

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
    advocated: ADVOCATED,
    advocatedNone: ADVOCATED_NONE,
    friend: FRIEND,
    captured: CAPTURED,
    rewards: REWARDS,
    rewardsNone: REWARDS_NONE
};

import ACCOUNT_NAME_FIELD from '@salesforce/schema/Account.Name';
import ACCOUNT_REFERRAL_FIELD from '@salesforce/schema/Account.Referral__c';
import SOURCE_NAME_FIELD from '@salesforce/schema/Account.Referral__r.Name';
import SOURCE_STATUS_FIELD from '@salesforce/schema/Account.Referral__r.Status__c';
import SOURCE_CAPTURED_FIELD from '@salesforce/schema/Account.Referral__r.Captured_Date__c';
import SOURCE_ADVOCATE_FIELD from '@salesforce/schema/Account.Referral__r.Advocate__c';
import SOURCE_ADVOCATE_NAME_FIELD from '@salesforce/schema/Account.Referral__r.Advocate__r.Name';
import SOURCE_PROGRAM_NAME_FIELD from '@salesforce/schema/Account.Referral__r.Program__r.Name';

/** Reward statuses in lifecycle order, for listing totals. */
const REWARD_STATUS_ORDER = ['pending_hold', 'pending_review', 'approved', 'issued', 'rejected', 'cancelled'];
/** Most referrals listed; the total count is always shown. */
const PAGE_SIZE = 50;

/*
 * GraphQL reaches what related lists cannot: referrals whose advocate is a contact of this account,
 * and the advocate rewards of those referrals. Field names inside a GraphQL document cannot come from
 * schema imports; the metadata validator checks every field named here exists.
 */
const ACCOUNT_REFERRALS_QUERY = gql`
    query accountReferrals($accountId: ID, $pageSize: Int) {
        uiapi {
            query {
                Referral__c(
                    where: { Advocate__r: { AccountId: { eq: $accountId } } }
                    orderBy: { Captured_Date__c: { order: DESC, nulls: LAST } }
                    first: $pageSize
                ) {
                    totalCount
                    edges {
                        node {
                            Id
                            Name {
                                value
                            }
                            Friend_Name__c {
                                value
                            }
                            Status__c {
                                value
                                displayValue
                            }
                            Captured_Date__c {
                                value
                            }
                            Advocate__r {
                                Name {
                                    value
                                }
                            }
                            Program__r {
                                Name {
                                    value
                                }
                            }
                        }
                    }
                }
                Referral_Reward__c(
                    where: {
                        and: [
                            { Recipient__c: { eq: "advocate" } }
                            { Referral__r: { Advocate__r: { AccountId: { eq: $accountId } } } }
                        ]
                    }
                    first: 2000
                ) {
                    totalCount
                    edges {
                        node {
                            Id
                            Amount__c {
                                value
                            }
                            Currency_Code__c {
                                value
                            }
                            Status__c {
                                value
                                displayValue
                            }
                        }
                    }
                }
            }
        }
    }
`;

export default class AccountReferrals extends NavigationMixin(LightningElement) {
    /** Id of the Account whose record page hosts the component. */
    @api recordId;

    label = LABELS;
    /** Record id -> URL that Salesforce generated for its page (NavigationMixin.GenerateUrl). */
    recordUrls = {};
    pendingUrls = new Set();

    account;
    accountError;
    graphqlData;
    graphqlErrors;

    @wire(getRecord, {
        recordId: '$recordId',
        fields: [ACCOUNT_NAME_FIELD, ACCOUNT_REFERRAL_FIELD],
        optionalFields: [
            SOURCE_NAME_FIELD,
            SOURCE_STATUS_FIELD,
            SOURCE_CAPTURED_FIELD,
            SOURCE_ADVOCATE_FIELD,
            SOURCE_ADVOCATE_NAME_FIELD,
            SOURCE_PROGRAM_NAME_FIELD
        ]
    })
    wiredAccount({ data, error }) {
        this.account = data;
        this.accountError = error;
        if (data) {
            this.generateUrls([
                getFieldValue(data, ACCOUNT_REFERRAL_FIELD),
                getFieldValue(data, SOURCE_ADVOCATE_FIELD)
            ]);
        }
    }

    @wire(graphql, { query: ACCOUNT_REFERRALS_QUERY, variables: '$variables' })
    wiredReferrals({ data, errors }) {
        this.graphqlData = data;
        this.graphqlErrors = errors;
        this.generateUrls(this.referrals.map((referral) => referral.id));
    }

    get variables() {
        return { accountId: this.recordId, pageSize: PAGE_SIZE };
    }

    // ----- navigation -------------------------------------------------------------------------

    generateUrls(recordIds) {
        generateRecordUrls(this, recordIds);
    }

    handleRecordLink(event) {
        navigateOnPlainClick(this, event);
    }

    // ----- state ------------------------------------------------------------------------------

    get isLoading() {
        return (!this.account && !this.accountError) || (!this.graphqlData && !this.hasGraphqlErrors);
    }

    get ariaBusy() {
        return this.isLoading ? 'true' : 'false';
    }

    get hasGraphqlErrors() {
        return Array.isArray(this.graphqlErrors) ? this.graphqlErrors.length > 0 : !!this.graphqlErrors;
    }

    get hasError() {
        return !!this.accountError || this.hasGraphqlErrors;
    }

    get errorMessages() {
        const errors = [];
        if (this.accountError) {
            errors.push(this.accountError);
        }
        if (this.graphqlErrors) {
            errors.push(...[].concat(this.graphqlErrors));
        }
        return reduceErrors(errors).join(' ') || UNKNOWN_ERROR;
    }

    get loadFailedMessage() {
        return formatLabel(LOAD_FAILED, this.errorMessages);
    }

    get isEmpty() {
        return !this.isLoading && !this.hasError && !this.sourceReferral && this.referrals.length === 0;
    }

    get isPopulated() {
        return !this.isLoading && !this.hasError && !this.isEmpty;
    }

    get accountName() {
        return this.account ? getFieldValue(this.account, ACCOUNT_NAME_FIELD) : '';
    }

    // ----- the referral that brought this account in -----------------------------------------

    get sourceReferral() {
        const id = this.account ? getFieldValue(this.account, ACCOUNT_REFERRAL_FIELD) : undefined;
        if (!id) {
            return undefined;
        }
        const value = (field) => getFieldValue(this.account, field);
        return {
            id,
            url: this.recordUrls[id],
            name: value(SOURCE_NAME_FIELD) || REFERRAL,
            status: getFieldDisplayValue(this.account, SOURCE_STATUS_FIELD) ?? value(SOURCE_STATUS_FIELD),
            capturedDate: value(SOURCE_CAPTURED_FIELD),
            advocateName: value(SOURCE_ADVOCATE_NAME_FIELD),
            advocateId: value(SOURCE_ADVOCATE_FIELD),
            advocateUrl: this.recordUrls[value(SOURCE_ADVOCATE_FIELD)],
            programName: value(SOURCE_PROGRAM_NAME_FIELD)
        };
    }

    // ----- referrals made by this account's contacts ------------------------------------------

    get referralConnection() {
        return this.graphqlData?.uiapi?.query?.Referral__c;
    }

    get referrals() {
        const edges = this.referralConnection?.edges || [];
        return edges.map(({ node }) => ({
            id: node.Id,
            url: this.recordUrls[node.Id],
            name: node.Name?.value,
            friendName: node.Friend_Name__c?.value || UNNAMED_FRIEND,
            status: node.Status__c?.displayValue ?? node.Status__c?.value,
            capturedDate: node.Captured_Date__c?.value,
            advocateName: node.Advocate__r?.Name?.value,
            programName: node.Program__r?.Name?.value
        }));
    }

    get hasReferrals() {
        return this.referrals.length > 0;
    }

    get referralCountLabel() {
        const total = this.referralConnection?.totalCount ?? this.referrals.length;
        const shown = this.referrals.length;
        if (shown < total) {
            return formatLabel(REFERRAL_COUNT_PARTIAL, total, shown);
        }
        return total === 1 ? REFERRAL_COUNT_ONE : formatLabel(REFERRAL_COUNT, total);
    }

    // ----- reward totals ----------------------------------------------------------------------

    get rewardTotals() {
        const edges = this.graphqlData?.uiapi?.query?.Referral_Reward__c?.edges || [];
        return totalsByKey(
            edges.map(({ node }) => ({
                key: node.Status__c?.value || 'unknown',
                label: node.Status__c?.displayValue ?? node.Status__c?.value ?? UNKNOWN,
                amount: node.Amount__c?.value,
                currency: node.Currency_Code__c?.value
            })),
            REWARD_STATUS_ORDER
        ).map((group) => ({ ...group, termKey: `${group.key}-term`, detailKey: `${group.key}-detail` }));
    }

    get hasRewardTotals() {
        return this.rewardTotals.length > 0;
    }
}
