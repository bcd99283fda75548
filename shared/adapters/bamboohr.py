"""BambooHR's webhook signature, as BambooHR documents it (documentation.bamboohr.com/docs/webhooks, "Security"):
``X-BambooHR-Signature`` is the hex HMAC-SHA256 of the raw body followed by the ``X-BambooHR-Timestamp`` header's
value, keyed with the webhook's private key. The timestamp is taken in Unix seconds or ISO 8601 (BambooHR's payloads
write times as ``2026-01-31T18:42:00+0000``); one more than 5 minutes off is refused, as a replay."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Mapping

from shared.service.hr.events import SignatureMismatch, SignatureRefused

TOLERANCE = dt.timedelta(minutes=5)
MISSING = (
    "the X-BambooHR-Signature and X-BambooHR-Timestamp headers are required (BambooHR signs every delivery)"
)
MISMATCH = "X-BambooHR-Signature does not match the source's private key"
_HEX = re.compile(r"^[0-9a-fA-F]{64}$")


def parse_timestamp(value: str) -> dt.datetime:
    """Unix seconds, or an ISO 8601 time with an offset (``+0000`` or ``+00:00``); ``ValueError`` otherwise."""
    text = value.strip()
    if re.fullmatch(r"[0-9]{1,12}", text):
        return dt.datetime.fromtimestamp(int(text), dt.UTC)
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9:.]+(Z|[+-][0-9]{2}:?[0-9]{2})", text):
        raise ValueError("not a time")
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("no offset")
    return parsed.astimezone(dt.UTC)


def sign(key: str, body: bytes, timestamp: str) -> str:
    return hmac.new(key.encode("utf-8"), body + timestamp.encode("utf-8"), hashlib.sha256).hexdigest()


def verify_bamboohr(key: str, body: bytes, headers: Mapping[str, str], now: dt.datetime) -> dt.datetime:
    """``BambooVerifier``: when the delivery was signed, if ``key`` signed it within 5 minutes of ``now``."""
    signature = headers.get("x-bamboohr-signature", "").strip()
    timestamp = headers.get("x-bamboohr-timestamp", "")
    if not signature or not timestamp:
        raise SignatureRefused(MISSING)
    try:
        sent = parse_timestamp(timestamp)
    except (ValueError, OverflowError, OSError):
        raise SignatureRefused(
            "X-BambooHR-Timestamp must be the time of sending (Unix seconds or ISO 8601 with an offset)"
        ) from None
    if now - sent > TOLERANCE:
        raise SignatureRefused(
            "X-BambooHR-Timestamp is more than 5 minutes old: a delivery is signed when it is sent"
        )
    if sent - now > TOLERANCE:
        raise SignatureRefused(
            "X-BambooHR-Timestamp is more than 5 minutes in the future: check the sender's clock"
        )
    expected = sign(key, body, timestamp)
    if not _HEX.match(signature) or not hmac.compare_digest(expected, signature.lower()):
        raise SignatureMismatch(MISMATCH)
    return sent
