from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxstream.core import keys
from cxstream.core.expiry import ExpiryIndex
from cxstream.core.windows import DAY, HOUR, MINUTE


def _entry(*segments: str) -> dict:
    return {"o": 0, "s": {s: [1, 0, 0, 0, 0, 0, 0, 0] for s in segments}}


def test_pops_only_buckets_that_ended_and_tracks_the_segments_of_day_entries() -> None:
    idx = ExpiryIndex()
    minute, day = keys.bucket_key(0, MINUTE, 0), keys.bucket_key(0, DAY, 0)
    idx.add_bucket(minute, _entry("all", "plan:pro"))
    idx.add_bucket(day, _entry("all"))
    idx.add_bucket(day, _entry("all", "plan:pro"))  # rewritten with one more segment
    idx.add_bucket(minute, _entry("all", "plan:pro"))  # already known: no double entry
    assert len(idx) == 2 and idx.segments == {"all": 1, "plan:pro": 1}
    assert idx.pop_expired(MINUTE - 1) == []
    assert idx.pop_expired(MINUTE) == [minute]
    assert minute not in idx and idx.segments == {"all": 1, "plan:pro": 1}
    assert idx.pop_expired(DAY) == [day] and len(idx) == 0 and not idx.segments


def test_a_bucket_key_of_the_earlier_layout_is_refused() -> None:
    idx = ExpiryIndex()
    with pytest.raises(ValueError, match="not a bucket key of this release"):
        idx.add_bucket("b|0|60000|0|all", [1, 0, 0, 0, 0, 0, 0, 0, 5])


_KEYS = [(res, start) for res in (MINUTE, HOUR, DAY) for start in (0, res, 2 * res)]
_OPS = st.lists(st.one_of(
    st.tuples(st.just("add"), st.sampled_from(_KEYS),
              st.frozensets(st.sampled_from(["all", "plan:pro", "region:eu"]), min_size=1)),
    st.tuples(st.just("pop"), st.sampled_from([0, MINUTE, 2 * MINUTE, HOUR, 3 * HOUR, DAY,
                                               2 * DAY, 3 * DAY]))), max_size=60)


@settings(max_examples=300, deadline=None)
@given(ops=_OPS)
def test_equals_a_brute_force_list(ops: list[tuple]) -> None:
    """Against a plain list of (end, order added, key) and the segments each day entry was
    ever written with: a key is known once, and a pop returns every known key whose end is at
    or before the cutoff, earliest end first, then in the order added, and forgets it; the
    segments are those of the live day entries, each counted once per entry."""
    idx = ExpiryIndex()
    known: list[tuple[int, int, str]] = []
    day_segments: dict[str, set[str]] = {}
    for n, op in enumerate(ops):
        if op[0] == "add":
            _, (res, start), segments = op
            key = keys.bucket_key(0, res, start)
            if key not in {k for _, _, k in known}:
                known.append((start + res, n, key))
                if res == DAY:
                    day_segments[key] = set()
            if res == DAY:
                # Entries only gain segments: the caller writes the old ones and the new.
                day_segments[key] |= segments
                segments = day_segments[key]
            idx.add_bucket(key, _entry(*segments))
        else:
            due = sorted(e for e in known if e[0] <= op[1])
            assert idx.pop_expired(op[1]) == [k for _, _, k in due]
            for _, _, k in due:
                day_segments.pop(k, None)
            known = [e for e in known if e[0] > op[1]]
        assert len(idx) == len(known)
        assert all(k in idx for _, _, k in known)
        assert idx.segments == Counter(s for segs in day_segments.values() for s in segs)
