"""Marshmallow schemas of the JSON API: request validation and response shapes (and, later, OpenAPI)."""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields, validate


class MoneySchema(Schema):
    amount = fields.Decimal(as_string=True, required=True)
    currency = fields.String(required=True)


class OwnerSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    email = fields.Email(required=True)


class ProgramInSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    slug = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"))
    connection_id = fields.String(allow_none=True)
    enrolment = fields.Dict(required=True)
    rule = fields.Raw(required=True, metadata={"description": "rule JSON or text, e.g. Opportunity.StageName == 'Closed Won'"})
    reward_rules = fields.List(fields.Dict(), required=True)
    review_policy = fields.Dict(load_default=None, allow_none=True)
    holding_days = fields.Integer(load_default=0, validate=validate.Range(min=0, max=365))
    owner = fields.Nested(OwnerSchema, allow_none=True)
    routing = fields.Dict(load_default=None, allow_none=True)
    landing = fields.Dict(load_default=None, allow_none=True)
    allow_self_enrolment = fields.Boolean(load_default=False)


class ProgramPatchSchema(ProgramInSchema):
    class Meta:
        unknown = EXCLUDE

    def __init__(self, *args, **kwargs):
        super().__init__(*args, partial=True, **kwargs)


class ProgramOutSchema(Schema):
    id = fields.String()
    name = fields.String()
    slug = fields.String()
    status = fields.String()
    connection_id = fields.String(allow_none=True)
    enrolment = fields.Dict()
    rule = fields.Dict()
    rule_text = fields.String()
    reward_rules = fields.List(fields.Dict())
    review_policy = fields.Dict()
    holding_days = fields.Integer()
    owner = fields.Dict(allow_none=True)
    routing = fields.Dict()
    landing = fields.Dict()
    allow_self_enrolment = fields.Boolean()


class StatusInSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["draft", "live", "paused"]))


class AdvocateInSchema(Schema):
    program_id = fields.String(required=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    email = fields.String(required=True, validate=validate.Length(min=3, max=254))


class AdvocateOutSchema(Schema):
    id = fields.String()
    program_id = fields.String()
    name = fields.String()
    email = fields.String(allow_none=True)
    code = fields.String()
    link = fields.String()
    source = fields.String()
    crm_object = fields.String(allow_none=True)
    crm_id = fields.String(allow_none=True)
    enrolled_at = fields.DateTime()


class ReferralInSchema(Schema):
    code = fields.String(required=True, validate=validate.Length(min=1, max=32))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    email = fields.String(required=True, validate=validate.Length(min=3, max=254))
    company = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))
    phone = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=40))
    consent = fields.Boolean(required=True)


class ReferralOutSchema(Schema):
    id = fields.String()
    program_id = fields.String()
    advocate_id = fields.String()
    status = fields.String()
    status_reason = fields.String(allow_none=True)
    friend_name = fields.String()
    friend_email = fields.String()
    friend_company = fields.String(allow_none=True)
    source = fields.String()
    captured_at = fields.DateTime()
    routed_at = fields.DateTime(allow_none=True)
    qualified_at = fields.DateTime(allow_none=True)
    rewarded_at = fields.DateTime(allow_none=True)
    crm = fields.Dict()
    flags = fields.List(fields.Dict())


class RewardOutSchema(Schema):
    id = fields.String()
    referral_id = fields.String()
    program_id = fields.String()
    recipient = fields.String()
    rule_key = fields.String()
    kind = fields.String()
    amount = fields.Nested(MoneySchema)
    status = fields.String()
    hold_until = fields.DateTime(allow_none=True)
    flags = fields.List(fields.Dict())
    decided_by = fields.String(allow_none=True)
    decision_comment = fields.String(allow_none=True)
    issued_at = fields.DateTime(allow_none=True)
    payout_reference = fields.String(allow_none=True)
    created_at = fields.DateTime()


class DecisionInSchema(Schema):
    comment = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2000))


class IssueInSchema(Schema):
    payout_reference = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))


class AuditOutSchema(Schema):
    id = fields.Integer()
    entity_type = fields.String()
    entity_id = fields.String()
    action = fields.String()
    actor = fields.Dict()
    at = fields.DateTime()
    before = fields.Dict(allow_none=True)
    after = fields.Dict(allow_none=True)
    reason = fields.String(allow_none=True)


class ErrorSchema(Schema):
    error = fields.Dict(metadata={"description": "{code, message, fields?}"})


# --- outbound webhooks and the email outbox -----------------------------------------------------------
# What an endpoint may subscribe to: the four domain events, plus payout requests (opt-in; sent from the ledger).
WEBHOOK_EVENT_NAMES = ["referral.captured", "referral.qualified", "reward.approved", "reward.issued", "reward.payout_requested"]


class WebhookEndpointInSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    url = fields.Url(required=True, schemes={"http", "https"}, require_tld=False, validate=validate.Length(max=2000),
                     metadata={"description": "where events are POSTed (https in production)"})
    events = fields.List(fields.String(validate=validate.OneOf(WEBHOOK_EVENT_NAMES)), load_default=None,
                         validate=validate.Length(min=1), metadata={"description": "events to receive; all when omitted"})
    description = fields.String(load_default="", validate=validate.Length(max=200))


class WebhookEndpointPatchSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    url = fields.Url(schemes={"http", "https"}, require_tld=False, validate=validate.Length(max=2000))
    events = fields.List(fields.String(validate=validate.OneOf(WEBHOOK_EVENT_NAMES)), validate=validate.Length(min=1))
    description = fields.String(validate=validate.Length(max=200))
    active = fields.Boolean()


class WebhookEndpointOutSchema(Schema):
    id = fields.String()
    url = fields.String()
    description = fields.String()
    events = fields.List(fields.String())
    active = fields.Boolean()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class WebhookEndpointCreatedSchema(WebhookEndpointOutSchema):
    secret = fields.String(metadata={"description": "signing secret; shown only now (and on rotation)"})


class WebhookSecretSchema(Schema):
    secret = fields.String()


class WebhookDeliveryOutSchema(Schema):
    id = fields.String()
    endpoint_id = fields.String()
    event = fields.String()
    entity_id = fields.String()
    status = fields.String(metadata={"description": "pending | sending | delivered | retrying | failed"})
    attempts = fields.Integer()
    last_status_code = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)
    next_attempt_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()
    delivered_at = fields.DateTime(allow_none=True)
    payload = fields.Dict()


class EmailOutSchema(Schema):
    id = fields.String()
    event = fields.String()
    entity_id = fields.String()
    program_id = fields.String(allow_none=True)
    to = fields.String()
    subject = fields.String()
    body = fields.String()
    status = fields.String(metadata={"description": "pending | sending | sent | stored | retrying | failed"})
    transport = fields.String(allow_none=True)
    attempts = fields.Integer()
    error = fields.String(allow_none=True)
    created_at = fields.DateTime()
    sent_at = fields.DateTime(allow_none=True)


# --- list envelopes (documentation of the responses) -----------------------------------------------------
class _Page(Schema):
    limit = fields.Integer()
    offset = fields.Integer()


class ProgramListSchema(Schema):
    data = fields.List(fields.Nested(ProgramOutSchema))


class AdvocateListSchema(_Page):
    data = fields.List(fields.Nested(AdvocateOutSchema))


class ReferralListSchema(_Page):
    data = fields.List(fields.Nested(ReferralOutSchema))


class ReferralDetailSchema(ReferralOutSchema):
    rewards = fields.List(fields.Nested(RewardOutSchema))


class RewardListSchema(_Page):
    data = fields.List(fields.Nested(RewardOutSchema))


class AuditListSchema(_Page):
    data = fields.List(fields.Nested(AuditOutSchema))


class WebhookEndpointListSchema(Schema):
    data = fields.List(fields.Nested(WebhookEndpointOutSchema))


class WebhookDeliveryListSchema(_Page):
    data = fields.List(fields.Nested(WebhookDeliveryOutSchema))


class EmailListSchema(_Page):
    data = fields.List(fields.Nested(EmailOutSchema))


class ReportRowSchema(Schema):
    group = fields.String()
    enrolments = fields.Integer()
    captured = fields.Integer()
    routed = fields.Integer()
    qualified = fields.Integer()
    qualification_rate = fields.Float(allow_none=True)
    median_days_to_qualify = fields.Float(allow_none=True)
    rewards_issued = fields.Integer()
    rewards_sum = fields.Dict(keys=fields.String(), values=fields.String(), metadata={"description": "sum per currency"})


class ReportSummarySchema(Schema):
    group_by = fields.String()
    period = fields.String()
    rows = fields.List(fields.Nested(ReportRowSchema))
