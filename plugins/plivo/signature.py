"""Plivo's V3 request signature: `X-Plivo-Signature-V3` is base64 HMAC-SHA256, keyed with the
auth token, of the URL (with the POST parameters sorted and appended, or the sorted query of a
GET) followed by `.` and the `X-Plivo-Signature-V3-Nonce` header. The header may carry several
comma-separated signatures (one per auth token during a rotation).

The string that is signed is built by the official SDK (`plivo.utils.signature_v3`), but the
comparison is ours: the SDK's `validate_v3_signature` compares with `in`, which is not constant
time, so each candidate is checked with `hmac.compare_digest` (and all of them, always).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping

SIGNATURE_HEADER = "X-Plivo-Signature-V3"
NONCE_HEADER = "X-Plivo-Signature-V3-Nonce"


def expected_signature(
    auth_token: str, url: str, nonce: str, params: Mapping[str, object]
) -> bytes:
    from plivo.utils.signature_v3 import construct_get_url, construct_post_url, get_signature_v3

    if params:
        base = construct_post_url(url, dict(params)).decode("utf-8")
    else:
        base = construct_get_url(url, {}).decode("utf-8")
    return get_signature_v3(auth_token.encode("utf-8"), base, nonce)


def verify(
    auth_token: str, url: str, headers: Mapping[str, str], params: Iterable[tuple[str, str]]
) -> bool:
    signature, nonce = headers.get(SIGNATURE_HEADER), headers.get(NONCE_HEADER)
    if not (auth_token and signature and nonce):
        return False
    form: dict[str, object] = {}
    for key, value in params:
        if key in form:  # a repeated field is signed as a sorted list of its values
            previous = form[key]
            form[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            form[key] = value
    expected = expected_signature(auth_token, url, nonce, form)
    ok = False
    for candidate in signature.encode("utf-8", "replace").split(b","):
        ok |= hmac.compare_digest(expected, candidate.strip())
    return ok
