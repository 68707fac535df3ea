"""Deal rules checked against the emulated company's dealFields and stages."""

from __future__ import annotations

import pytest

from refstage.domain.errors import InvalidInput
from refstage.services import programs
from tests.pipedrive.conftest import ADMIN, program_data


@pytest.mark.parametrize("rule, expected", [
    ("Deal.stage_id == 999", "999 is not one of its values"),
    ("Deal.value >= 'lots'", "is a number field"),
    ("Deal.no_such_field == 'x'", "Deal has no field 'no_such_field'"),
    ("Deal.status == 'wonn'", "'wonn' is not one of its values"),
])
def test_deal_rules_that_cannot_match_are_refused(pd_rt, connected, rule, expected):
    with pytest.raises(InvalidInput) as refused:
        programs.create_program(pd_rt, connected.tenant.id, {**program_data(connected.connection.id, slug="other"),
                                                             "rule": rule}, ADMIN)
    assert any(expected in m for m in refused.value.errors["rule"]), refused.value.errors


def test_a_fitting_deal_rule_saves(pd_rt, connected):
    saved = programs.create_program(pd_rt, connected.tenant.id, {**program_data(connected.connection.id, slug="fits"),
                                                                "rule": "Deal.stage_id in [3, 4] AND Deal.value >= 100"}, ADMIN)
    assert saved.rule.describe()
