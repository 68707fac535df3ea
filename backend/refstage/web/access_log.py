"""gunicorn's access log without secrets: a Salesforce connection's push key is part of its Outbound
Message URL, so request lines and paths are redacted before they are written (`refstage serve` uses this
logger class)."""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from refstage.logs import redact_push_keys


class RedactingAccessLogger(Logger):
    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        atoms = super().atoms(resp, req, environ, request_time)
        for name in ("r", "U"):
            if isinstance(atoms.get(name), str):
                atoms[name] = redact_push_keys(atoms[name])
        for name in list(atoms):  # {raw_uri}e, {path_info}e and other environ atoms
            if isinstance(atoms[name], str) and "outbound-message/" in atoms[name]:
                atoms[name] = redact_push_keys(atoms[name])
        return atoms
