"""Typed, validated events: what the decoder hands to the rest of cxstream.

Timestamps are integer milliseconds since the Unix epoch (UTC). Window bounds are whole
minutes, so flooring sub-millisecond input never moves an event across a bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping, TypeAlias

SurveyKind: TypeAlias = Literal["nps", "csat", "ces"]
SURVEY_KINDS: tuple[SurveyKind, ...] = ("nps", "csat", "ces")

#: Inclusive score range per survey kind (CES: 5 = most effort).
SCORE_RANGES: Mapping[str, tuple[int, int]] = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 5)}
#: Program id → (metric, lowest answer, highest answer) of the three built-in programs: what
#: the decoder checks when it is given no registry (`programs.scales(programs.BUILTINS)`,
#: kept here so the compiled decoder needs nothing of the uncompiled `programs` module).
BUILTIN_SCALES: dict[str, tuple[SurveyKind, int, int]] = {
    kind: (kind, SCORE_RANGES[kind][0], SCORE_RANGES[kind][1]) for kind in SURVEY_KINDS}


class Record:
    """The base of the records built for every event (`SurveyResponse`, `Interaction`,
    `CustomerState`, `SegmentResult`, `Plan`): plain classes rather than dataclasses, because
    compiled (mypyc, see setup.py) a dataclass's `__init__` is still the Python one the
    dataclasses module generates, and the compiled core reads the fields of a class it
    compiled directly. What a dataclass gave besides, equality by value and a repr, comes
    from here, over the fields a record lists in `_fields`. Nothing assigns the fields after
    `__init__`, and what they hold is never mutated (see `cxstream.core.journey`)."""

    __slots__ = ()

    def _fields(self) -> tuple[object, ...]:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Record)
        return self._fields() == other._fields()

    def __repr__(self) -> str:
        return type(self).__name__ + repr(self._fields())


class SurveyResponse(Record):
    """A valid survey response: an answer `score` to the survey program `program` (an id of
    the registry, `cxstream.core.programs`), whose metric is `survey`. For the built-in
    programs the two are the same (`nps`, `csat`, `ces`); `program` left out (None) means
    that: the program is the metric's built-in one."""

    __slots__ = ("event_id", "customer_id", "survey", "score", "occurred_at", "segment",
                 "touchpoint", "channel", "comment", "interaction_id", "program")

    def __init__(self, event_id: str, customer_id: str, survey: SurveyKind, score: int,
                 occurred_at: int, segment: dict[str, str] | None = None,
                 touchpoint: str | None = None, channel: str | None = None,
                 comment: str | None = None, interaction_id: str | None = None,
                 program: str | None = None) -> None:
        self.event_id = event_id
        self.customer_id = customer_id
        self.survey: SurveyKind = survey
        self.score = score
        self.occurred_at = occurred_at  # epoch ms, UTC
        self.segment: dict[str, str] = {} if segment is None else segment
        self.touchpoint = touchpoint
        self.channel = channel
        self.comment = comment
        self.interaction_id = interaction_id
        self.program: str = survey if program is None else program

    def _fields(self) -> tuple[object, ...]:
        return (self.event_id, self.customer_id, self.survey, self.score, self.occurred_at,
                self.segment, self.touchpoint, self.channel, self.comment, self.interaction_id,
                self.program)



class Interaction(Record):
    """A valid interaction."""

    __slots__ = ("event_id", "customer_id", "occurred_at", "kind", "touchpoint", "channel",
                 "outcome", "segment")

    def __init__(self, event_id: str, customer_id: str, occurred_at: int, kind: str,
                 touchpoint: str | None = None, channel: str | None = None,
                 outcome: str | None = None, segment: dict[str, str] | None = None) -> None:
        self.event_id = event_id
        self.customer_id = customer_id
        self.occurred_at = occurred_at  # epoch ms, UTC
        self.kind = kind
        self.touchpoint = touchpoint
        self.channel = channel
        self.outcome = outcome
        self.segment: dict[str, str] = {} if segment is None else segment

    def _fields(self) -> tuple[object, ...]:
        return (self.event_id, self.customer_id, self.occurred_at, self.kind, self.touchpoint,
                self.channel, self.outcome, self.segment)



@dataclass(frozen=True, slots=True)
class Owner:
    name: str | None = None
    email: str | None = None
    slack: str | None = None


@dataclass(frozen=True, slots=True)
class CustomerProfile:
    customer_id: str
    segment: Mapping[str, str]
    updated_at: int  # epoch ms, UTC
    owner: Owner | None = None
    #: The customer's value: `tier` and/or `arr` with `currency` (only those given).
    value: dict[str, Any] | None = None


Event: TypeAlias = SurveyResponse | Interaction | CustomerProfile

