"""How a Bulk API 2.0 job is polled: few calls for a long job, and no grown gap waited out once every row is
processed (the job is then only writing its results)."""

import pytest

from refstage.adapters.crm.salesforce import bulk
from refstage.services.ports import CrmError


class Jobs:
    """A job whose state is read from a script, one entry per poll."""

    def __init__(self, *infos):
        self.infos = list(infos)
        self.calls = 0

    def get_job(self, job_id, is_query):
        self.calls += 1
        return self.infos.pop(0)


def _wait(jobs, expected, running_for=0.0):
    slept = []
    info = bulk._wait(jobs, "750x", False, 0.5, sleep=slept.append, expected=expected, running_for=running_for)
    return info, slept


def test_once_every_row_is_processed_the_next_poll_comes_after_the_base_interval():
    jobs = Jobs({"state": "InProgress", "numberRecordsProcessed": 0},
                {"state": "InProgress", "numberRecordsProcessed": 0},
                {"state": "InProgress", "numberRecordsProcessed": 0},
                {"state": "InProgress", "numberRecordsProcessed": 200_000},
                {"state": "JobComplete", "numberRecordsProcessed": 200_000})
    info, slept = _wait(jobs, 200_000)
    assert info["state"] == "JobComplete"
    # Gaps grow while nothing is known (0.5, 0.75, 1.125, 1.6875), then drop back to 0.5 once all are processed.
    assert slept == [0.5, 0.75, 1.125, 1.6875, 0.5]


def test_a_job_that_stays_in_progress_after_processing_every_row_is_polled_at_growing_gaps_again():
    stuck = {"state": "InProgress", "numberRecordsProcessed": 10}
    jobs = Jobs(stuck, stuck, stuck, stuck, {"state": "JobComplete", "numberRecordsProcessed": 10})
    _, slept = _wait(jobs, 10)
    assert slept[:2] == [0.5, 0.5]
    assert slept[2:] == [0.75, 1.125, 1.6875]


def test_a_part_processed_job_is_polled_when_the_rest_is_projected_to_be_done():
    jobs = Jobs({"state": "InProgress", "numberRecordsProcessed": 1_000},
                {"state": "JobComplete", "numberRecordsProcessed": 10_000})
    _, slept = _wait(jobs, 10_000)
    # 1,000 rows took 0.5 s: 9,000 more are projected to take 4.5 s; poll 10 % after that, plus the base interval.
    assert slept == [0.5, pytest.approx(4.5 * 1.1 + 0.5)]


def test_the_projection_counts_the_time_the_job_ran_before_the_wait_began():
    # Closed 7.5 s before the wait began (the rewards were being spooled meanwhile): at the first poll, 8 s after
    # closing, 40,000 of 100,000 rows are done, so the other 60,000 are projected to take 12 s, not 0.75 s.
    jobs = Jobs({"state": "InProgress", "numberRecordsProcessed": 40_000},
                {"state": "JobComplete", "numberRecordsProcessed": 100_000})
    _, slept = _wait(jobs, 100_000, running_for=7.5)
    assert slept == [0.5, pytest.approx(12 * 1.1 + 0.5)]
    assert jobs.calls == 2


def test_the_api_counts_from_when_it_closed_the_job(monkeypatch):
    api = bulk.BulkApi(rest=None, sleep=lambda s: None)
    api._closed_at["750y"] = 100.0
    monkeypatch.setattr(bulk.time, "monotonic", lambda: 107.5)
    seen = {}
    monkeypatch.setattr(bulk, "_client", lambda rest, sobject: None)
    monkeypatch.setattr(bulk, "_wait", lambda *a, **kw: seen.update(kw) or {"state": "JobComplete"})
    api._wait_ingest("Referral__c", "750y", 10)
    assert seen["running_for"] == 7.5 and seen["expected"] == 10
    assert "750y" not in api._closed_at  # one entry per job, dropped once waited for


def test_a_failed_job_is_a_transient_error():
    with pytest.raises(CrmError) as caught:
        _wait(Jobs({"state": "Failed", "errorMessage": "InvalidBatch : bad header"}), 5)
    assert caught.value.transient and "bad header" in str(caught.value)
