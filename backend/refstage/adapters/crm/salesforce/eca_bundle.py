"""The External Client App a self-hosted Refstage signs in as (Connected Apps can no longer be created
since Spring '26). Renders the metadata-format bundle in `external_client_app/` with this installation's
callback URL and contact, checked against the v65 schema; the admin deploys it with
`sf project deploy start --metadata-dir <dir> --target-org <admin username>`.

The callback URL differs for every installation, which is why the app is not in the package."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from refstage.adapters.crm.salesforce.metadata_schema import schema_errors_of_files

TEMPLATE_FILES = (
    "package.xml",
    "externalClientApps/Refstage.eca",
    "extlClntAppGlobalOauthSets/Refstage_glbloauth.ecaGlblOauth",
    "extlClntAppOauthSettings/Refstage_oauth.ecaOauth",
    "extlClntAppOauthPolicies/Refstage_oauthPlcy.ecaOauthPlcy",
)
CALLBACK_PATH = "/salesforce/oauth/callback"


def _https(url: str, what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.username or parts.password or parts.fragment:
        raise ValueError(f"the {what} must be an https:// URL without credentials or fragment")
    return url


def render_files(*, base_url: str, contact_email: str, callback_url: str | None = None) -> dict[str, str]:
    base = _https(base_url.rstrip("/"), "Refstage base URL")
    callback = _https(callback_url or f"{base}{CALLBACK_PATH}", "callback URL")
    if "@" not in contact_email or any(c.isspace() for c in contact_email) or len(contact_email) > 254:
        raise ValueError("the contact email must be an email address")
    values = {"base_url": escape(base), "callback_url": escape(callback), "contact_email": escape(contact_email)}
    files = {}
    root = resources.files("refstage.adapters.crm.salesforce").joinpath("external_client_app")
    for name in TEMPLATE_FILES:
        text = root.joinpath(name).read_text("utf-8")
        for key, value in values.items():
            text = text.replace("{{" + key + "}}", value)
        files[name] = text
    # .eca* files are XML too: check them all against the schema before anyone deploys them
    errors = [e for e in schema_errors_of_files({f"{n}.xml": t for n, t in files.items()})]
    if errors:
        raise ValueError("the External Client App bundle does not match the v65 schema: " + "; ".join(errors[:5]))
    return files


def write_bundle(output: Path, **kwargs: str) -> list[Path]:
    """Writes the bundle into `output` (created; must be empty) and returns the files written."""
    files = render_files(**kwargs)
    output.mkdir(parents=True, exist_ok=True)
    if any(output.iterdir()):
        raise ValueError(f"{output} is not empty")
    written = []
    for name, text in files.items():
        path = output / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
