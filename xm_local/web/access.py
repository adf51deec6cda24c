"""Who may reach a server, and the bearer-token check its changing requests pass.

A server bound to a loopback address is reachable only from this machine; any other address needs an access
token (or an explicit opt-out), since anyone who can reach it could use it.
"""

from __future__ import annotations

import hmac
import ipaddress

from starlette.types import Scope

__all__ = ["bearer_authorized", "is_loopback", "needs_token"]


def is_loopback(host: str) -> bool:
    """True if ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def needs_token(host: str, token: str | None, insecure: bool) -> bool:
    """True if serving ``host`` this way would let anyone on the network in: not loopback, no token, not insecure."""
    return not is_loopback(host) and not token and not insecure


def bearer_authorized(scope: Scope, token: str | None) -> bool:
    """True if the request carries ``Authorization: Bearer <token>`` (always true without a token)."""
    if token is None:
        return True
    value = b""
    for name, header in scope["headers"]:
        if name == b"authorization":
            value = header
            break
    scheme, _, credentials = value.partition(b" ")
    if scheme.lower() != b"bearer":
        return False
    return hmac.compare_digest(credentials.strip(), token.encode())
