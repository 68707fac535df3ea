"""Checks on text people type that ends up in the CRM, an email or a page."""

from __future__ import annotations

import unicodedata

# Bidirectional overrides and isolates: they make text display in another order than it is stored.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def unsafe_character(text: str) -> str | None:
    """What is wrong with `text`: control characters (NUL, escape, DEL, C1), lone surrogates (not encodable:
    the database and the CRM refuse them), line and paragraph separators, bidirectional overrides.
    None when it is fine."""
    if text.isascii():
        return "contains control characters" if any(ch < " " or ch == "\x7f" for ch in text) else None
    for ch in text:
        category = unicodedata.category(ch)
        if category == "Cs":
            return "contains an invalid character (a lone surrogate)"
        if category in ("Cc", "Zl", "Zp") or ch in _BIDI_CONTROLS:
            return "contains control characters"
    return None
