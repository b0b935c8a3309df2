"""Alerts acceptance: the customer alerts of every kind (detractor, recovered, promoter,
passive, at_risk) on the alert topic equal a brute-force oracle's, with no duplicate alert_id, the owner, the
customer's value and the recent interactions in force when each response was processed, the
priority the default rules give, valid documents and CloudEvents headers."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import orjson
from jsonschema import Draft202012Validator

from cxstream.core.alert import alert_id
from cxstream.core.timefmt import format_rfc3339, parse_rfc3339

from ..unit.core.oracle import Ev
from .harness import alert_oracle, produce, read_all, wait_drained

SCHEMA = Draft202012Validator(
    json.loads((Path(__file__).resolve().parents[2] / "schemas" / "alert.schema.json").read_text()),
    format_checker=Draft202012Validator.FORMAT_CHECKER)


def oracle(arrivals: list[dict]) -> dict[str, tuple[str, str]]:
    """alert_id -> (kind, customer) of every customer alert kind, from the brute-force
    oracle (`harness.alert_oracle`) over the arrivals in the order the worker sees them (one
    customer is one partition, so their order across customers does not matter)."""
    return alert_oracle([Ev.of(d, 0, i) for i, d in enumerate(arrivals)])


def oracle_journey(interactions: list[dict], customer_id: str, length: int = 10) -> list[dict]:
    """The customer's `length` newest distinct interactions, newest first, as an alert lists
    them (a re-delivered event id counts once, as first seen)."""
    firsts: dict[str, dict] = {}
    for d in interactions:
        if d["customer_id"] == customer_id:
            firsts.setdefault(d["event_id"], d)
    newest = sorted(firsts.values(), key=lambda d: (parse_rfc3339(d["occurred_at"]), d["event_id"]),
                    reverse=True)[:length]
    return [{"event_id": d["event_id"], "kind": d["kind"],
             "occurred_at": format_rfc3339(parse_rfc3339(d["occurred_at"])),
             "touchpoint": d.get("touchpoint"), "channel": d.get("channel"), "outcome": d.get("outcome")}
            for d in newest]


async def test_alerts_equal_the_oracle_with_owner_in_force(worker_factory) -> None:
    w = worker_factory()
    w.start()
    await w.wait_ready()
    rng = random.Random(11)
    t = w.prefix
    group = f"{t}cxstream"
    inputs = [f"{t}surveys", f"{t}customers", f"{t}interactions"]
    now = int(time.time() * 1000)
    customers = [f"cust-{i:05d}" for i in range(2500)]

    def value(cid: str, owner: str) -> dict | None:
        """The customer's value while `owner` owns them: every tier, ARR at both sides of
        the default rules' 100000, none at all."""
        i = int(cid[5:])
        if owner == "ben":
            return {"tier": "low"} if i % 2 else {"arr": 250_000, "currency": "USD"}
        return [{"tier": "strategic"}, {"tier": "high", "arr": 5, "currency": "EUR"},
                {"tier": "standard", "arr": 100_000, "currency": "EUR"},
                {"tier": "standard", "arr": 99_999.5, "currency": "EUR"}, {"tier": "low"},
                None][i % 6]

    def profile(cid: str, owner: str, at: int) -> tuple[bytes, bytes]:
        doc = {"customer_id": cid, "segment": {"plan": "pro"},
               "owner": {"name": owner, "email": f"{owner}@example.com"},
               "updated_at": format_rfc3339(at)}
        if value(cid, owner) is not None:
            doc["value"] = value(cid, owner)
        return cid.encode(), orjson.dumps(doc)

    def priority(kind: str, value: dict | None, comment: str) -> str:
        """The default rules and words, written out (tests/unit/core/test_priority.py checks
        the evaluator against an oracle of any rules)."""
        v = value or {}
        p = ("urgent" if v.get("tier") == "strategic" else "high" if v.get("tier") == "high"
             else "high" if v.get("arr", 0) >= 100_000 else "low" if v.get("tier") == "low"
             else "normal")
        if kind == "detractor" and "cancel" in comment.lower().replace(".", " ").split():
            p = {"low": "normal", "normal": "high", "high": "urgent", "urgent": "urgent"}[p]
        return p

    def responses(n: int, offset: int) -> list[dict]:
        docs = []
        for i in range(n):
            cid = rng.choice(customers)
            survey = rng.choice(["nps", "nps", "nps", "csat", "ces"])
            score = rng.randrange(11) if survey == "nps" else rng.randint(1, 5)
            # Timestamps drawn in a small range: arrivals are often out of order.
            docs.append({"event_id": f"r{offset + i}", "customer_id": cid, "survey": survey,
                         "score": score, "comment": rng.choice(["why", "I will CANCEL."]),
                         "occurred_at": format_rfc3339(now - rng.randrange(0, 3 * 86_400_000))})
            if rng.random() < 0.05:
                docs.append(rng.choice(docs))  # a producer retry
        return docs

    # Phase by phase, so "the owner in force when the response was processed" is known.
    await produce(w.bootstrap, f"{t}customers", [profile(c, "ana", now - 10 * 86_400_000) for c in customers])
    await wait_drained(w.bootstrap, group, inputs)
    first = responses(4000, 0)
    await produce(w.bootstrap, f"{t}surveys", [(d["customer_id"].encode(), orjson.dumps(d)) for d in first])
    await wait_drained(w.bootstrap, group, inputs)
    moved = set(rng.sample(customers, 1000))
    await produce(w.bootstrap, f"{t}customers", [profile(c, "ben", now - 86_400_000) for c in sorted(moved)])
    # Journeys: up to 14 interactions per customer (more than the 10 kept), out of order,
    # some re-delivered, some without the optional fields.
    interactions: list[dict] = []
    for c in customers:
        for _ in range(rng.randrange(15)):
            interactions.append({
                "event_id": f"i{len(interactions)}", "customer_id": c,
                "occurred_at": format_rfc3339(now - rng.randrange(0, 3 * 86_400_000)),
                "kind": rng.choice(["call", "chat", "ticket_opened"]),
                **({"touchpoint": "support", "channel": "phone", "outcome": "open"}
                   if rng.random() < 0.5 else {})})
            if rng.random() < 0.05:
                interactions.append(interactions[-1])
    await produce(w.bootstrap, f"{t}interactions",
                  [(d["customer_id"].encode(), orjson.dumps(d)) for d in interactions])
    await wait_drained(w.bootstrap, group, inputs)
    second = responses(4000, 10_000)
    await produce(w.bootstrap, f"{t}surveys", [(d["customer_id"].encode(), orjson.dumps(d)) for d in second])
    await wait_drained(w.bootstrap, group, inputs, timeout_s=240)

    expected = oracle(first + second)
    by_event = {d["event_id"]: d for d in first + second}
    in_second = {alert_id(d["customer_id"], d["event_id"]) for d in second}
    records = await read_all(w.bootstrap, f"{t}alerts")
    ids = [r.key for r in records]
    docs = [orjson.loads(r.value) for r in records]
    assert len({d["alert_id"] for d in docs}) == len(docs), "an alert_id appears twice"
    assert {d["alert_id"]: (d["kind"], d["customer_id"]) for d in docs} == expected
    for kind in ("detractor", "recovered", "promoter", "passive", "at_risk"):
        assert sum(k == kind for k, _ in expected.values()) > 20, kind
    assert {d["priority"] for d in docs} == {"urgent", "high", "normal", "low"}
    for rec, d in zip(records, docs):
        assert not list(SCHEMA.iter_errors(d)), d
        assert rec.key == d["customer_id"].encode()
        headers = dict(rec.headers)
        assert headers["ce_id"] == d["alert_id"].encode()
        assert headers["ce_type"] == f"com.cxstream.alert.{d['kind']}".encode()
        assert headers["ce_specversion"] == b"1.0" and headers["ce_time"] == d["detected_at"].encode()
        owner = "ben" if d["alert_id"] in in_second and d["customer_id"] in moved else "ana"
        assert d["owner"]["name"] == owner, d
        journey = oracle_journey(interactions, d["customer_id"]) if d["alert_id"] in in_second else []
        assert d["recent_interactions"] == journey, d
        answered = by_event[d["survey_event_id"]]
        assert d["program"] == answered["survey"] and d["score"] == answered["score"], d
        assert d.get("metric") == (answered["survey"] if d["kind"] == "at_risk" else None), d
        assert d["value"] == value(d["customer_id"], owner), d
        assert d["priority"] == priority(d["kind"], d["value"], answered["comment"]), d
    assert ids
