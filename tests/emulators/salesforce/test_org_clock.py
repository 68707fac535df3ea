"""The org has one clock: the HTTP Date header and SystemModstamp both follow it, also when advanced."""

import email.utils

import requests


def test_date_header_follows_the_org_clock(emu):
    emu.control.advance_clock(3 * 3600)
    r = requests.get(f"{emu.base_url}/services/data/", timeout=10)
    header = email.utils.parsedate_to_datetime(r.headers["Date"])
    assert r.headers["Date"].count("GMT") == 1  # one Date header, not the server's plus ours
    assert abs((header - emu.org.clock.now()).total_seconds()) < 5
