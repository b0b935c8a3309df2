"""Synthetic customers, journeys and survey responses, reproducible from a seed.

Each customer has a mood that drifts with what happens to them: unresolved tickets and
failed payments sour it, resolved ones lift it, so some customers turn detractor and some
recover later, which is what the alerting is for. Time comes in as an argument: the same
seed and timestamps give the same events.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Iterator

from cxstream.core.timefmt import format_rfc3339

PLANS = (("free", 0.5), ("pro", 0.35), ("enterprise", 0.15))
REGIONS = (("na", 0.35), ("eu", 0.30), ("br", 0.15), ("apac", 0.20))
VALUE_BY_PLAN = {"free": ("low", "low", "mid"), "pro": ("mid", "mid", "high"),
                 "enterprise": ("high", "high", "mid")}
TOUCHPOINTS = (("support", 0.35), ("product", 0.25), ("billing", 0.15), ("onboarding", 0.15),
               ("renewal", 0.10))
CHANNELS = (("email", 0.3), ("chat", 0.25), ("phone", 0.15), ("web", 0.2), ("app", 0.1))
KINDS = (("login", 0.35), ("ticket_opened", 0.15), ("chat", 0.12), ("call", 0.08),
         ("purchase", 0.12), ("payment_failed", 0.03), ("ticket_resolved", 0.15))
COMMENTS_LOW = ("Support took days to answer.", "Billing charged me twice.",
                "The app keeps crashing after the update.", "Nobody solved my problem.")
COMMENTS_HIGH = ("Great support, thank you!", "Love the new dashboard.", "Fast and easy.")
MANAGERS = [
    {"name": name, "email": f"{name.split()[0].lower()}@example.com",
     "slack": f"@{name.split()[0].lower()}"}
    for name in ("Ana Souza", "Ben Carter", "Chen Wei", "Dana Kim", "Eva Novak", "Farid Haddad")
]


def _pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([v for v, _ in weighted], weights=[w for _, w in weighted])[0]


@dataclass
class Customer:
    customer_id: str
    segment: dict[str, str]
    owner: dict[str, str] | None
    mood: float  # 0 (furious) .. 1 (delighted)


class Simulator:
    """Yields (input topic short name, document) pairs."""

    def __init__(self, seed: int = 42, customers: int = 500) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.n = 0
        self.customers: list[Customer] = []
        for i in range(customers):
            plan = _pick(self.rng, PLANS)
            segment = {"plan": plan, "region": _pick(self.rng, REGIONS),
                       "value": self.rng.choice(VALUE_BY_PLAN[plan])}
            owner = self.rng.choice(MANAGERS) if plan != "free" else None
            self.customers.append(Customer(f"cust-{seed}-{i:05d}", segment, owner,
                                           mood=min(1.0, max(0.0, self.rng.gauss(0.75, 0.15)))))

    def profiles(self, now_ms: int) -> Iterator[tuple[str, dict[str, Any]]]:
        for c in self.customers:
            doc: dict[str, Any] = {"customer_id": c.customer_id, "segment": c.segment,
                                   "updated_at": format_rfc3339(now_ms)}
            if c.owner is not None:
                doc["owner"] = c.owner
            yield "customers", doc

    def event(self, now_ms: int, customer: Customer | None = None) -> tuple[str, dict[str, Any]]:
        """One interaction (about 70 %) or survey response at `now_ms`, of `customer` or of
        one picked at random."""
        rng = self.rng
        c = customer if customer is not None else rng.choice(self.customers)
        self.n += 1
        event_id = f"sim-{self.seed}-{self.n}"
        occurred = format_rfc3339(now_ms)
        touchpoint, channel = _pick(rng, TOUCHPOINTS), _pick(rng, CHANNELS)
        if rng.random() < 0.7:
            kind = _pick(rng, KINDS)
            outcome = None
            if kind in ("ticket_resolved", "purchase"):
                c.mood = min(1.0, c.mood + 0.08)
                outcome = "resolved" if kind == "ticket_resolved" else "completed"
            elif kind in ("ticket_opened", "payment_failed"):
                c.mood = max(0.0, c.mood - (0.25 if kind == "payment_failed" else 0.12))
                outcome = "open" if kind == "ticket_opened" else "failed"
            else:
                c.mood = min(1.0, max(0.0, c.mood + rng.gauss(0.0, 0.03)))
            doc: dict[str, Any] = {"event_id": event_id, "customer_id": c.customer_id,
                                   "occurred_at": occurred, "kind": kind,
                                   "touchpoint": touchpoint, "channel": channel,
                                   "segment": c.segment}
            if outcome:
                doc["outcome"] = outcome
            return "interactions", doc
        survey = rng.choices(("nps", "csat", "ces"), weights=(0.6, 0.25, 0.15))[0]
        if survey == "nps":
            score = round(min(10.0, max(0.0, rng.gauss(c.mood * 10.5, 1.5))))
        elif survey == "csat":
            score = round(min(5.0, max(1.0, rng.gauss(1 + c.mood * 4.2, 0.8))))
        else:  # CES: 5 = most effort, so unhappy customers report high effort
            score = round(min(5.0, max(1.0, rng.gauss(5 - c.mood * 4, 0.8))))
        doc = {"event_id": event_id, "customer_id": c.customer_id, "survey": survey,
               "score": score, "occurred_at": occurred, "segment": c.segment,
               "touchpoint": touchpoint, "channel": channel}
        if rng.random() < 0.4:
            unhappy = {"nps": score <= 6, "csat": score <= 3, "ces": score >= 4}[survey]
            doc["comment"] = rng.choice(COMMENTS_LOW if unhappy else COMMENTS_HIGH)
        return "surveys", doc
