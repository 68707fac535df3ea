"""Salesforce-shaped errors: ``[{"message", "errorCode", "fields"}]`` with an HTTP status."""

from __future__ import annotations


class SFError(Exception):
    def __init__(self, status: int, code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or []

    def body(self) -> list[dict]:
        return [{"message": self.message, "errorCode": self.code, "fields": self.fields}]

    def item(self) -> dict:
        return {"statusCode": self.code, "message": self.message, "fields": self.fields}


def not_found(msg: str = "The requested resource does not exist") -> SFError:
    return SFError(404, "NOT_FOUND", msg)


def invalid_session() -> SFError:
    return SFError(401, "INVALID_SESSION_ID", "Session expired or invalid")
