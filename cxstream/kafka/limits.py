"""How large a record the broker takes on each topic the worker writes: its
`max.message.bytes`, read from the topic's configuration.

Why: a record over it is refused for good (`MessageSizeTooLarge`), and a state entry that can
never be written stops its partition. The worker bounds every record it writes below these
limits before sending (`cxstream.core.step.entry_bound`, `cxstream.worker.processor`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from cxstream.config.settings import Settings
from cxstream.kafka.security import client_kwargs

log = logging.getLogger(__name__)

#: The topic configuration read.
MAX_MESSAGE_BYTES = "max.message.bytes"


async def max_message_bytes(settings: Settings, topics: Iterable[str],
                            timeout_s: float = 15.0) -> dict[str, int]:
    """`max.message.bytes` of each of `topics` as the broker applies it (the topic's own
    value, else the broker's default); a topic whose value cannot be read is left out.

    Never raises for a broker that cannot be reached or answers with an error: the caller
    falls back to what it knew (it logs a warning naming the fix). Waits at most about
    `timeout_s` seconds."""
    names = list(topics)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap,
                                request_timeout_ms=int(timeout_s * 1000),
                                **client_kwargs(settings))
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        responses = await asyncio.wait_for(admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]), timeout_s)
    except (KafkaError, OSError, asyncio.TimeoutError) as exc:
        log.warning("could not read %s of %s (%s): record sizes are bounded by what was "
                    "read before, or by Kafka's default; check that the worker's Kafka user "
                    "may describe the topics' configs (DescribeConfigs ACL)",
                    MAX_MESSAGE_BYTES, ", ".join(names), type(exc).__name__)
        return {}
    finally:
        await admin.close()
    return parse_limits(responses)


def parse_limits(responses: Iterable[Any]) -> dict[str, int]:
    """Topic → `max.message.bytes` from aiokafka's DescribeConfigs responses; resources
    answered with an error, or without a usable value, are left out."""
    found: dict[str, int] = {}
    for response in responses:
        for error_code, _, _, name, entries in response.resources:
            if error_code:
                continue
            for entry in entries:
                if entry[0] == MAX_MESSAGE_BYTES and entry[1] is not None:
                    try:
                        value = int(entry[1])
                    except ValueError:
                        continue
                    if value > 0:
                        found[name] = value
    return found
