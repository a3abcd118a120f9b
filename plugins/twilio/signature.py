"""Twilio's request signature (`X-Twilio-Signature`), per Twilio's published algorithm.

Twilio signs the exact URL it requested followed by every POST parameter as name+value, names in
sorted order; the signature is base64(HMAC-SHA1(auth token, that string)). Twilio is inconsistent
about whether the URL it signed carried the default port (`https://host:443/…` vs
`https://host/…`), so, like Twilio's own helper libraries, both spellings are tried. The compare is
constant-time so a forger learns nothing from response timing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, urlsplit, urlunsplit

Params = Mapping[str, str] | Iterable[tuple[str, str]]

_DEFAULT_PORTS = {"https": 443, "wss": 443, "http": 80, "ws": 80}


def compute_signature(auth_token: str, url: str, params: Params = ()) -> str:
    pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
    data = url
    by_name: dict[str, set[str]] = {}
    for name, value in pairs:
        by_name.setdefault(name, set()).add(value)
    for name in sorted(by_name):
        for value in sorted(by_name[name]):
            data += name + value
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def url_variants(url: str) -> list[str]:
    """`url` with its default port added and removed (the set Twilio may have signed)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = userinfo + "@" if userinfo else ""
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    without = urlunsplit(parts._replace(netloc=prefix + host))
    variants = [url, without]
    if port is not None:
        variants.append(urlunsplit(parts._replace(netloc=f"{prefix}{host}:{port}")))
    return list(dict.fromkeys(variants))


def validate_signature(
    auth_token: str, signature: str | None, url: str, params: Params = (), body: bytes = b""
) -> bool:
    """Whether `signature` is Twilio's for this request.

    A JSON-bodied webhook carries `bodySHA256` in its query string instead of form parameters:
    then the body's SHA-256 must match too, and the signature covers the URL alone.
    """
    if not auth_token or not signature:
        return False
    query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    if "bodySHA256" in query:
        body_ok = hmac.compare_digest(hashlib.sha256(body).hexdigest(), query["bodySHA256"])
        params = ()
    else:
        body_ok = True
    given = signature.encode("utf-8", "replace")
    ok = False
    for candidate in url_variants(url):
        # every variant is checked, so timing does not tell which spelling matched
        expected = compute_signature(auth_token, candidate, params).encode("ascii")
        ok |= hmac.compare_digest(expected, given)
    return ok and body_ok
