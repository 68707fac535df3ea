"""Drive the emulator's login and Allow pages the way a browser does: for the demo's automatic
connection, benchmarks and tests. Plain HTTP forms, nothing emulator-internal."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlsplit

import requests

DEMO_ADMIN = ("admin@refstage.test", "refstage-demo")


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action"), "fields": {}})
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1]["fields"][a["name"]] = a.get("value", "")


def first_form(html: str) -> dict:
    parser = _Forms()
    parser.feed(html)
    if not parser.forms:
        raise RuntimeError("no form on the page: " + html[:300])
    return parser.forms[0]


def browser_consent(authorize_url: str, username: str = DEMO_ADMIN[0], password: str = DEMO_ADMIN[1],
                    verify: str | bool | None = None) -> str:
    """Log in and press Allow; return the redirect Location (the app's callback URL with code and state)."""
    base = "{0.scheme}://{0.netloc}".format(urlsplit(authorize_url))
    kwargs = {"timeout": 10} | ({"verify": verify} if verify is not None else {})
    with requests.Session() as s:
        page = s.get(authorize_url, **kwargs)
        page.raise_for_status()
        login = first_form(page.text)
        allow_page = s.post(base + login["action"], data={**login["fields"], "username": username, "pw": password}, **kwargs)
        if allow_page.status_code != 200 or "Allow" not in allow_page.text:
            raise RuntimeError(f"login refused: {allow_page.status_code} {allow_page.text[:300]}")
        allow = first_form(allow_page.text)
        r = s.post(base + allow["action"], data={**allow["fields"], "action": "allow"}, allow_redirects=False, **kwargs)
        if r.status_code != 302:
            raise RuntimeError(f"consent refused: {r.status_code} {r.text[:300]}")
        return r.headers["Location"]
