"""The record page preview in Chromium: the bundle built when missing, Chromium trusting exactly the emulator's
server key, and a signed-in page on the emulated org."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from tests.browser_support import CHROMIUM_ARGS, ROOT

DIST = ROOT / "backend" / "refstage" / "emulators" / "salesforce" / "preview" / "dist" / "preview.js"
SF_ADMIN = ("admin@refstage.test", "refstage-demo")


def ensure_preview_built() -> None:
    """`make test` builds the bundle first; a lone pytest run builds it here, or skips saying why."""
    if DIST.exists():
        return
    node = shutil.which("node")
    if node is None or not (ROOT / "node_modules" / "@lwc" / "rollup-plugin").exists():
        pytest.skip("the record page preview is not built and node_modules is missing: `make preview`")
    subprocess.run([node, str(ROOT / "scripts" / "build-preview.mjs")], check=True, cwd=ROOT, timeout=300)


def spki_sha256(cert_pem: bytes) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(cert_pem)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@contextlib.contextmanager
def org_browser(emulator) -> Iterator:
    """Chromium accepting the emulator's certificate only (its server key), every other site verified as usual."""
    from playwright.sync_api import sync_playwright

    spki = spki_sha256(Path(emulator.cert_paths.cert).read_bytes())
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=CHROMIUM_ARGS + [f"--ignore-certificate-errors-spki-list={spki}"])
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US",
                                          timezone_id="UTC")
            yield context
        finally:
            browser.close()


def sign_in(page, emulator, path: str) -> None:
    """Open a record page; the org asks for a sign-in first and then lands on the page."""
    page.goto(emulator.base_url + path)
    page.fill("#username", SF_ADMIN[0])
    page.fill("#password", SF_ADMIN[1])
    page.click("#Login")
    page.wait_for_url("**" + path)


def component_text(page, selector: str) -> str:
    """Text of an element inside the mounted component (synthetic shadow: reachable from the document)."""
    return page.locator(selector).first.inner_text().strip()


def axe_violations(page, impacts: tuple[str, ...] = ("serious", "critical")) -> list[dict]:
    """axe-core over the page, evaluated through the DevTools protocol: the page's Content-Security-Policy (scripts
    only from the org) stays in force, where an injected <script> tag would be refused."""
    from tests.browser_support import AXE

    page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
    return [{"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]}
            for v in result if v.get("impact") in impacts]
