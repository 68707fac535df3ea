"""Flask's signed-cookie sessions, minus the work a request without a session cookie does not need."""

from __future__ import annotations

from flask.sessions import SecureCookieSessionInterface


class LazySessionInterface(SecureCookieSessionInterface):
    """Flask builds the cookie signer on every request, cookie or not; most requests (public pages, the
    API, push receivers) carry none, so they get an empty session without it. Same cookies otherwise."""

    def open_session(self, app, request):
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)
