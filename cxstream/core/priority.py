"""The priority of a customer alert, from the customer's value (docs/concepts/alerts.md).

Rules come from `CXSTREAM_PRIORITY_RULES`, parsed by `cxstream.config.priority`; this module
holds their shape and evaluates them. Pure; it runs once per alert, not per event, so it is
not compiled.

The first rule whose conditions all hold gives the priority (`normal` when none does). Then a
`detractor` alert whose comment holds one of the escalation words (`CXSTREAM_PRIORITY_WORDS`,
whole words, case-insensitive) is raised one step: low → normal → high → urgent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

__all__ = ["ARR_OPS", "Condition", "DEFAULT_PRIORITY", "DEFAULT_RULES", "PRIORITIES", "PriorityRule",
           "PriorityRules", "TIERS", "comment_words", "priority", "raised"]

#: Priorities, lowest first.
PRIORITIES = ("low", "normal", "high", "urgent")
DEFAULT_PRIORITY = "normal"
#: The value tiers a profile may carry.
TIERS = ("strategic", "high", "standard", "low")
#: The comparisons a rule may make on `arr`.
ARR_OPS = (">=", "<=", ">", "<", "=")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class Condition:
    """One test of a rule: `field` is `tier`, `currency` or `kind` (the value is one of
    `values`), or `arr` (compared with `number` by `op`). A test on a field the alert does
    not have (no tier, no arr…) fails."""

    field: str
    values: tuple[str, ...] = ()
    op: str = ""
    number: float = 0.0


@dataclass(frozen=True, slots=True)
class PriorityRule:
    """Conditions (all must hold; none: always) → priority."""

    conditions: tuple[Condition, ...]
    priority: str


@dataclass(frozen=True, slots=True)
class PriorityRules:
    """The whole configuration: rules in order, and the escalation words (lower case)."""

    rules: tuple[PriorityRule, ...] = ()
    words: frozenset[str] = frozenset()


#: `CXSTREAM_PRIORITY_RULES` and `CXSTREAM_PRIORITY_WORDS` by default, parsed (a unit test
#: checks that parsing the settings' defaults gives this): what an alert gets when no rules
#: are configured.
DEFAULT_RULES = PriorityRules(
    (PriorityRule((Condition("tier", ("strategic",)),), "urgent"),
     PriorityRule((Condition("tier", ("high",)),), "high"),
     PriorityRule((Condition("arr", op=">=", number=100000.0),), "high"),
     PriorityRule((Condition("tier", ("low",)),), "low")),
    frozenset({"cancel", "billing", "refund", "churn"}))


def _holds(c: Condition, kind: str, value: Mapping[str, Any]) -> bool:
    if c.field == "kind":
        return kind in c.values
    if c.field == "arr":
        arr = value.get("arr")
        if arr is None:
            return False
        if c.op == ">=":
            return bool(arr >= c.number)
        if c.op == "<=":
            return bool(arr <= c.number)
        if c.op == ">":
            return bool(arr > c.number)
        if c.op == "<":
            return bool(arr < c.number)
        return bool(arr == c.number)
    got = value.get(c.field)
    return got is not None and got in c.values


def comment_words(comment: str | None) -> frozenset[str]:
    """The words of a comment, case-folded (`\\w+` runs: letters, digits, underscore)."""
    return frozenset(_WORD.findall(comment.casefold())) if comment else frozenset()


def raised(p: str) -> str:
    """One step up (urgent stays urgent)."""
    return PRIORITIES[min(PRIORITIES.index(p) + 1, len(PRIORITIES) - 1)]


def priority(config: PriorityRules, kind: str, value: Mapping[str, Any] | None,
             comment: str | None) -> str:
    """The priority of a customer alert of `kind` about a customer of `value` (the
    profile's value object, or None), caused by an answer with `comment`."""
    v = value or {}
    p = DEFAULT_PRIORITY
    for rule in config.rules:
        if all(_holds(c, kind, v) for c in rule.conditions):
            p = rule.priority
            break
    if kind == "detractor" and config.words and not config.words.isdisjoint(
            comment_words(comment)):
        p = raised(p)
    return p
