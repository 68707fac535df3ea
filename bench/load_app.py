"""The app under load in benchmark (e): the real app factory, with rate limits raised so the load
generator (one IP) is not throttled — the limiter still runs and counts — and no minimum fill time."""

import os


def create():
    from refstage.web.app import create_app

    return create_app(test_config={
        "REFSTAGE_RATE_LIMITS": {scope: (10**9, 60) for scope in (
            "view_ip", "referral_ip", "referral_code", "join_ip", "status_ip", "status_email")},
        "REFSTAGE_MIN_FILL_SECONDS": 0,
    }) if os.environ.get("REFSTAGE_BENCH") else None
