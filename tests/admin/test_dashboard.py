"""Home dashboard: KPIs with definitions, funnel and trend charts (SVG with axes, legend, titles),
per-program money per currency (EUR never added to USD), and the attention list."""

from __future__ import annotations

from refstage.services import dashboard
from refstage.services.connections import disconnect
from tests.admin.conftest import ADMIN, qualified_referral


def test_sign_in_lands_on_the_dashboard(client, people):
    from tests.admin.conftest import sign_in

    r = sign_in(client, "admin@acme.test")
    assert r.headers["Location"].endswith("/admin/") or r.headers["Location"].endswith("/admin/dashboard")
    assert client.get("/admin/", follow_redirects=True).request.path == "/admin/dashboard"


def test_dashboard_kpis_funnel_trend_and_attention(admin_client, rt, world, clock, needs_review):
    qualified_referral(rt, world, clock)
    d = dashboard.dashboard(rt, world.tenant.id)
    funnel = {key: n for key, _, n in d.funnel}
    assert funnel["enrolled"] == 1 and funnel["referred"] == 1 and funnel["routed"] == 1 and funnel["qualified"] == 1
    assert sum(d.referred_by_week) == 1 and len(d.weeks) == 12
    kpis = {k.key: k for k in d.kpis}
    assert kpis["rate"].value == "100.0 %" and "Qualified ÷ routed" in kpis["rate"].definition
    assert any(a.kind == "review" for a in d.attention)

    html = admin_client.get("/admin/dashboard").get_data(as_text=True)
    for text in ("Needs attention", "waiting in the review queue", "Qualification rate", "Qualified ÷ routed",
                 'id="chart-funnel"', 'id="chart-trend"', "Referrals (count), by week of referral", ">Referred</text>",
                 ">Qualified</text>"):
        assert text in html, text


def test_money_stays_per_currency():
    from decimal import Decimal

    totals: dict[str, str] = {}
    dashboard._merge(totals, {"USD": "100.00", "EUR": "40.00"})
    dashboard._merge(totals, {"USD": "150.00"})
    assert [(m.currency, m.amount) for m in dashboard._money(totals)] == [("EUR", Decimal("40.00")), ("USD", Decimal("250.00"))]


def test_a_disconnected_crm_is_listed_for_attention(admin_client, rt, world):
    disconnect(rt, world.tenant.id, world.connection.id, actor=ADMIN)
    html = admin_client.get("/admin/dashboard").get_data(as_text=True)
    assert "is disconnected" in html and world.program.name in html
