"""The ceiling: a bare Flask endpoint that reads the body and answers 200, served by the same
gunicorn settings as Clawback, so intake can be reported as a ratio of it."""

from flask import Flask, request


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post("/webhooks/shopify")
    def receive() -> tuple[str, int]:
        request.get_data()
        return "", 200

    return app
