"""Refstage: referral operations on top of the CRM a revenue team already trusts."""

__version__ = "0.1.0"
