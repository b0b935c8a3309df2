"""Keys of the worker's state table.

All state of one input partition lives in one changelog partition (Faust writes a table
entry to the partition of the event being processed), so the changelog of a partition is a
single ordered log. Keys that are not naturally partitioned by customer carry the partition
number, so keys from different partitions never collide in a store shared across partitions.
"""

from __future__ import annotations

CUSTOMER = "c"
BUCKET = "b"
STREAM_TIME = "t"
CAP = "v"


def customer_key(customer_id: str) -> str:
    return f"c|{customer_id}"


def bucket_key(partition: int, segment: str, resolution: int, start: int) -> str:
    # The segment goes last: its value may contain '|'.
    return f"b|{partition}|{resolution}|{start}|{segment}"


def bucket_key_prefix(partition: int, resolution: int, start: int) -> str:
    """`bucket_key` minus the segment: a response writes one bucket per segment and
    resolution, so the writer formats this once per resolution and appends each segment."""
    return f"b|{partition}|{resolution}|{start}|"


def parse_bucket_key(key: str) -> tuple[int, int, int, str]:
    """(partition, resolution_ms, start_ms, segment) of a bucket key."""
    _, p, res, start, segment = key.split("|", 4)
    return int(p), int(res), int(start), segment


def bucket_prefix(partition: int) -> str:
    return f"b|{partition}|"


def stream_time_key(partition: int) -> str:
    return f"t|{partition}"


def cap_key(partition: int, dimension: str) -> str:
    return f"v|{partition}|{dimension}"
