"""Foundation acceptance: valid input is processed, each invalid message is dead-lettered
with the right code and its source position, and processed + dead-lettered = produced."""

from __future__ import annotations

import base64
import time

import orjson

from cxstream.core.timefmt import format_rfc3339

from .harness import produce, read_all, wait_for, wait_inputs_drained

NOW = int(time.time() * 1000) // 60_000 * 60_000


def j(doc: object) -> bytes:
    return orjson.dumps(doc)


def survey(i: int, **over: object) -> dict:
    doc = {"event_id": f"s{i}", "customer_id": f"c{i % 17}", "survey": "nps", "score": i % 11,
           "occurred_at": format_rfc3339(NOW - 3_600_000 + i * 1000), "segment": {"plan": "pro"}}
    doc.update(over)
    return doc


def keyed(doc: dict) -> tuple[bytes | None, bytes]:
    return doc["customer_id"].encode(), j(doc)


async def test_valid_processed_invalid_deadlettered_and_all_accounted(worker_factory) -> None:
    w = worker_factory()
    w.start()
    await w.wait_ready()
    t = w.prefix

    surveys: list[tuple[bytes | None, bytes, str | None]] = []
    for i in range(120):
        surveys.append((*keyed(survey(i)), None))
    bad = [
        (b"c1", b"\xff\xfe not utf8", "not_json"),
        (b"c1", b"{\"event_id\": ", "not_json"),
        (b"c1", b"[1, 2, 3]", "not_object"),
        (b"c1", j({k: v for k, v in survey(900).items() if k != "score"} | {"customer_id": "c1"}), "missing_field"),
        (b"c1", j(survey(901, customer_id="c1", score="7")), "wrong_type"),
        (b"c1", j(survey(902, customer_id="c1", score=11)), "score_out_of_range"),
        (b"c1", j(survey(903, customer_id="c1", survey="csat", score=0)), "score_out_of_range"),
        (b"c1", j(survey(904, customer_id="c1", survey="nope")), "unknown_survey"),
        (b"c1", j(survey(905, customer_id="c1", occurred_at="yesterday")), "bad_timestamp"),
        (b"c1", j(survey(906, customer_id="c1", occurred_at=format_rfc3339(int(time.time() * 1000) + 3_600_000))), "future_timestamp"),
        (b"c1", j(survey(907, customer_id="c1", comment="x" * 70_000)), "too_large"),
        (b"other", j(survey(908, customer_id="c1")), "key_mismatch"),
        (None, j(survey(909, customer_id="c1")), "key_mismatch"),
    ]
    surveys[10:10] = bad[:7]
    surveys.extend(bad[7:])
    interactions = [(f"c{i}".encode(), j({"event_id": f"i{i}", "customer_id": f"c{i}", "kind": "login",
                                          "occurred_at": format_rfc3339(NOW - 60_000)}), None)
                    for i in range(30)]
    interactions.append((b"c1", j({"event_id": "i-bad", "customer_id": "c1",
                                   "occurred_at": format_rfc3339(NOW)}), "missing_field"))
    profiles = [(f"c{i}".encode(), j({"customer_id": f"c{i}", "segment": {"plan": "pro"},
                                      "updated_at": format_rfc3339(NOW - 86_400_000),
                                      "owner": {"name": "Ana", "email": "ana@example.com"}}), None)
                for i in range(17)]
    profiles.append((b"c2", j({"customer_id": "c2", "segment": {"plan": 3},
                               "updated_at": format_rfc3339(NOW)}), "wrong_type"))

    expected: dict[tuple[str, int, int], str] = {}
    produced = 0
    for short, items in (("surveys", surveys), ("interactions", interactions), ("customers", profiles)):
        positions = await produce(w.bootstrap, f"{t}{short}", [(k, v) for k, v, _ in items])
        produced += len(items)
        for (partition, offset), (_, _, code) in zip(positions, items):
            if code is not None:
                expected[(f"{t}{short}", partition, offset)] = code

    async def all_handled() -> float | None:
        total = await w.events_total()
        return total if total >= produced else None

    assert await wait_for(all_handled, 120, "every message handled") == produced

    async def dead_letters() -> list | None:
        records = await read_all(w.bootstrap, f"{t}deadletter")
        return records if len(records) >= len(expected) else None

    records = await wait_for(dead_letters, 60, "dead letters")
    got = {}
    for rec in records:
        d = orjson.loads(rec.value)
        got[(d["source_topic"], d["source_partition"], d["source_offset"])] = d["error_code"]
        assert d["reason"] and d["dead_lettered_at"]
        assert base64.b64decode(d["payload"])  # the original bytes, for replay
    assert got == expected

    m = await w.metrics()
    outcome = {}
    for (name, labels), v in m.items():
        if name == "cxstream_events_total":
            outcome[dict(labels)["outcome"]] = outcome.get(dict(labels)["outcome"], 0) + v
    processed = outcome.get("accepted", 0) + outcome.get("duplicate", 0)
    assert processed + outcome.get("deadlettered", 0) + outcome.get("too_late", 0) == produced
    assert outcome.get("deadlettered", 0) == len(expected)
    assert processed == produced - len(expected)
    dl_metric = sum(v for (name, _), v in m.items() if name == "cxstream_deadletters_total")
    assert dl_metric == len(expected)


async def test_only_cxstream_endpoints_are_served(worker_factory) -> None:
    w = worker_factory()
    w.start()
    await w.wait_ready()
    assert (await w.get("/healthz"))[0] == 200
    for path in ("/table/state", "/router", "/", "/graph", "/stats", "/performance"):
        status, _ = await w.get(path)
        assert status == 404, path


async def test_an_exception_while_handling_dead_letters_that_event_only(worker_factory) -> None:
    """State written by an incompatible version makes handling fail for one customer: each of
    its events is dead-lettered as processing_error, and the stream goes on for the others."""
    w = worker_factory()
    w.start()
    await w.wait_ready()
    w.stop()
    t = w.prefix
    await produce(w.bootstrap, f"{t}cxstream-state-changelog",
                  [(b'"c|broken"', orjson.dumps({"s": {"v": 99}, "h": {}}))])
    w.start()
    await w.wait_ready()
    items = [keyed(survey(i, customer_id="broken" if i % 5 == 0 else f"ok{i}")) for i in range(50)]
    positions = await produce(w.bootstrap, f"{t}surveys", items)

    async def dead() -> list | None:
        records = [orjson.loads(r.value) for r in await read_all(w.bootstrap, f"{t}deadletter")]
        return records if len(records) >= 10 else None

    records = await wait_for(dead, 60, "10 dead letters")
    assert {d["error_code"] for d in records} == {"processing_error"}
    assert {(d["source_partition"], d["source_offset"]) for d in records} == \
        {positions[i] for i in range(0, 50, 5)}
    assert all("c|broken" not in d["reason"] and "broken" not in d["reason"] for d in records)
    # Dead letters go out while their batch is planned, its state once it is complete: the
    # scores count the others once the batch is done (its offsets committed).
    await wait_inputs_drained(w)
    status, body = await w.get("/scores/all", window="24h")
    assert status == 200 and body["nps"]["responses"] + body["csat"]["responses"] + body["ces"]["responses"] == 40
