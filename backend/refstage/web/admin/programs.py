"""Program editor: enrolment-source builder, milestone picker, rule builder, reward rules, review
policy, holding period, automation owner; preview; go live / pause. Works without JavaScript: the
picker and the preview are submit buttons that re-render the form with what was typed."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict

from refstage.domain.errors import InvalidInput, InvalidTransition
from refstage.domain.programs import FILTER_OPS, DuplicatePolicy, EnrolmentKind
from refstage.domain.review import DEFAULT_ACTIONS, Action, Reason
from refstage.domain.rewards import CapPeriod, Recipient, RewardKind
from refstage.services import admin_queries
from refstage.services import programs as program_service
from refstage.web.admin import bp
from refstage.web.admin.auth import ADMIN, actor, back_or, requires, rt, tenant_id

REWARD_FIELDS = ("key", "recipient", "kind", "amount", "currency", "percent", "amount_field", "max_amount",
                 "tier_at", "cap_amount", "cap_count", "cap_period")
COND_ROWS_EXTRA = 2
REWARD_ROWS_EXTRA = 1


def flatten_errors(errors: Any, prefix: str = "") -> dict[str, list[str]]:
    """Service errors (possibly nested dicts and lists) as {dotted.field: [messages]}."""
    out: dict[str, list[str]] = {}

    def add(key: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                sub = str(k)
                add(f"{key}.{sub}" if key and sub != "_schema" else (key or sub), v)
        elif isinstance(value, (list, tuple)):
            for item in value:
                add(key, item)
        else:
            out.setdefault(key or "form", []).append(str(value))

    add(prefix, errors)
    return out


def _int_or_raw(value: str | None) -> Any:
    text = (value or "").strip()
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        return text  # the service says what is wrong with it


def _list_value(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def form_to_data(form: MultiDict) -> dict[str, Any]:
    """The editor's form as the input `services.programs.create_program` / `update_program` take."""
    conditions = []
    for field, op, value in zip(form.getlist("cond_field"), form.getlist("cond_op"), form.getlist("cond_value")):
        field, value = field.strip(), value.strip()
        if not field:
            continue
        cond: dict[str, Any] = {"field": field, "op": op}
        if op in ("in", "not_in"):
            cond["value"] = _list_value(value)
        elif op not in ("is_null", "not_null"):
            cond["value"] = value
        conditions.append(cond)
    enrolment: dict[str, Any] = {"kind": form.get("enrolment_kind", ""), "conditions": conditions}
    if form.get("campaign_id", "").strip():
        enrolment["campaign_id"] = form["campaign_id"].strip()

    rewards = []
    columns = {name: form.getlist(f"rr_{name}") for name in REWARD_FIELDS}
    for i in range(len(columns["key"])):
        row = {name: (values[i].strip() if i < len(values) else "") for name, values in columns.items()}
        if not row["key"]:
            continue
        rule: dict[str, Any] = {"key": row["key"], "recipient": row["recipient"], "kind": row["kind"]}
        currency = row["currency"].upper() or "USD"
        if row["amount"]:
            rule["amount"] = {"amount": row["amount"], "currency": currency}
        if row["kind"] == "percentage":
            rule["currency"] = currency
            if row["percent"]:
                rule["percent"] = row["percent"]
            if row["amount_field"]:
                rule["amount_field"] = row["amount_field"]
            if row["max_amount"]:
                rule["max_amount"] = {"amount": row["max_amount"], "currency": currency}
        if row["tier_at"]:
            rule["tier_at"] = _int_or_raw(row["tier_at"])
        if row["cap_amount"]:
            rule["cap_amount"] = {"amount": row["cap_amount"], "currency": currency}
        if row["cap_count"]:
            rule["cap_count"] = _int_or_raw(row["cap_count"])
        if row["cap_period"]:
            rule["cap_period"] = row["cap_period"]
        rewards.append(rule)

    policy: dict[str, Any] = {"actions": {r.value: form.get(f"action_{r.value}", DEFAULT_ACTIONS[r].value) for r in Reason}}
    if form.get("threshold_amount", "").strip():
        policy["amount_threshold"] = {"amount": form["threshold_amount"].strip(),
                                      "currency": (form.get("threshold_currency") or "USD").strip().upper()}
    for name in ("velocity_max", "velocity_window_hours"):
        value = _int_or_raw(form.get(name))
        if value is not None:
            policy[name] = value

    routing: dict[str, Any] = {"duplicate_policy": form.get("duplicate_policy", "review")}
    if form.get("lead_owner_id", "").strip():
        routing["lead_owner_id"] = form["lead_owner_id"].strip()

    owner = None
    if form.get("owner_name", "").strip() or form.get("owner_email", "").strip():
        owner = {"name": form.get("owner_name", "").strip(), "email": form.get("owner_email", "").strip()}
    holding = _int_or_raw(form.get("holding_days"))
    return {
        "name": form.get("name", ""), "slug": form.get("slug", "").strip().lower(),
        "connection_id": form.get("connection_id") or None, "enrolment": enrolment,
        "rule": form.get("rule", "").strip(), "reward_rules": rewards, "review_policy": policy,
        "holding_days": 0 if holding is None else holding, "owner": owner, "routing": routing,
        "landing": {k: form.get(f"landing_{k}", "") for k in ("headline", "message", "brand_color", "consent_text", "consent_version")
                    if form.get(f"landing_{k}") is not None},
        "allow_self_enrolment": form.get("allow_self_enrolment") == "on",
    }


def data_to_form(data: dict[str, Any]) -> dict[str, Any]:
    """Program input → the values the template shows (inverse of `form_to_data`)."""
    enrolment = data.get("enrolment") or {}
    policy = data.get("review_policy") or {}
    threshold = policy.get("amount_threshold") or {}
    rows = []
    for r in data.get("reward_rules") or []:
        amount = r.get("amount") or {}
        rows.append({
            "key": r.get("key", ""), "recipient": r.get("recipient", "advocate"), "kind": r.get("kind", "fixed"),
            "amount": amount.get("amount", ""),
            "currency": amount.get("currency") or r.get("currency") or (r.get("max_amount") or {}).get("currency") or "USD",
            "percent": r.get("percent") or "", "amount_field": r.get("amount_field") or "",
            "max_amount": (r.get("max_amount") or {}).get("amount", ""), "tier_at": r.get("tier_at") or "",
            "cap_amount": (r.get("cap_amount") or {}).get("amount", ""), "cap_count": r.get("cap_count") or "",
            "cap_period": r.get("cap_period") or "",
        })
    conditions = []
    for c in enrolment.get("conditions") or []:
        value = c.get("value")
        conditions.append({"field": c.get("field", ""), "op": c.get("op", "equals"),
                           "value": ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else ("" if value is None else str(value))})
    owner = data.get("owner") or {}
    rule = data.get("rule") or ""
    if isinstance(rule, dict):
        from refstage.domain.rules import Rule

        rule = Rule.from_json(rule).describe()
    return {
        "name": data.get("name", ""), "slug": data.get("slug", ""), "connection_id": data.get("connection_id") or "",
        "enrolment_kind": enrolment.get("kind", "salesforce_contacts"), "campaign_id": enrolment.get("campaign_id") or "",
        "conditions": conditions, "rule": rule, "reward_rules": rows,
        "actions": {k: v for k, v in (policy.get("actions") or {}).items()},
        "threshold_amount": threshold.get("amount", ""), "threshold_currency": threshold.get("currency", "USD"),
        "velocity_max": policy.get("velocity_max", 5), "velocity_window_hours": policy.get("velocity_window_hours", 24),
        "holding_days": data.get("holding_days", 0), "owner_name": owner.get("name", ""), "owner_email": owner.get("email", ""),
        "duplicate_policy": (data.get("routing") or {}).get("duplicate_policy", "review"),
        "lead_owner_id": (data.get("routing") or {}).get("lead_owner_id") or "",
        "landing": dict(data.get("landing") or {}), "allow_self_enrolment": bool(data.get("allow_self_enrolment")),
    }


def raw_form_values(form: MultiDict) -> dict[str, Any]:
    """What was typed, re-shown as typed after an error (not what the service would normalise)."""
    values = data_to_form(form_to_data(form))
    values["rule"] = form.get("rule", "")
    values["slug"] = form.get("slug", "")
    values["holding_days"] = form.get("holding_days", "")
    values["velocity_max"] = form.get("velocity_max", "")
    values["velocity_window_hours"] = form.get("velocity_window_hours", "")
    return values


def _new_program_defaults() -> dict[str, Any]:
    return data_to_form({
        "enrolment": {"kind": "salesforce_contacts"}, "rule": "",
        "reward_rules": [{"key": "advocate", "recipient": "advocate", "kind": "fixed", "amount": {"amount": "100", "currency": "USD"}}],
        "review_policy": {"actions": {r.value: a.value for r, a in DEFAULT_ACTIONS.items()}},
        "owner": {"name": "", "email": ""}, "routing": {"duplicate_policy": "review"},
    })


def _connections():
    from refstage.services.connections import list_connections

    return list_connections(rt(), tenant_id())


def _render(values: dict[str, Any], program=None, errors: dict[str, list[str]] | None = None, status: int = 200,
            preview: dict[str, Any] | None = None, refresh: bool = False):
    connections = _connections()
    connection_id = values.get("connection_id") or (connections[0].id if len(connections) == 1 and program is None else "")
    picker = None
    if connection_id:
        try:
            picker = admin_queries.milestones(rt(), tenant_id(), connection_id, refresh=refresh)
        except Exception:  # noqa: BLE001 - a foreign or deleted connection id: the save will say so per field
            picker = None
    groups: dict[str, list[dict[str, Any]]] = {}
    if picker:
        for m_ in picker.milestones:
            flags = [w for w, on in (("won", m_.is_won), ("closed", m_.is_closed)) if on]
            label = f"{m_.label}" + (f" ({', '.join(flags)})" if flags else "")
            title = f"{m_.object} {m_.field}" + (f" · {m_.group}" if m_.group else "")
            groups.setdefault(title, []).append({"token": admin_queries.milestone_token(m_), "label": label,
                                                 "rule": admin_queries.rule_for_milestone(m_)})
    return render_template(
        "admin/program_form.html", values=values, program=program, errors=errors or {}, connections=connections,
        selected_connection=connection_id, picker=picker, milestone_groups=groups, preview=preview,
        enrolment_kinds=[k.value for k in EnrolmentKind], filter_ops=FILTER_OPS,
        recipients=[r.value for r in Recipient], reward_kinds=[k.value for k in RewardKind],
        cap_periods=[p.value for p in CapPeriod], reasons=[r.value for r in Reason], actions=[a.value for a in Action],
        duplicate_policies=[p.value for p in DuplicatePolicy], cond_extra=COND_ROWS_EXTRA, reward_extra=REWARD_ROWS_EXTRA,
    ), status


def _preview(values: dict[str, Any]) -> dict[str, Any]:
    result = admin_queries.preview_rule(rt(), tenant_id(), values.get("connection_id") or None, values.get("rule", ""))
    count, error = result.count, result.note
    from refstage.domain.errors import RuleError
    from refstage.domain.rules import Rule

    try:
        objects = sorted(Rule.coerce(values.get("rule", "")).objects())
    except RuleError:
        objects = []
    noun = {"Opportunity": "opportunities", "Lead": "leads", "Deal": "deals", "Account": "accounts", "Contact": "contacts"}
    what = " / ".join(noun.get(o, o) for o in objects) or "records"
    return {"count": count, "error": error, "what": what, "problems": result.problems}


def _pick_milestone(values: dict[str, Any], form: MultiDict) -> dict[str, Any] | None:
    token = form.get("milestone", "")
    if not token or not values.get("connection_id"):
        return None
    choice = admin_queries.milestones(rt(), tenant_id(), values["connection_id"])
    for m_ in choice.milestones:
        if admin_queries.milestone_token(m_) == token:
            values["rule"] = admin_queries.rule_for_milestone(m_)
            return values
    return None


def _submit(program=None):
    form = request.form
    action = form.get("action", "save")
    values = raw_form_values(form)
    if action in ("pick", "preview", "refresh", "add_rows"):
        preview = None
        if action == "pick" and _pick_milestone(values, form) is None:
            flash("Choose a milestone from the list first.", "error")
        errors = None
        if action == "preview":
            preview = _preview(values)
            errors = {"rule": preview["problems"]} if preview["problems"] else None
        return _render(values, program, preview=preview, refresh=action == "refresh", errors=errors)
    data = form_to_data(form)
    if not data["rule"] and form.get("milestone"):
        picked = _pick_milestone(values, form)
        if picked:
            data["rule"] = picked["rule"]
            values = picked
    try:
        if program is None:
            saved = program_service.create_program(rt(), tenant_id(), data, actor())
            flash(f"Program “{saved.name}” created as a draft.")
        else:
            saved = program_service.update_program(rt(), tenant_id(), program.id, data, actor())
            flash(f"Program “{saved.name}” saved.")
    except InvalidInput as exc:
        return _render(values, program, errors=flatten_errors(exc.errors), status=400)
    return redirect(url_for("admin.program_edit", program_id=saved.id))


@bp.route("/programs")
@requires(*ADMIN)
def programs():
    items = program_service.list_programs(rt(), tenant_id())
    conns = {c.id: c for c in _connections()}
    return render_template("admin/programs.html", programs=items, connections=conns)


@bp.route("/programs/new", methods=["GET", "POST"])
@requires(*ADMIN)
def program_new():
    if request.method == "POST":
        return _submit(None)
    return _render(_new_program_defaults())


@bp.route("/programs/<program_id>", methods=["GET", "POST"])
@requires(*ADMIN)
def program_edit(program_id: str):
    program = program_service.get_program(rt(), tenant_id(), program_id)
    if request.method == "POST":
        return _submit(program)
    return _render(data_to_form(program_service.program_as_dict(program)), program)


@bp.route("/programs/<program_id>/enrol", methods=["POST"])
@requires(*ADMIN)
def program_enrol(program_id: str):
    """Enrol from the CRM now (the scheduler also does it every sync interval): queued for the worker."""
    program = program_service.get_program(rt(), tenant_id(), program_id)
    if not program.enrolment.crm or not program.connection_id:
        flash("This program enrols through the form or the API, not from CRM records.", "error")
    else:
        rt().jobs.enqueue("enrol_program", tenant_id=tenant_id(), program_id=program_id)
        flash(f"Enrolment from the CRM queued for “{program.name}”: new matching records get a code and link in a few moments.")
    return redirect(back_or(url_for("admin.program_edit", program_id=program_id)))


@bp.route("/programs/<program_id>/status", methods=["POST"])
@requires(*ADMIN)
def program_status(program_id: str):
    target = request.form.get("status", "")
    try:
        program = program_service.set_program_status(rt(), tenant_id(), program_id, target, actor())
        flash(f"“{program.name}” is now {program.status.value}.")
    except InvalidInput as exc:
        flash("Cannot change the status: " + "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in exc.errors.items()), "error")
    except InvalidTransition as exc:
        flash(f"Cannot change the status: {exc}", "error")
    return redirect(back_or(url_for("admin.program_edit", program_id=program_id)))
