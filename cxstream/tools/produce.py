"""`cxstream produce`: send JSON Lines to an input topic, keyed by `customer_id`, partitioned by
murmur2 of the key (`cxstream.kafka.partitions`: as Java clients, and librdkafka clients set
to `murmur2_random`).

Lines are sent byte-for-byte (bad ones too: the worker dead-letters them, which is how an
upstream problem becomes visible). `--dry-run` runs the worker's own decoder instead, with
the worker's settings (the earliest event time, and for surveys the program registry
`CXSTREAM_SURVEYS`), and reports bad lines by number, sending nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterator

import orjson
from aiokafka import AIOKafkaProducer

from cxstream.kafka.admin import ensure_topics
from cxstream.kafka.partitions import PARTITIONER
from cxstream.config.surveys import registry
from cxstream.core.decode import (DEFAULT_MIN_EVENT_MS, Scales, decode_interaction,
                                  decode_profile, decode_survey)
from cxstream.core.errors import Rejection
from cxstream.core.programs import scales
from cxstream.kafka.security import client_kwargs
from cxstream.tools.progress import Progress
from cxstream.config.settings import Settings
from cxstream.kafka.topics import Topics

DECODERS: dict[str, Callable[..., object]] = {
    "surveys": decode_survey,
    "interactions": decode_interaction,
    "customers": decode_profile,
}


@dataclass
class ProduceReport:
    sent: int = 0
    unkeyed: int = 0
    bad: list[tuple[int, str, str]] = field(default_factory=list)  # (line, code, reason)


def lines(stream: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """Non-blank lines with their 1-based numbers, without the line break."""
    for number, line in enumerate(stream, start=1):
        stripped = line.rstrip(b"\r\n")
        if stripped.strip():
            yield number, stripped


def key_of(line: bytes) -> bytes | None:
    """The message key: the document's customer_id, when it has a string one."""
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    cid = doc.get("customer_id") if isinstance(doc, dict) else None
    return cid.encode() if isinstance(cid, str) else None


def check(settings: Settings, short: str, stream: BinaryIO) -> ProduceReport:
    """`dry_run` as the workers of `settings` decode: with their `CXSTREAM_MIN_EVENT_TIME`
    and, for surveys, the programs of their registry (`CXSTREAM_SURVEYS`; a registry that
    cannot be used raises `SurveysError`, which says what to fix, as a worker would)."""
    programs = None
    if short == "surveys":
        programs = scales(registry(settings.surveys, settings.max_programs))
    return dry_run(short, stream, settings.min_event_time, programs)


def dry_run(short: str, stream: BinaryIO, min_ms: int = DEFAULT_MIN_EVENT_MS,
            programs: Scales | None = None) -> ProduceReport:
    """Decode every line as a worker would (`min_ms`: its `CXSTREAM_MIN_EVENT_TIME`;
    `programs`: the scales of its registry, for surveys; None: the built-in programs) and
    report the bad ones by line number; sends nothing."""
    decode = DECODERS[short]
    report = ProduceReport()
    now_ms = int(time.time() * 1000)
    extra = () if programs is None else (programs,)  # only decode_survey takes programs
    for number, line in lines(stream):
        result = decode(line, key_of(line), now_ms, min_ms, *extra)
        if isinstance(result, Rejection):
            report.bad.append((number, result.code.value, result.reason))
        else:
            report.sent += 1
    return report


async def produce(settings: Settings, short: str, stream: BinaryIO, *, total: int | None = None,
                  show_progress: bool = True) -> ProduceReport:
    """Send every line; waits until the broker acknowledged all of them."""
    topic = Topics(settings.topic_prefix).input(short)
    await ensure_topics(settings)
    # The partitioner is named, not left to the default: every producer of the inputs must
    # map a key as the others do (murmur2), or a customer's records never meet.
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all",
                                enable_idempotence=True, linger_ms=5, partitioner=PARTITIONER,
                                max_batch_size=256 * 1024, max_request_size=2 * 1024 * 1024,
                                **client_kwargs(settings))
    await producer.start()
    report = ProduceReport()
    progress = Progress(f"produce {topic}", total) if show_progress else None
    try:
        pending = []
        for _, line in lines(stream):
            key = key_of(line)
            report.unkeyed += key is None
            pending.append(await producer.send(topic, line, key=key))
            report.sent += 1
            if len(pending) >= 5000:
                for fut in pending:
                    await fut
                pending.clear()
            if progress:
                progress.update()
        for fut in pending:
            await fut
    finally:
        await producer.stop()
        if progress:
            progress.close()
    return report
