"""The company behind a program, for public pages and emails: `company_of(program)` in every
template gives the tenant's display name, logo and colour (program names stay program names)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, current_app, g

from refstage.domain.tenants import Tenant

bp = Blueprint("identity", __name__)


def company_of(program: Any) -> Tenant | None:
    if program is None or not getattr(program, "tenant_id", None):
        return None
    from refstage.services import tenants

    company = tenants.identity(current_app.extensions["refstage"], program.tenant_id)
    if company.logo_url:
        parts = urlsplit(company.logo_url)
        g.csp_logo_origin = f"https://{parts.netloc}"  # the public CSP allows this one image host
    return company


def brand_color_of(program: Any) -> str | None:
    """The program's own colour if it set one, else the company's."""
    from refstage.web.public import DEFAULT_BRAND

    own = getattr(getattr(program, "landing", None), "brand_color", None)
    if own and own.lower() != DEFAULT_BRAND:
        return own
    company = company_of(program)
    return (company.brand_color if company else None) or own


def brand_of(program: Any) -> dict[str, str]:
    from refstage.web.public import brand

    return brand(brand_color_of(program))


def company_name_of(program: Any) -> str:
    company = company_of(program)
    return company.company_name if company else getattr(program, "name", "Refstage")


@bp.record_once
def _install(state: Any) -> None:
    # Globals, not a context processor: imported macros (the share buttons) see them too.
    state.app.jinja_env.globals.update(company_of=company_of, company_name_of=company_name_of, brand_of=brand_of)
