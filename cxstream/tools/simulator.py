"""Synthetic customers, journeys and survey responses, reproducible from a seed.

Each customer has a mood that drifts with what happens to them: unresolved tickets and
failed payments sour it, resolved ones lift it, so some customers turn detractor and some
recover later, which is what the alerting is for. Time comes in as an argument: the same
seed and timestamps give the same events.

Which surveys it answers:

* By default (and with a registry of the built-in programs only) the built-in mix: about
  30 % of events are answers of `nps`, `csat` and `ces`, picked at random. The benchmark
  measures this mix: it is kept exactly, event for event, for a given seed.
* Given a registry (`programs`) with programs beyond the built-ins, the answers of those
  programs instead, each on its own scale and ranges, asked when a team would ask them
  (`SurveyPlan`): a relationship NPS (an nps program with ``turns``) now and then, out of the
  blue; a transactional NPS (``turns = false``) right after a support interaction (a
  resolved ticket, a chat, a call), at that interaction's touchpoint and channel; a CSAT
  after an order (`purchase`); a CES after checkout (`purchase`, and more often after a
  failed payment). A follow-up answer is the next event (of the same customer) after its
  interaction, and names it as `interaction_id`. The built-ins get no answers then.
  Two more things hold with programs only (the built-in mix keeps its events): a customer's
  mood drifts back towards where it started (`MOOD_RETURN`), so scores hold steady however
  long the traffic runs instead of souring for good; and a transactional NPS answer is given
  in the mood its touchpoint leaves (`TRANSACTIONAL_MOOD`): a little better than the
  customer's own just after being helped, far worse at billing, whose tNPS therefore sits
  far below the other touchpoints' (the segment `touchpoint:billing` of the demo's target
  alert).
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final, Iterator, Mapping

from cxstream.core.programs import BUILTINS, Program, Registry
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


#: With programs: the share of events that is a relationship NPS answer, asked of a customer
#: at random (rarer than the transactional surveys, which follow interactions).
RELATIONSHIP_SHARE: Final = 0.08
#: With programs: most follow-up answers waiting to be the next event.
DUE_MAX: Final = 1000
#: With programs: interaction kind -> (role, how often a program of that role is asked after
#: it). Roles: "transactional" (nps programs without turns), "csat", "ces".
FOLLOW_UPS: Final[Mapping[str, tuple[tuple[str, float], ...]]] = {
    "ticket_resolved": (("transactional", 0.5),),
    "chat": (("transactional", 0.5),),
    "call": (("transactional", 0.5),),
    "purchase": (("csat", 0.5), ("ces", 0.4)),
    "payment_failed": (("ces", 0.8),),
}
#: With programs: the share of the way back to a customer's starting mood that each of their
#: interactions goes (after its own effect), so that moods swing around where they started.
#: Without it the interactions' effects, slightly negative on average, sour every customer
#: within minutes at the demo's rate.
MOOD_RETURN: Final = 0.1
#: With programs: how a touchpoint's experience moves the mood (0..1) in which a
#: transactional NPS answer at that touchpoint is given, not the customer's mood itself.
#: Customers just helped answer a little better than their mood; billing, where they come
#: about wrong charges, leaves them far worse: its tNPS sits around −75 while every other
#: touchpoint's is above 0, and segments that mix touchpoints stay above 0 too (the demo's
#: target of 0 is missed by `touchpoint:billing` alone).
TRANSACTIONAL_MOOD: Final[Mapping[str, float]] = {
    "support": 0.1, "product": 0.1, "billing": -0.35, "onboarding": 0.1, "renewal": 0.1}


def _pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([v for v, _ in weighted], weights=[w for _, w in weighted])[0]


@dataclass
class Customer:
    customer_id: str
    segment: dict[str, str]
    owner: dict[str, str] | None
    mood: float  # 0 (furious) .. 1 (delighted)
    #: Where the mood started (with programs it drifts back there: `MOOD_RETURN`).
    base: float = field(init=False)

    def __post_init__(self) -> None:
        self.base = self.mood


@dataclass(frozen=True)
class SurveyPlan:
    """Which programs are asked when (see the module docstring): the programs of a registry
    beyond the built-ins, by role; a role may have several (one is picked at random) or
    none (never asked)."""

    relationship: tuple[Program, ...]
    transactional: tuple[Program, ...]
    csat: tuple[Program, ...]
    ces: tuple[Program, ...]

    @classmethod
    def of(cls, registry: Registry | None) -> SurveyPlan | None:
        """The plan of `registry`'s own programs; None when it has none beyond the built-ins
        (then the built-in mix)."""
        own = [p for p in registry or () if p.id not in BUILTINS]
        if not own:
            return None
        return cls(relationship=tuple(p for p in own if p.metric == "nps" and p.turns),
                   transactional=tuple(p for p in own if p.metric == "nps" and not p.turns),
                   csat=tuple(p for p in own if p.metric == "csat"),
                   ces=tuple(p for p in own if p.metric == "ces"))

    def role(self, name: str) -> tuple[Program, ...]:
        return {"relationship": self.relationship, "transactional": self.transactional,
                "csat": self.csat, "ces": self.ces}[name]


def answer(rng: random.Random, program: Program, mood: float) -> int:
    """A customer's answer to `program` on its own scale: high (satisfied, least effort) the
    happier they are (`mood`, 0..1), with the spread of the built-in mix. For the built-in
    csat and ces the same distribution as the built-in mix."""
    low, high = program.scale
    if program.metric == "nps":
        return round(min(10.0, max(0.0, rng.gauss(mood * 10.5, 1.5))))
    # Position on the scale from 0 (worst) to 1 (best), then mapped to the end that is best:
    # the top unless the satisfied range is at the bottom, or the most effort at the top.
    if program.metric == "csat":
        assert program.satisfied is not None  # set for every csat program
        good, best_at_top = mood * 1.05, program.satisfied[1] == high
    else:
        good, best_at_top = mood, not program.effort_at_top
    position = rng.gauss(good, 0.2) * (high - low)
    value = low + position if best_at_top else high - position
    return round(min(float(high), max(float(low), value)))


def is_unhappy(program: Program, score: int) -> bool:
    """Whether `score` is a bad answer to `program`: a detractor, not satisfied, or high
    effort (which comment the simulated customer leaves)."""
    if program.metric == "nps":
        return program.category(score) == "detractor"
    if program.metric == "csat":
        return not program.is_satisfied(score)
    return program.is_high_effort(score)


class Simulator:
    """Yields (input topic short name, document) pairs.

    `programs`: a registry whose programs beyond the built-ins are answered instead of the
    built-in mix (None, or the built-ins only: the built-in mix, unchanged)."""

    def __init__(self, seed: int = 42, customers: int = 500,
                 programs: Registry | None = None) -> None:
        self.plan = SurveyPlan.of(programs)
        #: Follow-up answers due (customer, program, interaction): each is the next event
        #: asked for of its customer (or of anyone). Bounded, for callers that always name
        #: the customer: the oldest would then never come out.
        self.due: deque[tuple[Customer, Program, dict[str, Any]]] = deque(maxlen=DUE_MAX)
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
        if self.plan is not None:
            return self._program_event(self.plan, now_ms, customer)
        rng = self.rng
        c = customer if customer is not None else rng.choice(self.customers)
        self.n += 1
        event_id = f"sim-{self.seed}-{self.n}"
        occurred = format_rfc3339(now_ms)
        touchpoint, channel = _pick(rng, TOUCHPOINTS), _pick(rng, CHANNELS)
        if rng.random() < 0.7:
            return "interactions", self._interaction(c, event_id, occurred, touchpoint, channel)
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

    def _interaction(self, c: Customer, event_id: str, occurred: str, touchpoint: str,
                     channel: str) -> dict[str, Any]:
        """An interaction of `c`, moving their mood with its outcome."""
        rng = self.rng
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
        return doc

    def _program_event(self, plan: SurveyPlan, now_ms: int,
                       customer: Customer | None) -> tuple[str, dict[str, Any]]:
        """`event` with programs: a follow-up answer due, a relationship NPS answer, or an
        interaction (which may make follow-up answers due)."""
        rng = self.rng
        for i, (c, program, cause) in enumerate(self.due):
            if customer is None or c is customer:
                del self.due[i]
                return "surveys", self._response(c, program, now_ms, cause["touchpoint"],
                                                 cause["channel"], cause["event_id"])
        c = customer if customer is not None else rng.choice(self.customers)
        if plan.relationship and rng.random() < RELATIONSHIP_SHARE:
            # Asked by e-mail, of the relationship as a whole: no touchpoint.
            return "surveys", self._response(c, rng.choice(plan.relationship), now_ms, None,
                                             "email", None)
        self.n += 1
        doc = self._interaction(c, f"sim-{self.seed}-{self.n}", format_rfc3339(now_ms),
                                _pick(rng, TOUCHPOINTS), _pick(rng, CHANNELS))
        c.mood += (c.base - c.mood) * MOOD_RETURN
        for role, chance in FOLLOW_UPS.get(doc["kind"], ()):
            candidates = plan.role(role)
            if candidates and rng.random() < chance:
                self.due.append((c, rng.choice(candidates), doc))
        return "interactions", doc

    def _response(self, c: Customer, program: Program, now_ms: int, touchpoint: str | None,
                  channel: str, interaction_id: str | None) -> dict[str, Any]:
        """An answer of `c` to `program` at `now_ms`."""
        rng = self.rng
        self.n += 1
        mood = c.mood
        if program.metric == "nps" and not program.turns and touchpoint is not None:
            mood = min(1.0, max(0.0, mood + TRANSACTIONAL_MOOD.get(touchpoint, 0.0)))
        score = answer(rng, program, mood)
        doc: dict[str, Any] = {"event_id": f"sim-{self.seed}-{self.n}",
                               "customer_id": c.customer_id, "survey": program.id,
                               "score": score, "occurred_at": format_rfc3339(now_ms),
                               "segment": c.segment}
        if touchpoint is not None:
            doc["touchpoint"] = touchpoint
        doc["channel"] = channel
        if interaction_id is not None:
            doc["interaction_id"] = interaction_id
        if rng.random() < 0.4:
            doc["comment"] = rng.choice(COMMENTS_LOW if is_unhappy(program, score)
                                        else COMMENTS_HIGH)
        return doc
