"""Ids are version-7 UUIDs (RFC 9562) in the canonical text form: time-ordered, with 74 random bits."""

import time
import uuid

from refstage.services.runtime import new_id


def test_new_ids_are_canonical_version_7_uuids_with_every_variant_digit():
    ids = [new_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text  # lowercase, hyphens where uuid puts them
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert {text[19] for text in ids} == set("89ab")
    # The random digits are spread over all sixteen values.
    assert {text[-1] for text in ids} == set("0123456789abcdef")
    assert {text[15] for text in ids} == set("0123456789abcdef")


def test_the_first_48_bits_are_the_unix_time_in_milliseconds():
    before = time.time_ns() // 1_000_000
    text = new_id()
    after = time.time_ns() // 1_000_000
    assert before <= uuid.UUID(text).int >> 80 <= after


def test_ids_made_later_sort_later():
    first = new_id()
    time.sleep(0.002)
    second = new_id()
    assert first < second  # as text, as the databases' indexes order them
