from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from cxstream.core.expiry import ExpiryIndex


def test_pops_only_buckets_that_ended_and_tracks_segments() -> None:
    idx = ExpiryIndex()
    idx.add("a", "all", 100)
    idx.add("b", "plan:pro", 200)
    idx.add("a", "all", 100)  # already known: no double entry
    assert len(idx) == 2 and idx.segments == {"all": 1, "plan:pro": 1}
    assert idx.pop_expired(99) == []
    assert idx.pop_expired(100) == ["a"]
    assert "a" not in idx and "all" not in idx.segments
    assert idx.pop_expired(10_000) == ["b"] and len(idx) == 0


_OPS = st.lists(st.one_of(
    st.tuples(st.just("add"), st.sampled_from("abcdefghij"), st.sampled_from(["all", "plan:pro"]),
              st.integers(0, 8).map(lambda m: m * 60_000)),
    st.tuples(st.just("pop"), st.integers(-1, 9).map(lambda m: m * 60_000))), max_size=60)


@settings(max_examples=300, deadline=None)
@given(ops=_OPS)
def test_equals_a_brute_force_list(ops: list[tuple]) -> None:
    """Against a plain list of (end, order added, key, segment): a key is known once (first
    add wins), and a pop returns every known key whose end is at or before the cutoff,
    earliest end first, then in the order added, and forgets it."""
    idx = ExpiryIndex()
    known: list[tuple[int, int, str, str]] = []
    for n, op in enumerate(ops):
        if op[0] == "add":
            _, key, segment, end = op
            idx.add(key, segment, end)
            if key not in {k for _, _, k, _ in known}:
                known.append((end, n, key, segment))
        else:
            due = sorted(e for e in known if e[0] <= op[1])
            assert idx.pop_expired(op[1]) == [k for _, _, k, _ in due]
            known = [e for e in known if e[0] > op[1]]
        assert len(idx) == len(known)
        assert all(k in idx for _, _, k, _ in known)
        assert idx.segments == Counter(s for _, _, _, s in known)


def test_a_stored_bucket_key_names_its_segment_and_end() -> None:
    from cxstream.core import keys

    idx = ExpiryIndex()
    key = keys.bucket_key(2, "plan:pro", 3_600_000, 7_200_000)
    idx.add_bucket(key)
    idx.add_bucket(key)  # already known
    assert len(idx) == 1 and idx.segments == {"plan:pro": 1}
    assert idx.pop_expired(10_799_999) == [] and idx.pop_expired(10_800_000) == [key]
