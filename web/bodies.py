"""Reading a request's body whole, chunked or not, within its limit."""

from __future__ import annotations

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request


def read_body(request: Request) -> bytes:
    """The whole raw body, or RequestEntityTooLarge when it is longer than the request's limit.

    A body with a Content-Length is werkzeug's to read (it refuses one over the limit). A chunked
    body has no length up front, and werkzeug's limit then stops reading at the limit without a
    word: the truncated body would fail its signature (a 401 for what is a 413). So a chunked body
    is read from the server's decoded input up to one byte past the limit. A broken chunk raises
    from the server's reader (gunicorn's InvalidChunkSize and the like): the caller answers 400."""
    limit = request.max_content_length
    if request.content_length is not None or limit is None or not request.environ.get("wsgi.input_terminated"):
        return request.get_data(cache=False)
    raw = request.environ["wsgi.input"].read(limit + 1)
    if len(raw) > limit:
        raise RequestEntityTooLarge()
    return bytes(raw)
