"""Partitioning: cxstream's producers map a key as Java's clients do (murmur2), and the
co-partitioning check refuses exactly the shapes that split a customer's state."""

from __future__ import annotations

import zlib

from hypothesis import given, settings, strategies as st

from cxstream.kafka.partitions import PARTITIONER, copartitioning_problem, partition_for

#: Kafka's own test vectors for `Utils.murmur2` (signed 32-bit results).
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}
INPUTS = ("cx.surveys", "cx.interactions", "cx.customers")
CHANGELOG = "cx.cxstream-state-changelog"


def murmur2(data: bytes) -> int:
    """Kafka's `Utils.murmur2`, written from the Java source, as a signed 32-bit int."""
    m, r, mask = 0x5BD1E995, 24, 0xFFFFFFFF
    h = (0x9747B28C ^ len(data)) & mask
    whole = len(data) - len(data) % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & mask
        k ^= k >> r
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    tail = data[whole:]
    if len(tail) == 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if len(tail) >= 1:
        h ^= tail[0]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def java_partition(key: bytes, n: int) -> int:
    """`Utils.toPositive(Utils.murmur2(key)) % n`: Java's default partitioner for a key."""
    return (murmur2(key) & 0x7FFFFFFF) % n


def test_the_reference_murmur2_gives_kafkas_own_test_vectors() -> None:
    assert {k: murmur2(k) for k in JAVA_MURMUR2} == JAVA_MURMUR2


@settings(max_examples=400)
@given(st.binary(max_size=80), st.integers(1, 64))
def test_cxstreams_partitioner_is_javas_murmur2(key: bytes, n: int) -> None:
    """aiokafka's DefaultPartitioner (what `cxstream produce` and the worker's outputs use)
    and `partition_for` put every key where a Java client would."""
    partitions = list(range(n))
    expected = java_partition(key, n)
    assert PARTITIONER(key, partitions, partitions) == expected
    assert PARTITIONER(key, partitions, []) == expected  # no leader known: same answer
    assert partition_for(key, n) == expected


def test_customer_ids_of_known_partitions() -> None:
    for key in JAVA_MURMUR2:
        for n in (1, 3, 4, 12):
            assert partition_for(key, n) == ((JAVA_MURMUR2[key] & 0x7FFFFFFF) % n)


def test_librdkafkas_default_crc32_puts_keys_elsewhere() -> None:
    """Why librdkafka clients must set `partitioner=murmur2_random`: their default
    (`consistent_random`, CRC32 of the key) disagrees on most keys."""
    keys = [f"cust-{i:05d}".encode() for i in range(200)]
    moved = [k for k in keys if zlib.crc32(k) % 4 != partition_for(k, 4)]
    assert len(moved) > 100


counts = st.one_of(st.none(), st.integers(1, 6))


@settings(max_examples=500)
@given(st.tuples(counts, counts, counts), counts, st.one_of(st.none(), st.integers(1, 6)))
def test_the_check_refuses_exactly_the_shapes_that_split_state(
        inputs: tuple[int | None, int | None, int | None], changelog: int | None,
        configured: int | None) -> None:
    found = dict(zip(INPUTS, inputs))
    if changelog is not None:
        found[CHANGELOG] = changelog
    problem = copartitioning_problem(found, INPUTS, changelog=CHANGELOG, configured=configured)
    # Brute force: every input exists; one count for the inputs, the changelog (when it
    # exists yet) and the configured count (when given).
    shapes = {n for n in inputs} | ({changelog} - {None}) | ({configured} - {None})
    assert (problem is None) == (None not in inputs and len(shapes) == 1)
    if problem is None:
        return
    assert "\n" not in problem
    if None in inputs:
        assert all(name in problem for name, n in found.items() if n is None)
        assert "do not exist" in problem
    elif len(set(inputs)) > 1:  # each input named with its count, and the fix
        assert all(f"{name} has {n}" in problem for name, n in zip(INPUTS, inputs))
        largest = max(n for n in inputs if n is not None)
        assert f"--partitions {largest}" in problem and "CXSTREAM_APP_ID" in problem
    elif configured is not None and configured != inputs[0]:
        assert f"CXSTREAM_PARTITIONS={inputs[0]}" in problem
    else:
        assert f"{CHANGELOG} has {changelog} partitions" in problem
        assert "CXSTREAM_APP_ID" in problem


def test_without_a_changelog_or_setting_only_the_inputs_count() -> None:
    """`cxstream produce` checks only the inputs: it runs with any CXSTREAM_PARTITIONS."""
    assert copartitioning_problem({n: 6 for n in INPUTS}, INPUTS) is None
    assert copartitioning_problem({**{n: 6 for n in INPUTS}, CHANGELOG: 2}, INPUTS) is None
    found = {"cx.surveys": 4, "cx.interactions": 4, "cx.customers": 6}
    problem = copartitioning_problem(found, INPUTS)
    assert problem is not None and "cx.customers has 6" in problem
