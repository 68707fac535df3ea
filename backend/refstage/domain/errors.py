"""Domain errors. Every refusal of the domain is one of these, never a silent pass."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""


class InvalidTransition(DomainError):
    def __init__(self, entity: str, current: str, target: str):
        super().__init__(f"{entity} cannot move from {current!r} to {target!r}")
        self.entity = entity
        self.current = current
        self.target = target


class RuleError(DomainError):
    """A qualification or reward rule is malformed. `errors` names the bad parts."""

    def __init__(self, message: str, errors: dict | list | None = None):
        super().__init__(message)
        self.errors = errors if errors is not None else {}


class InvalidInput(DomainError):
    """Bad input from a person or a system; `errors` maps field names to messages."""

    def __init__(self, errors: dict[str, list[str]] | dict[str, str]):
        self.errors = {k: (v if isinstance(v, list) else [v]) for k, v in errors.items()}
        super().__init__("; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in self.errors.items()))


class NotFound(DomainError):
    pass


class Conflict(DomainError):
    pass
