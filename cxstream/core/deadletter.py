"""Dead-letter records: the original bytes plus where they came from and why they failed.

The payload is kept (base64) so a fixed upstream can replay it; see the README on retention.
"""

from __future__ import annotations

import base64
from typing import Any

from cxstream.core.errors import ErrorCode, Rejection
from cxstream.core.timefmt import format_rfc3339


def dead_letter(
    rejection: Rejection,
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    payload: bytes | None,
    now_ms: int,
) -> dict[str, Any]:
    """The dead-letter document (schemas/dead-letter.schema.json)."""
    return {
        "error_code": rejection.code.value,
        "reason": rejection.reason,
        "source_topic": topic,
        "source_partition": partition,
        "source_offset": offset,
        "source_key": None if key is None else base64.b64encode(key).decode("ascii"),
        "payload": base64.b64encode(payload or b"").decode("ascii"),
        "dead_lettered_at": format_rfc3339(now_ms),
    }


def processing_error(exc: BaseException) -> Rejection:
    """An unexpected exception, reported by type only: its message may quote customer data."""
    return Rejection(ErrorCode.PROCESSING_ERROR, f"unexpected {type(exc).__name__} while processing")
