"""The allow-lists and address checks behind "no secret or request to a host a user typed"."""

from __future__ import annotations

import ipaddress

import pytest
from cryptography.fernet import Fernet

from refstage.adapters.outbound import address_problem, check_webhook_url, TargetRefused
from refstage.config import ConfigError, load_settings
from refstage.domain.hosts import PIPEDRIVE_HOSTS, SALESFORCE_HOSTS, HostNotAllowed, HostPolicy, parse_host_patterns

SALESFORCE = HostPolicy("Salesforce", SALESFORCE_HOSTS)


@pytest.mark.parametrize("url, origin", [
    ("https://login.salesforce.com", "https://login.salesforce.com"),
    ("https://TEST.salesforce.com/", "https://test.salesforce.com"),
    ("https://acme.my.salesforce.com:443/services", "https://acme.my.salesforce.com"),
    ("https://acme--uat.sandbox.my.salesforce.com", "https://acme--uat.sandbox.my.salesforce.com"),
    ("https://acme-dev-ed.develop.my.salesforce.com", "https://acme-dev-ed.develop.my.salesforce.com"),
    ("https://x.scratch.my.salesforce.com", "https://x.scratch.my.salesforce.com"),
])
def test_salesforce_hosts_allowed(url, origin):
    assert SALESFORCE.origin(url) == origin


@pytest.mark.parametrize("url", [
    "http://login.salesforce.com", "https://login.salesforce.com:8443", "https://user@login.salesforce.com",
    "https://my.salesforce.com", "https://a.b.my.salesforce.com", "https://acme.my.salesforce.com.evil.test",
    "https://evilsalesforce.com", "https://127.0.0.1:8701", "https://localhost", "https://[::1]:8701",
    "https://169.254.169.254", "https://-x.my.salesforce.com", "", "not a url", "https://[zz]",
])
def test_other_hosts_refused(url):
    with pytest.raises(HostNotAllowed):
        SALESFORCE.origin(url)


def test_loopback_only_when_allowed_and_any_port():
    dev = HostPolicy("Salesforce", SALESFORCE_HOSTS, allow_loopback=True)
    assert dev.origin("https://127.0.0.1:8701/x") == "https://127.0.0.1:8701"
    assert dev.origin("https://localhost:9") == "https://localhost:9"
    assert dev.origin("https://[::1]:8701") == "https://[::1]:8701"
    with pytest.raises(HostNotAllowed):
        dev.origin("https://10.0.0.1:8701")
    with pytest.raises(HostNotAllowed):
        dev.same_origin("https://127.0.0.1:8702/token", "https://127.0.0.1:8701")


def test_pipedrive_and_configured_patterns():
    pipedrive = HostPolicy("Pipedrive", PIPEDRIVE_HOSTS)
    assert pipedrive.origin("https://acme.pipedrive.com") == "https://acme.pipedrive.com"
    assert pipedrive.allows("https://oauth.pipedrive.com/oauth/token")
    assert not pipedrive.allows("https://pipedrive.com.evil.test") and not pipedrive.allows("https://a.b.pipedrive.com")
    extra = parse_host_patterns("gov.example.mil, *.login.example.org")
    policy = HostPolicy("Salesforce", SALESFORCE_HOSTS + extra)
    assert policy.allows("https://gov.example.mil") and policy.allows("https://x.login.example.org")
    with pytest.raises(ValueError):
        parse_host_patterns("https://not-a-pattern.test/")


def _env(**extra):
    return {"REFSTAGE_ENV": "production", "SECRET_KEY": "s" * 40, "REFSTAGE_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "DATABASE_URL": "sqlite:///:memory:", **extra}


def test_development_allowances_are_refused_in_production():
    for name in ("REFSTAGE_ALLOW_LOOPBACK_CRM_HOSTS", "REFSTAGE_ALLOW_PRIVATE_WEBHOOK_TARGETS"):
        with pytest.raises(ConfigError):
            load_settings(_env(**{name: "1"}))
    settings = load_settings(_env(REFSTAGE_SALESFORCE_LOGIN_HOSTS="acme.example.mil"))
    assert settings.salesforce_login_hosts == ("acme.example.mil",) and not settings.allow_loopback_crm_hosts


def test_development_allowances_in_development(tmp_path):
    settings = load_settings({"REFSTAGE_INSTANCE_DIR": str(tmp_path), "REFSTAGE_ALLOW_LOOPBACK_CRM_HOSTS": "yes",
                              "REFSTAGE_ALLOW_PRIVATE_WEBHOOK_TARGETS": "1"})
    assert settings.allow_loopback_crm_hosts and settings.allow_private_webhook_targets
    with pytest.raises(ConfigError):
        load_settings({"REFSTAGE_INSTANCE_DIR": str(tmp_path), "REFSTAGE_ALLOW_LOOPBACK_CRM_HOSTS": "maybe"})


@pytest.mark.parametrize("address, problem", [
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("::ffff:127.0.0.1", "loopback"), ("10.1.2.3", "private"),
    ("192.168.0.1", "private"), ("172.31.0.1", "private"), ("100.64.0.1", "non-public"), ("fd12::1", "private"),
    ("169.254.169.254", "metadata"), ("fd00:ec2::254", "metadata"), ("::ffff:169.254.169.254", "metadata"),
    ("fe80::1", "link-local"), ("169.254.1.1", "link-local"), ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"), ("64:ff9b::7f00:1", "loopback"), ("2002:7f00:1::", "loopback"),
    ("93.184.216.34", None), ("2606:4700::1111", None),
])
def test_address_problems(address, problem):
    found = address_problem(ipaddress.ip_address(address))
    assert (found is None) if problem is None else (problem in found), found


def test_the_development_allowance_never_opens_metadata_or_multicast():
    assert address_problem(ipaddress.ip_address("127.0.0.1"), allow_private=True) is None
    assert address_problem(ipaddress.ip_address("10.0.0.1"), allow_private=True) is None
    for address in ("169.254.169.254", "224.0.0.1", "0.0.0.0"):
        assert address_problem(ipaddress.ip_address(address), allow_private=True)


def test_webhook_urls_checked_at_creation():
    def resolver(answer):
        return lambda host, port, **kw: [(2, 1, 6, "", (answer, port))]

    check_webhook_url("https://hooks.example.test/x", resolver=resolver("93.184.216.34"))
    with pytest.raises(TargetRefused):
        check_webhook_url("https://hooks.example.test/x", resolver=resolver("10.0.0.5"))

    def unresolvable(host, port, **kw):
        import socket

        raise socket.gaierror("no such name")

    check_webhook_url("https://not-yet.example.test/x", resolver=unresolvable)  # checked again when sent
