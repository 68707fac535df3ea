"""Screenshots of the rep's record pages for docs/install-salesforce.md ("What your reps will see").

``python -m refstage_devkit.emulators.salesforce.preview.screenshots [--out docs/images]`` starts an emulated org with the
records the Jest fixtures come from, signs in, and captures the Opportunity page (attributed and not) and the
Account page with the package's components, as built by ``make preview``. Needs Playwright and Debian's Chromium
(``make browser``).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import sys
import tempfile
from pathlib import Path

from ..server import SalesforceEmulator
from . import fixtures
from .pages import DIST

PAGES = [
    ("rep-view-opportunity.png", "/lightning/r/Opportunity/006000000000001AAA/view", '[data-id="reward"]'),
    ("rep-view-opportunity-empty.png", "/lightning/r/Opportunity/006000000000002AAA/view", '[data-id="empty"]'),
    ("rep-view-account.png", "/lightning/r/Account/001000000000001AAA/view", '[data-id="referral-row"]'),
]


def _spki(cert_pem: bytes) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    key = x509.load_pem_x509_certificate(cert_pem).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(fixtures.ROOT / "docs" / "images"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args(argv)
    if not (DIST / "preview.js").exists():
        print("the preview is not built: run `make preview` first", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as certs, SalesforceEmulator(port=0, seed="empty", cert_dir=certs) as emu:
        fixtures.load_showcase(emu.org)
        spki = _spki(Path(emu.cert_paths.cert).read_bytes())
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                f"--ignore-certificate-errors-spki-list={spki}"])
            page = browser.new_page(viewport={"width": 1280, "height": 860}, locale="en-US", timezone_id="UTC")
            page.goto(emu.base_url + PAGES[0][1])
            page.fill("#username", emu.org.admin_username)
            page.fill("#password", emu.org.admin_password)
            page.click("#Login")
            for name, path, ready in PAGES:
                page.goto(emu.base_url + path)
                page.wait_for_selector(ready)
                page.screenshot(path=str(out / name), full_page=True)
                print(f"wrote {out / name}")
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
