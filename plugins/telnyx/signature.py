"""Telnyx webhook signatures: Ed25519 over `{telnyx-timestamp}|{raw body}`, with the public key
from the Mission Control portal, and a timestamp no more than 5 minutes off (replays).

The check is the official SDK's (`telnyx.lib.webhook_verification`): an Ed25519 verification
has no secret to leak through timing, and the SDK owns the tolerance and header names.
"""

from __future__ import annotations

from collections.abc import Mapping

SIGNATURE_HEADER = "telnyx-signature-ed25519"
TIMESTAMP_HEADER = "telnyx-timestamp"


def verify(public_key: str, headers: Mapping[str, str], body: bytes) -> bool:
    from telnyx.lib.webhook_verification import WebhookVerificationError, verify_webhook_signature

    try:
        verify_webhook_signature(body, headers, public_key)
    except (WebhookVerificationError, ValueError):  # ValueError: a body that is not UTF-8
        return False
    return True
