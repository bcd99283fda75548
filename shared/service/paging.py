"""Opaque list cursors: ``{"items": [...], "next": cursor}`` across every list Warden serves.

A cursor carries the storage's own continuation (Table Storage's next partition/row keys, a position in a
merge of partitions) and a short fingerprint of the query it belongs to, so a cursor replayed against other
filters is refused instead of silently skipping or repeating items.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from shared.domain.errors import Invalid

MAX_CURSOR_LENGTH = 4096


def _fingerprint(scope: str) -> str:
    return hashlib.sha256(scope.encode()).hexdigest()[:12]


def encode_cursor(scope: str, position: Any) -> str:
    raw = json.dumps({"q": _fingerprint(scope), "p": position}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(scope: str, cursor: str | None) -> Any:
    """The position in ``cursor`` (None for the first page); ``Invalid`` for a foreign or damaged cursor."""
    if cursor is None:
        return None
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise Invalid("cursor: too long; pass back the 'next' value of the previous page unchanged")
    try:
        body = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise Invalid("cursor: not a cursor Warden issued") from None
    if not isinstance(body, dict) or "p" not in body:
        raise Invalid("cursor: not a cursor Warden issued")
    if body.get("q") != _fingerprint(scope):
        raise Invalid("cursor: it belongs to another list or other filters; start again without a cursor")
    return body["p"]
