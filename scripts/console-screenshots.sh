#!/bin/sh
# Screenshots of every admin console page at 1280 px and 390 px into docs/admin-console/ (JPEG),
# for docs/admin-console.md. Needs Debian's Chromium (/usr/bin/chromium) and the test extras
# (`pip install -e '.[test]'`). Run from the repository root:  sh scripts/console-screenshots.sh
set -eu
cd "$(dirname "$0")/.."
OUT="${1:-docs/admin-console}"
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
REFSTAGE_SCREENSHOTS="$(pwd)/$OUT" "$PY" -m pytest tests/admin/test_screenshots.py -q -p no:cacheprovider
echo "screenshots in $OUT"
