"""Vonage signed webhooks: `Authorization: Bearer <JWT>`, HS256 with the account's signature
secret, whose `payload_hash` claim is the hex SHA-256 of the request body and whose `iat` is
when it was sent (we accept 5 minutes either way, against replays).

PyJWT verifies the HMAC (in constant time); the hash is compared with `hmac.compare_digest`.
The SDK's own `vonage_jwt.verify_signature` is this same PyJWT call without the claims, so the
claims check needs PyJWT directly anyway.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

import jwt

TOLERANCE_S = 300


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None) -> bool:
    scheme, _, token = headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    try:
        claims = jwt.decode(
            token.strip(), secret, algorithms=["HS256"], options={"verify_iat": False}
        )
    except jwt.PyJWTError:
        return False
    issued = claims.get("iat")
    now = time.time() if now is None else now
    if not isinstance(issued, int | float) or abs(now - issued) > TOLERANCE_S:
        return False
    given = claims.get("payload_hash")
    if given is None:
        return not body  # a webhook without a body has nothing to hash
    expected = hashlib.sha256(body).hexdigest()
    return isinstance(given, str) and hmac.compare_digest(expected, given.lower())
