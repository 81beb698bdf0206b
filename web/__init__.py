"""The Flask application factory. Nothing is built at import time."""

from __future__ import annotations

from flask import Flask, Request, jsonify, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask.typing import ResponseReturnValue
from gunicorn.http.errors import ParseException

from app.config import Settings, load_settings
from web import admin, api, auth, devlogin, embedded, health, metrics, overview, webhooks, wordpress
from web.extensions import Services, init_db
from web.logs import init_logging


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, except that a request without a session cookie (every
    webhook, every API call) gets an empty session without building the cookie's signer first:
    Flask builds it on every request, and on the webhook path that was a tenth of the work."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        # No Cookie header at all (a webhook): no need to parse the cookies to know.
        if app.secret_key and (
            "HTTP_COOKIE" not in request.environ or not request.cookies.get(self.get_cookie_name(app))
        ):
            return self.session_class()
        return super().open_session(app, request)


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app for `settings` (read from the environment when not given)."""
    settings = settings.check() if settings else load_settings()
    app = Flask(__name__)
    app.session_interface = _SessionInterface()
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        CLAWBACK_ENV=settings.env,
        SESSION_COOKIE_SECURE=settings.app_url.startswith("https://"),
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
    )
    app.extensions["clawback"] = Services.from_settings(settings)
    init_db(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(wordpress.bp)
    app.register_blueprint(embedded.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(api.bp)
    if settings.dev_login and settings.env != "production":
        app.register_blueprint(devlogin.bp)
    if settings.env != "production":
        # A read-only look at the books for the demo and for development; the merchant's pages,
        # with authentication, are a separate blueprint.
        app.register_blueprint(overview.bp)
    init_logging()

    @app.before_request
    def refuse_nul() -> ResponseReturnValue | None:
        # No route accepts a NUL, and PostgreSQL refuses to store or compare one.
        if "\x00" in request.path:
            return jsonify(error="the path contains a NUL character"), 400
        for key, value in request.args.items(multi=True):
            if "\x00" in key or "\x00" in value:
                return jsonify(error=f"query parameter '{key.replace(chr(0), '')}' contains a NUL character"), 400
        return None

    # Plain webhook deliveries are answered before Flask (see WebhookIntake); the rest reach the route.
    app.wsgi_app = webhooks.WebhookIntake(app.wsgi_app, app.extensions["clawback"], settings.max_body_bytes)  # type: ignore[method-assign]

    @app.errorhandler(ParseException)
    def unreadable_body(exc: ParseException) -> ResponseReturnValue:
        # gunicorn's reader raises these when a body's transfer encoding is broken (a chunk size that
        # is not hex, a missing terminator), inside whatever reads the body first: the client's 400.
        return jsonify(error=f"the body could not be read ({type(exc).__name__}): check its transfer encoding"), 400

    @app.errorhandler(413)
    def too_large(_exc: Exception) -> ResponseReturnValue:
        return jsonify(error=webhooks.too_large(settings.max_body_bytes)), 413

    return app
