"""The study server's answers: experiment-server 0.3.9's content types and Tornado's error pages."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import Response

__all__ = ["HTML", "JSON", "answer", "tornado_page"]

HTML = "text/html; charset=UTF-8"  # Tornado's default content type, which 0.3.9 sends for its text answers.
JSON = "application/json; charset=UTF-8"
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    413: "Payload Too Large",
    500: "Internal Server Error",
}


def answer(status: int, body: str, content_type: str = HTML, headers: Mapping[str, str] | None = None) -> Response:
    """An answer with exactly this body and content type."""
    return Response(body, status, headers, content_type)


def tornado_page(status: int) -> Response:
    """Tornado's error page (0.3.9's answer to a path or method it has no handler for)."""
    reason = _REASONS.get(status, "Error")
    return answer(status, f"<html><title>{status}: {reason}</title><body>{status}: {reason}</body></html>")
