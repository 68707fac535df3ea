"""Template helpers for every page: the company behind a program (`company_of(program)`: the tenant's
display name, logo and colour — program names stay program names), Markdown for the API reference,
and /favicon.ico."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, g
from markupsafe import Markup

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


_markdown = None


def markdown(text: Any, inline: bool = False) -> Markup:
    """CommonMark to HTML for text we wrote (the API reference's descriptions): raw HTML in the source
    is escaped, never passed through (markdown-it-py, `html` off), links keep only safe schemes."""
    global _markdown
    if _markdown is None:
        from markdown_it import MarkdownIt

        _markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
    source = str(text or "")
    return Markup(_markdown.renderInline(source) if inline else _markdown.render(source))


@bp.record_once
def _install(state: Any) -> None:
    # Globals, not a context processor: imported macros (the share buttons) see them too.
    state.app.jinja_env.globals.update(company_of=company_of, company_name_of=company_name_of, brand_of=brand_of)
    state.app.jinja_env.filters["markdown"] = markdown
    state.app.jinja_env.filters["markdown_inline"] = lambda text: markdown(text, inline=True)


@bp.get("/favicon.ico")
def favicon():
    """Browsers ask for /favicon.ico on every site: the same icon the pages link to (SVG)."""
    global _favicon
    if _favicon is None:
        _favicon = (Path(current_app.static_folder) / "favicon.svg").read_bytes()
    return Response(_favicon, mimetype="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"})


_favicon: bytes | None = None
