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
