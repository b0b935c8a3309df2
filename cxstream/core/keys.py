"""Keys of the worker's state table.

All state of one input partition lives in one changelog partition (Faust writes a table
entry to the partition of the event being processed), so the changelog of a partition is a
single ordered log. Keys that are not naturally partitioned by customer carry the partition
number, so keys from different partitions never collide in a store shared across partitions.
"""

from __future__ import annotations

from cxstream.core.windows import HOUR, MINUTE, RESOLUTIONS, bucket_keys_for

CUSTOMER = "c"
JOURNEY = "j"
BUCKET = "b"
STREAM_TIME = "t"
CAP = "v"
PROGRAMS = "g"
TARGET_STATUS = "s"
TARGET_PENDING = "r"
#: What every key of a kind starts with.
BUCKET_PREFIX = BUCKET + "|"
CUSTOMER_PREFIX = CUSTOMER + "|"
JOURNEY_PREFIX = JOURNEY + "|"


def customer_key(customer_id: str) -> str:
    """The customer's record: latest scores, profile, remembered survey ids."""
    return f"c|{customer_id}"


def journey_key(customer_id: str) -> str:
    """The customer's recent interactions, apart from `customer_key`'s record: most events
    are interactions, and they then read and write only this (see `cxstream.core.journey`)."""
    return f"j|{customer_id}"


def bucket_key(partition: int, resolution: int, start: int) -> str:
    """The entry of one bucket (resolution, start) of a partition, holding every segment's
    counts (see `cxstream.core.buckets`)."""
    return f"b|{partition}|{resolution}|{start}"


def parse_bucket_key(key: str) -> tuple[int, int, int]:
    """(partition, resolution_ms, start_ms) of a bucket key. ValueError for a key of the
    earlier layout (one entry per segment, `b|p|res|start|segment`), which this release no
    longer reads."""
    parts = key.split("|")
    if len(parts) != 4:
        raise ValueError(f"not a bucket key of this release: {key[:80]!r}")
    return int(parts[1]), int(parts[2]), int(parts[3])


def bucket_prefix(partition: int) -> str:
    return f"b|{partition}|"


def stream_time_key(partition: int) -> str:
    return f"t|{partition}"


def cap_key(partition: int, dimension: str) -> str:
    return f"v|{partition}|{dimension}"


def programs_key(partition: int) -> str:
    """The survey programs counted in a partition under keys of their own, each with its
    fingerprint (metric and scale, `cxstream.core.programs`): what a worker compares with
    its registry at assignment, since counts only mean something on their scale."""
    return f"g|{partition}"


def target_status_key(partition: int) -> str:
    """What report partition `partition` knows of its segments' targets: the last boundary
    decided, the (window, program, segment) known below target, the boundaries waiting for
    reports (`cxstream.core.targets`)."""
    return f"s|{partition}"


def target_pending_key(partition: int, boundary: int) -> str:
    """The reports of `boundary` summed so far at report partition `partition`, and which
    input partitions (and parts) they came from."""
    return f"r|{partition}|{boundary}"


def dimensions_key(partition: int) -> str:
    """The dimensions admitted in a partition under `CXSTREAM_MAX_DIMENSIONS` (a cap entry:
    written with, and before, the value caps; see `cxstream.core.segments`)."""
    return f"v|{partition}"


#: Recent bucket keys (see `bucket_keys_at`): all of them per (partition, minute), the
#: coarser ones per (partition, hour); each emptied when full.
_KEYS: dict[tuple[int, int], tuple[str, ...]] = {}
_COARSE: dict[tuple[int, int], tuple[str, ...]] = {}
_KEYS_MAX = 4096
# `bucket_keys_at` takes the finest bucket to be the minute and the others to be a function
# of the hour.
assert RESOLUTIONS[0] == MINUTE and all(res % HOUR == 0 for res in RESOLUTIONS[1:])


def bucket_keys_at(partition: int, occurred_at: int) -> tuple[str, ...]:
    """`bucket_key` of the buckets at `occurred_at`, finest first; remembered per
    (partition, minute), which all of them are a function of, and the coarser ones per
    (partition, hour): a backlog spread over days has few events per minute, and building
    the three keys cost more than the rest of the bucket updates."""
    minute = occurred_at - occurred_at % MINUTE
    found = _KEYS.get((partition, minute))
    if found is None:
        hour = minute - minute % HOUR
        coarse = _COARSE.get((partition, hour))
        if coarse is None:
            if len(_COARSE) >= _KEYS_MAX:
                _COARSE.clear()
            coarse = _COARSE[partition, hour] = tuple([
                bucket_key(partition, res, start)
                for res, start in bucket_keys_for(occurred_at)[1:]])
        if len(_KEYS) >= _KEYS_MAX:
            _KEYS.clear()
        found = _KEYS[partition, minute] = (bucket_key(partition, MINUTE, minute), *coarse)
    return found
