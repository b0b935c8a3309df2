"""Parse `CXSTREAM_PRIORITY_RULES` and `CXSTREAM_PRIORITY_WORDS` into the core's rules
(`cxstream.core.priority`). Grammar (docs/concepts/alerts.md#priority), spaces allowed
around every token:

    rules     = [ rule *( ";" rule ) ]          ; empty: no rules, every alert `normal`
    rule      = match ":" priority
    match     = "*" | condition *( "&" condition )
    condition = "tier" "=" tier *( "|" tier )
              | "currency" "=" CODE *( "|" CODE )     ; three upper-case letters
              | "kind" "=" kind *( "|" kind )          ; a customer alert kind
              | "arr" op number                        ; op: >= <= > < =
    priority  = "urgent" | "high" | "normal" | "low"

Words: a comma-separated list of words (letters, digits, underscore); empty: none.

Errors are ValueError with one line naming the rule (`rule 2 "tier=gold:high": …`);
`Settings.from_env` turns them into SettingsError naming the variable.
"""

from __future__ import annotations

import math
import re

from cxstream.core.alert import CUSTOMER_KINDS
from cxstream.core.priority import (
    ARR_OPS,
    PRIORITIES,
    TIERS,
    Condition,
    PriorityRule,
    PriorityRules,
)

__all__ = ["parse_rules", "parse_words", "priority_rules"]

_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?")
_CODE = re.compile(r"[A-Z]{3}")
_WORD = re.compile(r"\w+")
_CHOICES = {"tier": TIERS, "kind": CUSTOMER_KINDS}


def _one_of(options: tuple[str, ...]) -> str:
    return ", ".join(options[:-1]) + " or " + options[-1]


def _condition(text: str) -> Condition:
    text = text.strip()
    if text.startswith("arr"):
        rest = text[3:].strip()
        op = next((o for o in ARR_OPS if rest.startswith(o)), None)
        if op is None:
            raise ValueError(f"arr needs a comparison ({' '.join(ARR_OPS)}) and a number, "
                             "e.g. arr>=100000")
        number = rest[len(op):].strip()
        if not _NUMBER.fullmatch(number) or not math.isfinite(float(number)):
            raise ValueError(f"arr{op} needs a non-negative number such as 100000 or 2500.50, "
                             f"got {number!r}")
        return Condition("arr", op=op, number=float(number))
    field, eq, values = text.partition("=")
    field = field.strip()
    if not eq or field not in ("tier", "currency", "kind"):
        raise ValueError(f"unknown condition {text!r}: expected tier=…, currency=…, kind=… "
                         "or arr with >=, <=, >, < or =")
    options = tuple(v.strip() for v in values.split("|"))
    for v in options:
        if field == "currency":
            if not _CODE.fullmatch(v):
                raise ValueError(f"currency {v!r} is not three upper-case letters (ISO 4217)")
        elif v not in _CHOICES[field]:
            raise ValueError(f"unknown {field} {v!r} (expected {_one_of(_CHOICES[field])})")
    return Condition(field, options)


def parse_rules(text: str) -> tuple[PriorityRule, ...]:
    """The rules of `CXSTREAM_PRIORITY_RULES`, in order; ValueError naming the bad rule."""
    rules: list[PriorityRule] = []
    if not text.strip():
        return ()
    for n, raw in enumerate(text.split(";"), 1):
        try:
            match, colon, prio = raw.rpartition(":")
            prio = prio.strip()
            if not colon:
                raise ValueError("expected <conditions>:<priority>, e.g. tier=strategic:urgent")
            if prio not in PRIORITIES:
                raise ValueError(f"unknown priority {prio!r} (expected urgent, high, normal "
                                 "or low)")
            if not match.strip():
                raise ValueError("no condition before ':' (use * to match every alert)")
            conditions = () if match.strip() == "*" else tuple(
                _condition(part) for part in match.split("&"))
        except ValueError as exc:
            raise ValueError(f"rule {n} {raw.strip()!r}: {exc}") from None
        rules.append(PriorityRule(conditions, prio))
    return tuple(rules)


def parse_words(text: str) -> frozenset[str]:
    """The escalation words of `CXSTREAM_PRIORITY_WORDS`, case-folded."""
    words = [w.strip() for w in text.split(",") if w.strip()]
    for w in words:
        if not _WORD.fullmatch(w):
            raise ValueError(f"{w!r} is not one word (letters, digits, underscore; "
                             "comma-separated)")
    return frozenset(w.casefold() for w in words)


def priority_rules(rules: tuple[PriorityRule, ...], words: frozenset[str]) -> PriorityRules:
    """The core's configuration from the two parsed settings."""
    return PriorityRules(rules, words)
