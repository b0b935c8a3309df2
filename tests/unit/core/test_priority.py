"""Alert priority (`cxstream.core.priority`) against a brute-force oracle: rules are drawn as
data, written as `CXSTREAM_PRIORITY_RULES` text, parsed (`cxstream.config.priority`) and
evaluated; the oracle reads the same data its own way."""

from __future__ import annotations

import operator
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxstream.config.priority import parse_rules, parse_words
from cxstream.core.alert import CUSTOMER_KINDS
from cxstream.core.priority import DEFAULT_RULES, PRIORITIES, TIERS, PriorityRules, priority

OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "=": operator.eq}
CURRENCIES = ["EUR", "USD", "BRL"]
NUMBERS = st.sampled_from([0, 1, 5, 99999, 100000, 100001, 2500.5])

conditions = st.one_of(
    st.tuples(st.just("tier"), st.lists(st.sampled_from(TIERS), min_size=1, max_size=2)),
    st.tuples(st.just("currency"), st.lists(st.sampled_from(CURRENCIES), min_size=1, max_size=2)),
    st.tuples(st.just("kind"), st.lists(st.sampled_from(CUSTOMER_KINDS), min_size=1, max_size=2)),
    st.tuples(st.just("arr"), st.tuples(st.sampled_from(list(OPS)), NUMBERS)),
)
rules_data = st.lists(st.tuples(st.lists(conditions, max_size=3), st.sampled_from(PRIORITIES)),
                      max_size=5)
values = st.one_of(st.none(), st.fixed_dictionaries({}, optional={
    "tier": st.sampled_from(TIERS), "arr": NUMBERS, "currency": st.sampled_from(CURRENCIES)}))
words = st.lists(st.sampled_from(["cancel", "Billing", "refund", "churn", "x1"]), max_size=3)
comments = st.one_of(st.none(), st.lists(st.sampled_from(
    ["cancel", "CANCEL", "cancelled", "billing.", "re-fund", "churn!", "ok", "x1", " ", "\n"]),
    max_size=4).map("".join), st.text(max_size=20))


def text_of(data: list[Any]) -> str:
    def cond(c: Any) -> str:
        field, arg = c
        return f"arr {arg[0]} {arg[1]}" if field == "arr" else f"{field}={'|'.join(arg)}"
    return " ; ".join(("&".join(cond(c) for c in conds) or "*") + f":{p}" for conds, p in data)


def oracle(data: list[Any], kind: str, value: dict[str, Any] | None, comment: str | None,
           escalate: list[str]) -> str:
    v = value or {}
    result = "normal"
    for conds, p in data:
        ok = True
        for field, arg in conds:
            if field == "arr":
                ok = ok and "arr" in v and OPS[arg[0]](v["arr"], arg[1])
            elif field == "kind":
                ok = ok and kind in arg
            else:
                ok = ok and v.get(field) in arg
        if ok:
            result = p
            break
    said = set(re.findall(r"\w+", (comment or "").lower()))
    if kind == "detractor" and any(w.lower() in said for w in escalate):
        result = {"low": "normal", "normal": "high", "high": "urgent", "urgent": "urgent"}[result]
    return result


@settings(max_examples=1500, deadline=None)
@given(rules_data, st.sampled_from(CUSTOMER_KINDS), values, comments, words)
def test_priority_matches_the_oracle(data: list[Any], kind: str, value: Any, comment: Any,
                                     escalate: list[str]) -> None:
    cfg = PriorityRules(parse_rules(text_of(data)), parse_words(",".join(escalate)))
    assert priority(cfg, kind, value, comment) == oracle(data, kind, value, comment, escalate)


@pytest.mark.parametrize(("kind", "value", "comment", "expected"), [
    ("detractor", None, None, "normal"),
    ("detractor", {"tier": "strategic"}, None, "urgent"),
    ("promoter", {"tier": "high"}, "billing", "high"),        # words raise detractors only
    ("detractor", {"tier": "high"}, "Billing!", "urgent"),
    ("detractor", {"arr": 100000, "currency": "EUR"}, None, "high"),
    ("detractor", {"arr": 99999, "currency": "EUR"}, "refund", "high"),
    ("at_risk", {"tier": "low", "arr": 1e6, "currency": "EUR"}, None, "high"),  # first match
    ("detractor", {"tier": "low"}, "I want to cancel", "normal"),
    ("detractor", {"tier": "low"}, "cancelling", "low"),
])
def test_default_rules(kind: str, value: Any, comment: Any, expected: str) -> None:
    assert priority(DEFAULT_RULES, kind, value, comment) == expected


def test_no_rules_is_normal_and_urgent_stays_urgent() -> None:
    assert priority(PriorityRules(), "detractor", {"tier": "strategic"}, "cancel") == "normal"
    cfg = PriorityRules(parse_rules("*:urgent"), frozenset({"cancel"}))
    assert priority(cfg, "detractor", None, "cancel") == "urgent"
