"""HTML error pages for the console (the app-wide handlers answer JSON for the API)."""

from __future__ import annotations

from flask import render_template
from werkzeug.exceptions import HTTPException

from refstage.domain.errors import DomainError, InvalidTransition, NotFound
from refstage.web.admin import bp

TEXT = {
    400: ("Bad request", "This form has expired or was incomplete. Go back, reload the page and try again."),
    403: ("Not allowed", "Your role does not allow this page or action. Ask an admin of your workspace."),
    404: ("Not found", "There is nothing here, or it belongs to another workspace."),
    405: ("Not allowed", "This address does not take that kind of request."),
    409: ("Conflict", "Someone changed this at the same time. Reload and try again."),
}


def _page(status: int, detail: str | None = None):
    title, text = TEXT.get(status, ("Error", "Something went wrong."))
    return render_template("admin/error.html", status=status, title=title, text=detail or text), status


@bp.errorhandler(NotFound)
def _not_found(exc: NotFound):
    return _page(404)


@bp.errorhandler(InvalidTransition)
def _transition(exc: InvalidTransition):
    return _page(409, str(exc))


@bp.errorhandler(HTTPException)
def _http(exc: HTTPException):
    status = exc.code or 500
    detail = exc.description if status == 400 else None
    return _page(status, detail)


@bp.errorhandler(DomainError)
def _domain(exc: DomainError):
    """A refusal no view turned into a form error still reads as a page, never as the API's JSON."""
    return _page(400, str(exc))
