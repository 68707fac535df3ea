"""The console command serves the same emulator and prints what a client needs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import requests


def test_cli_serves_over_https(tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from refstage.cli import main; main()", "emulator", "pipedrive",
         "--port", "0", "--cert-dir", str(tmp_path), "--api-token", "cli-token", "--seed", "empty"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        lines = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(lines) < 3:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
        text = "".join(lines)
        url = re.search(r"(https://127\.0\.0\.1:\d+)", text).group(1)
        assert "cli-token" in text and str(tmp_path / "ca.pem") in text
        r = requests.get(url + "/api/v2/pipelines", headers={"x-api-token": "cli-token"},
                         verify=str(tmp_path / "ca.pem"), timeout=5)
        assert r.status_code == 200 and r.json()["data"][0]["name"] == "Referrals"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()
