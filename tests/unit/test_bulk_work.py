"""services.runtime.bulk_work: fewer collections while a sync runs, everything restored after the last one."""

import gc
import threading

from refstage.services.runtime import BULK_GC_THRESHOLD, bulk_work


def test_thresholds_and_freeze_are_restored_after_nested_and_concurrent_use():
    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    inside: list[tuple] = []
    with bulk_work():
        assert gc.get_threshold()[0] == max(BULK_GC_THRESHOLD, before[0])
        assert gc.get_freeze_count() > 0  # the heap that existed at the start is out of the collector's walk
        done = threading.Event()

        def other_sync():
            with bulk_work():
                inside.append(gc.get_threshold())
            done.set()

        threading.Thread(target=other_sync).start()
        assert done.wait(10)
        assert gc.get_threshold()[0] == max(BULK_GC_THRESHOLD, before[0])  # the other sync's end restored nothing
        assert gc.get_freeze_count() > 0
    assert inside and inside[0][0] == max(BULK_GC_THRESHOLD, before[0])
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_an_error_inside_still_restores():
    before = gc.get_threshold()
    try:
        with bulk_work():
            raise RuntimeError("the sync failed")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
