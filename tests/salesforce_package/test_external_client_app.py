"""The External Client App bundle a self-hoster deploys: rendered, schema-valid, refusing bad input, and written by
the CLI."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from refstage.adapters.crm.salesforce import eca_bundle
from refstage.services.connection_cli import connection
from refstage.adapters.crm.salesforce.metadata_schema import validate_xml


def test_bundle_carries_this_installations_callback_and_matches_the_schema():
    files = eca_bundle.render_files(base_url="https://refer.acme.example/", contact_email="ops@acme.example")
    assert set(files) == set(eca_bundle.TEMPLATE_FILES)
    glbl = files["extlClntAppGlobalOauthSets/Refstage_glbloauth.ecaGlblOauth"]
    assert "<callbackUrl>https://refer.acme.example/salesforce/oauth/callback</callbackUrl>" in glbl
    assert "<isPkceRequired>true</isPkceRequired>" in glbl  # the backend always sends a PKCE verifier
    assert "<consumerSecret>" not in glbl and "<consumerKey>" not in glbl  # Salesforce issues them
    scopes = files["extlClntAppOauthSettings/Refstage_oauth.ecaOauth"]
    assert "Api, RefreshToken" in scopes
    for name, text in files.items():
        assert validate_xml(text, name) == [], name
    every = "".join(files.values())
    assert "{{" not in every and "example.com" not in every


def test_values_are_escaped_and_bad_input_refused():
    files = eca_bundle.render_files(base_url="https://refer.acme.example", contact_email="ops@acme.example",
                                    callback_url="https://refer.acme.example/cb?a=1&b=2")
    assert "<callbackUrl>https://refer.acme.example/cb?a=1&amp;b=2</callbackUrl>" in \
        files["extlClntAppGlobalOauthSets/Refstage_glbloauth.ecaGlblOauth"]
    for kwargs in ({"base_url": "http://refer.acme.example", "contact_email": "ops@acme.example"},
                   {"base_url": "https://u:p@refer.acme.example", "contact_email": "ops@acme.example"},
                   {"base_url": "https://refer.acme.example", "contact_email": "not an email"}):
        with pytest.raises(ValueError):
            eca_bundle.render_files(**kwargs)


def test_cli_writes_the_bundle_for_sf_project_deploy(tmp_path):
    out = tmp_path / "eca"
    result = CliRunner().invoke(connection, ["external-client-app", "--output", str(out), "--contact-email",
                                             "ops@acme.example", "--base-url", "https://refer.acme.example"])
    assert result.exit_code == 0, result.output
    assert "sf project deploy start --metadata-dir" in result.output
    assert (out / "package.xml").exists() and (out / "externalClientApps/Refstage.eca").exists()
    again = CliRunner().invoke(connection, ["external-client-app", "--output", str(out), "--contact-email",
                                            "ops@acme.example", "--base-url", "https://refer.acme.example"])
    assert again.exit_code != 0 and "not empty" in again.output
