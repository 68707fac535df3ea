"""Ids are version-4 UUIDs in the canonical text form, as str(uuid.uuid4()) wrote them before."""

import uuid

from refstage.services.runtime import new_id


def test_new_ids_are_canonical_random_uuids_with_every_variant_digit():
    ids = [new_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text  # lowercase, hyphens where uuid puts them
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
    assert {text[19] for text in ids} == set("89ab")
    # The random digits are spread over all sixteen values (the fixed version digit excepted).
    assert {text[0] for text in ids} == set("0123456789abcdef")
