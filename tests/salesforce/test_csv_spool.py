"""CsvSpool: the CSV an ingest job uploads. Salesforce reads an empty cell as "leave as is" and #N/A as "set null"."""

import csv
import io

from refstage.adapters.crm.salesforce.bulk import CsvSpool


def test_cells_say_null_keep_and_booleans_as_bulk_api_reads_them():
    spool = CsvSpool()
    try:
        spool.add({"RefstageId__c": "r1", "Name": 'Fred "F" O\'Brien, Jr.', "Phone": None, "Active__c": True, "Amount__c": 12.5})
        spool.add({"RefstageId__c": "r2", "Name": "line\nbreak", "Active__c": False, "Amount__c": 0, "Extra": "ignored"})
        rows = list(csv.reader(io.StringIO(spool.payload().decode("utf-8"))))
    finally:
        spool.close()
    assert spool.rows == 2
    assert rows == [
        ["RefstageId__c", "Name", "Phone", "Active__c", "Amount__c"],
        ["r1", 'Fred "F" O\'Brien, Jr.', "#N/A", "true", "12.5"],
        ["r2", "line\nbreak", "", "false", "0"],  # no Phone key: empty, so Salesforce keeps the stored value
    ]


def test_rows_given_as_values_are_written_as_rows_given_as_dicts():
    columns = ("RefstageId__c", "Name", "Phone", "Active__c", "Amount__c")
    by_dict, by_values = CsvSpool(), CsvSpool()
    try:
        for row in ({"RefstageId__c": "r1", "Name": 'Fred "F", Jr.', "Phone": None, "Active__c": True, "Amount__c": 12.5},
                    {"RefstageId__c": "r2", "Name": "line\nbreak", "Phone": "1", "Active__c": False, "Amount__c": 1.0}):
            by_dict.add(row)
            by_values.add_values(columns, [row[c] for c in columns])
        assert by_values.payload() == by_dict.payload()
        assert by_values.rows == 2 and by_values.columns == list(columns)
        try:
            by_values.add_values(("RefstageId__c", "Name"), ["r3", "x"])
        except ValueError:
            pass
        else:
            raise AssertionError("a row of other columns was written")
    finally:
        by_dict.close()
        by_values.close()
