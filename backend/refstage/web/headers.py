"""Security headers on every response, set in one place: a nonce-based Content-Security-Policy, no
framing (frame-ancestors and X-Frame-Options for old browsers), Referrer-Policy, nosniff, and HSTS
when the request came over https (directly or, with REFSTAGE_TRUSTED_PROXIES, through a proxy)."""

from __future__ import annotations

import secrets

from flask import Flask, g, request

_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'{nonce}; img-src 'self' data:; "
        "form-action {form_action}; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
# The console's forms may end in a redirect to Salesforce or Pipedrive (sign-in, connect): browsers
# apply form-action to those redirects, so it allows https targets there; public forms stay same-origin.
CONSOLE_FORM_ACTION = "'self' https:"
PUBLIC_FORM_ACTION = "'self'"
ALWAYS = (("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "same-origin"), ("X-Frame-Options", "DENY"))
HSTS = "max-age=31536000; includeSubDomains"


def csp_nonce() -> str:
    """The nonce of this response's inline <style>/<script> blocks, made on first use."""
    nonce = getattr(g, "csp_nonce", None)
    if nonce is None:
        nonce = g.csp_nonce = secrets.token_urlsafe(16)
    return nonce


def content_security_policy(path: str, nonce: str | None, image_origin: str | None = None) -> str:
    policy = _CSP.format(nonce=f" 'nonce-{nonce}'" if nonce else "",
                         form_action=CONSOLE_FORM_ACTION if path.startswith("/admin") else PUBLIC_FORM_ACTION)
    if image_origin:  # the company's logo host (https, validated when saved; web/identity.py)
        policy = policy.replace("img-src 'self' data:;", f"img-src 'self' data: {image_origin};")
    return policy


def init_app(app: Flask) -> None:
    app.jinja_env.globals["csp_nonce"] = csp_nonce

    @app.after_request
    def _security_headers(resp):
        headers = resp.headers
        present = {key.lower() for key, _ in headers.items()}  # one pass: setdefault scans the list per header
        if "content-security-policy" not in present:
            headers.add("Content-Security-Policy", content_security_policy(
                request.path, getattr(g, "csp_nonce", None), getattr(g, "csp_logo_origin", None)))
        for key, value in ALWAYS:
            if key.lower() not in present:
                headers.add(key, value)
        if request.is_secure and "strict-transport-security" not in present:
            headers.add("Strict-Transport-Security", HSTS)
        return resp
