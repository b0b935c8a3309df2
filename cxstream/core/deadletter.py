"""Dead-letter records: the original bytes plus where they came from and why they failed.

The payload is kept (base64) so a fixed upstream can replay it; see
docs/concepts/dead-letters.md on retention.
Its copy is capped so the dead letter always fits in a Kafka request (base64 grows it by a
third, and the input may be as large as the broker allows): a dead letter that cannot be
written would stop the stream on that message for good. A capped copy says so and carries
the original's size and SHA-256; the original stays at its source position.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from cxstream.core.errors import ErrorCode, Rejection
from cxstream.core.timefmt import format_rfc3339

#: Largest payload copied whole (bytes): base64 makes it ~683 KiB, well under the 1 MiB
#: default request size of Kafka producers, with room for the key and the other fields.
MAX_PAYLOAD_BYTES = 512 * 1024
#: Largest key copied whole (bytes); keys are customer ids, so only garbage is ever cut.
MAX_KEY_BYTES = 16 * 1024
#: Codes of the dead letters of responses that were counted all the same, in `all` and
#: their other segments (a cap on dimensions or values was reached): the document says so
#: (`"counted": true`), as replaying one would count a duplicate, i.e. nothing.
COUNTED = frozenset({ErrorCode.TOO_MANY_DIMENSIONS, ErrorCode.SEGMENT_VALUE_CAPPED})


def dead_letter(
    rejection: Rejection,
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    payload: bytes | None,
    now_ms: int,
    max_payload_bytes: int = MAX_PAYLOAD_BYTES,
) -> dict[str, Any]:
    """The dead-letter document (schemas/dead-letter.schema.json). The payload is copied
    up to `max_payload_bytes` (less for a dead-letter topic whose records must be smaller,
    `cxstream.worker.limits`)."""
    raw = payload or b""
    doc: dict[str, Any] = {
        "error_code": rejection.code.value,
        "reason": rejection.reason,
        "source_topic": topic,
        "source_partition": partition,
        "source_offset": offset,
        "source_key": None if key is None else _b64(key[:MAX_KEY_BYTES]),
        "payload": _b64(raw[:max_payload_bytes]),
        "dead_lettered_at": format_rfc3339(now_ms),
    }
    if len(raw) > max_payload_bytes:
        doc.update(payload_truncated=True, payload_bytes=len(raw),
                   payload_sha256=hashlib.sha256(raw).hexdigest())
    if rejection.code in COUNTED:
        doc["counted"] = True
    if key is not None and len(key) > MAX_KEY_BYTES:
        doc.update(source_key_truncated=True, source_key_bytes=len(key))
    return doc


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def processing_error(exc: BaseException) -> Rejection:
    """An unexpected exception, reported by type only: its message may quote customer data."""
    return Rejection(ErrorCode.PROCESSING_ERROR, f"unexpected {type(exc).__name__} while processing")
