"""Survey programs: each named survey with its metric, scale, ranges and target.

A program is one survey a team runs and reads apart from the others: a relationship NPS, a
CSAT 1–10 after delivery, a CES 1–7 after checkout. Its **metric** (`nps`, `csat`, `ces`)
says how answers are scored, its **scale** which integer answers are valid, and:

* ``nps``: always the scale [0, 10] with the standard categories (detractors 0–6, passives
  7–8, promoters 9–10); `turns` says whether its answers drive a customer's
  detractor/recovered turns (default true).
* ``csat``: `satisfied`, the range of answers that count as satisfied; the score is the
  share of satisfied answers in % (0..100).
* ``ces``: `high_effort`, the range of answers that mean high effort; the score is the mean
  answer, reported with the share of high-effort answers.

Ranges (`satisfied`, `high_effort`) are [low, high] within the scale, and reach exactly one
of its ends: that end is the one that means "satisfied" or "most effort". By default a range
is the top two points of the scale; a CES scale on which 1 is the most effort (a CES 2.0
agreement scale, say) says so with ``high_effort = [1, 2]``. A range may not cover the whole
scale (every answer would count).

`target` (optional) is the score the team aims at: csat a % satisfied 0..100, nps a score
-100..100, ces a mean answer within the scale (met at or below it when the most effort is at
the top of the scale, at or above it when at the bottom).

The **fingerprint** (metric and scale) is what can never change once a program has data:
the counts kept for it only mean something on that scale. Ranges, targets and `turns` may
change; counts already kept were counted with the ranges of their time.

The built-in programs `nps` (0–10), `csat` (1–5, satisfied 4–5) and `ces` (1–5, 5 = most
effort, high effort 4–5) are the three fixed surveys of `cxstream.core.scoring`, exactly.

Pure: no I/O. Not compiled: the per-event path reads `rules` and `scales`, built once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Iterable, Iterator, Literal, Mapping, TypeAlias, cast

from cxstream.core.fieldrules import LABEL_MAX, PROGRAM_ID, program_id
from cxstream.core.model import SCORE_RANGES, SURVEY_KINDS
from cxstream.core.scoring import (
    CES_HIGH,
    CES_N,
    CES_SUM,
    CSAT_N,
    CSAT_SATISFIED,
    DETRACTORS,
    PASSIVES,
    PROMOTERS,
    Category,
    Increment,
    category,
)

__all__ = ["BUILTINS", "BUILTIN_RULES", "FIELDS", "METRICS", "NPS_SCALE", "PROGRAM_ID",
           "SCALE_BOUND", "Metric", "Problem", "Program", "ProgramError", "Range", "Registry",
           "Rule", "conflicts", "define", "rules", "scales", "valid_id"]

Metric: TypeAlias = Literal["nps", "csat", "ces"]
METRICS: tuple[Metric, ...] = SURVEY_KINDS
#: An inclusive [low, high] range of integer answers.
Range: TypeAlias = tuple[int, int]
#: (field, message): one problem of a program definition; the message says what to do.
Problem: TypeAlias = tuple[str, str]

#: The keys a program definition takes besides its id.
FIELDS: Final = ("metric", "scale", "satisfied", "high_effort", "target", "turns")
NPS_SCALE: Final[Range] = (0, 10)
#: The default scale of csat and ces programs: that of the built-in ones.
DEFAULT_SCALE: Final[Range] = (1, 5)
#: Scale ends lie within -SCALE_BOUND..SCALE_BOUND: every survey tool's scales do (0–100
#: sliders included), and it keeps every count and message short.
SCALE_BOUND: Final = 100
_TARGETS: Final[Mapping[str, tuple[float, float, str]]] = {
    "nps": (-100.0, 100.0, "an NPS score"), "csat": (0.0, 100.0, "a % of satisfied answers")}
_SLOTS: Final[Mapping[Category, int]] = {"promoter": PROMOTERS, "passive": PASSIVES,
                                         "detractor": DETRACTORS}


class ProgramError(ValueError):
    """A program definition breaks rules; `problems` lists every one, each once."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("; ".join(f"{field}: {text}" for field, text in self.problems))


def valid_id(value: object) -> bool:
    """Whether `value` is a program id: 1..64 characters of a-z, 0-9, - and _, starting
    with a letter."""
    return type(value) is str and program_id(value)


def _shown(value: object) -> str:
    """A value of a definition as a message shows it: short (an id can be anything)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _pair(value: object) -> Range | None:
    """`value` as a [low, high] pair of integers (in any order), or None."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        low, high = value
        if type(low) is int and type(high) is int:
            return low, high
    return None


def _fmt(r: Range) -> str:
    return f"[{r[0]}, {r[1]}]"


def _top_two(scale: Range) -> Range:
    return max(scale[0], scale[1] - 1), scale[1]


def _scale_problem(metric: object, scale: object) -> str | None:
    if scale is None:
        return None
    pair = _pair(scale)
    if pair is None:
        return (f"{_shown(scale)} is not a scale: write two integers [low, high], "
                "e.g. [1, 10]")
    low, high = pair
    if metric == "nps":
        if pair != NPS_SCALE:
            return (f"{_fmt(pair)}: nps programs always use the scale [0, 10] (the standard "
                    "categories need it): remove scale")
        return None
    if low > high:
        return f"{_fmt(pair)} is inverted: write the low end first, {_fmt((high, low))}"
    if low == high:
        return f"{_fmt(pair)} has one point: give the scale at least two, e.g. [1, 5]"
    if low < -SCALE_BOUND or high > SCALE_BOUND:
        return f"{_fmt(pair)}: keep the ends of a scale within -{SCALE_BOUND}..{SCALE_BOUND}"
    return None


def _range_problem(name: str, metric: object, value: object, scale: Range | None) -> str | None:
    """The problem of the range `name` (`satisfied`, `high_effort`) given as `value` (None:
    absent, the default) on a program of `metric` and `scale` (None: unknown, not judged)."""
    owner = "csat" if name == "satisfied" else "ces"
    if value is not None and metric in METRICS and metric != owner:
        return f"applies to {owner} programs only: remove it"
    if metric != owner:
        return None
    if value is None:
        if scale is not None and _top_two(scale) == scale:
            return (f"the default (the top two points) would cover the whole scale "
                    f"{_fmt(scale)}: set {name}, e.g. {_fmt((scale[1], scale[1]))}")
        return None
    pair = _pair(value)
    if pair is None:
        return f"{_shown(value)} is not a range: write two integers [low, high], e.g. [4, 5]"
    low, high = pair
    if low > high:
        return f"{_fmt(pair)} is inverted: write the low end first, {_fmt((high, low))}"
    if scale is None:
        return None
    if low < scale[0] or high > scale[1]:
        return f"{_fmt(pair)} lies outside the scale {_fmt(scale)}: keep it within"
    if pair == scale:
        return (f"{_fmt(pair)} covers the whole scale, so every answer would count: leave "
                "out at least one point")
    if low != scale[0] and high != scale[1]:
        what = "the best answer" if name == "satisfied" else "the most effort"
        return (f"{_fmt(pair)} reaches neither end of the scale {_fmt(scale)}: use the top "
                f"or the bottom of the scale, e.g. {_fmt(_top_two(scale))}, or "
                f"{_fmt((scale[0], scale[0] + 1))} if {scale[0]} is {what}")
    return None


def _target_problem(metric: object, target: object, scale: Range | None) -> str | None:
    if target is None:
        return None
    if (isinstance(target, bool) or not isinstance(target, (int, float))
            or not math.isfinite(target)):
        return f"{_shown(target)} is not a number: write the score aimed at, e.g. 50"
    if isinstance(metric, str) and metric in _TARGETS:
        low, high, what = _TARGETS[metric]
    elif metric == "ces" and scale is not None:
        low, high, what = scale[0], scale[1], "a mean answer on the scale"
    else:
        return None
    if not low <= target <= high:
        return (f"{target:g} is outside {low:g}..{high:g}: set a target within it ({what}), "
                f"e.g. {_example_target(metric, scale)}")
    return None


def _example_target(metric: object, scale: Range | None) -> str:
    if metric == "ces" and scale is not None:
        return f"{(scale[0] + scale[1]) / 2:g}"
    return "50" if metric == "nps" else "80"


def _problems(id: object, metric: object, scale: object, satisfied: object,
              high_effort: object, target: object, turns: object) -> list[Problem]:
    """Every problem of a definition, at most one per field (a field that cannot be judged
    because another one is wrong is not judged: one mistake, one message)."""
    found: list[Problem] = []
    if not valid_id(id):
        found.append(("id", f"{_shown(id)} is not a program id: use 1..{LABEL_MAX} characters "
                            "of a-z, 0-9, - and _, starting with a letter, e.g. csat-delivery"))
    if metric is None:
        found.append(("metric", "missing: set metric = \"nps\", \"csat\" or \"ces\""))
    elif metric not in METRICS:
        found.append(("metric", f"{_shown(metric)} is not a metric: use \"nps\", \"csat\" or "
                                "\"ces\""))
    problem = _scale_problem(metric, scale)
    if problem is not None:
        found.append(("scale", problem))
    known_scale: Range | None = None
    if problem is None and metric in METRICS:
        known_scale = _resolved_scale(metric, scale)
    for name, value in (("satisfied", satisfied), ("high_effort", high_effort)):
        problem = _range_problem(name, metric, value, known_scale)
        if problem is not None:
            found.append((name, problem))
    problem = _target_problem(metric, target, known_scale)
    if problem is not None:
        found.append(("target", problem))
    if turns is not None:
        if metric in METRICS and metric != "nps":
            found.append(("turns", "applies to nps programs only: remove it"))
        elif type(turns) is not bool:
            found.append(("turns", f"{_shown(turns)} is not true or false: write turns = "
                                   "true or turns = false"))
    return found


def _resolved_scale(metric: object, scale: object) -> Range:
    if metric == "nps":
        return NPS_SCALE
    pair = _pair(scale)
    return DEFAULT_SCALE if pair is None else pair


@dataclass(frozen=True, slots=True)
class Program:
    """One survey program, valid by construction (`ProgramError` otherwise, listing every
    problem). Build it with `define`, which fills the defaults; here every field is given as
    it is: `satisfied` is set exactly for csat, `high_effort` exactly for ces, and `turns` is
    False for anything but nps."""

    id: str
    metric: Metric
    scale: Range
    satisfied: Range | None = None
    high_effort: Range | None = None
    target: float | None = None
    turns: bool = False

    def __post_init__(self) -> None:
        found = _problems(self.id, self.metric, self.scale, self.satisfied, self.high_effort,
                          self.target, self.turns if self.metric == "nps" else None)
        for name, value in (("scale", self.scale), ("satisfied", self.satisfied),
                            ("high_effort", self.high_effort)):
            if value is not None and type(value) is not tuple:
                found.append((name, "must be a tuple (a Program never changes)"))
        for name, value in (("satisfied", self.satisfied), ("high_effort", self.high_effort)):
            if self.metric == ("csat" if name == "satisfied" else "ces") and value is None:
                found.append((name, "missing: build programs with define(), which sets the "
                                    "default"))
        if self.metric != "nps" and self.turns:
            found.append(("turns", "applies to nps programs only: leave it False"))
        if found:
            raise ProgramError(found)

    @property
    def fingerprint(self) -> str:
        """What may never change once the program has data: metric and scale, e.g.
        ``"csat 1..10"`` (readable, so a refusal can say what changed)."""
        return f"{self.metric} {self.scale[0]}..{self.scale[1]}"

    @property
    def effort_at_top(self) -> bool:
        """Whether the top of the scale is the most effort (ces programs only)."""
        if self.high_effort is None:
            raise ValueError(f"program {self.id} is {self.metric}, not ces")
        return self.high_effort[1] == self.scale[1]

    def in_scale(self, score: object) -> bool:
        """Whether `score` is an answer on this program's scale (an int, not a bool)."""
        return type(score) is int and self.scale[0] <= score <= self.scale[1]

    def _score(self, score: object, metric: Metric) -> int:
        """`score` once it is an answer of this program, which is of `metric`."""
        if self.metric != metric:
            raise ValueError(f"program {self.id} is {self.metric}, not {metric}")
        if type(score) is not int or not self.in_scale(score):
            raise ValueError(f"program {self.id} takes integers "
                             f"{self.scale[0]}..{self.scale[1]}, got {_shown(score)}")
        return score

    def category(self, score: object) -> Category:
        """The NPS category of `score` (nps programs only; ValueError otherwise)."""
        return category(self._score(score, "nps"))

    def is_satisfied(self, score: object) -> bool:
        """Whether `score` lies in the satisfied range (csat programs only)."""
        value = self._score(score, "csat")
        assert self.satisfied is not None  # set for every csat program
        return self.satisfied[0] <= value <= self.satisfied[1]

    def is_high_effort(self, score: object) -> bool:
        """Whether `score` lies in the high-effort range (ces programs only)."""
        value = self._score(score, "ces")
        assert self.high_effort is not None  # set for every ces program
        return self.high_effort[0] <= value <= self.high_effort[1]

    @property
    def at_risk(self) -> Range | None:
        """The answers that put a customer at risk (`at_risk` alerts, see
        docs/concepts/alerts.md), None for nps programs. ces: the `high_effort` range. csat:
        the two points at the end of the scale opposite the `satisfied` range, less any
        point of it: [1, 2] on 1–5 and on 1–10 (satisfied at the top), [4, 5] on 1–5 when
        satisfied is [1, 2], [1, 1] on [1, 2] when satisfied is [2, 2]."""
        if self.high_effort is not None:
            return self.high_effort
        if self.satisfied is None:
            return None
        low, high = self.scale
        if self.satisfied[1] == high:  # satisfied at the top: the bottom is the worst
            return low, min(low + 1, self.satisfied[0] - 1)
        return max(high - 1, self.satisfied[1] + 1), high

    def increment(self, score: object) -> Increment:
        """What one answer adds to a counts list of `cxstream.core.scoring` (the same
        positions): for the built-ins, exactly `scoring.increment(metric, score)`."""
        if self.metric == "nps":
            return ((_SLOTS[self.category(score)], 1),)
        if self.metric == "csat":
            return ((CSAT_N, 1), (CSAT_SATISFIED, int(self.is_satisfied(score))))
        high = int(self.is_high_effort(score))  # checks the score
        return ((CES_N, 1), (CES_SUM, self._score(score, "ces")), (CES_HIGH, high))

    def meets_target(self, score: float | None) -> bool | None:
        """Whether `score` (the program's score: NPS, % satisfied, or CES mean) meets the
        target; None without a target or without a score. A CES mean meets it at or below
        the target when the most effort is at the top of the scale, else at or above it."""
        if self.target is None or score is None:
            return None
        if self.metric == "ces" and self.effort_at_top:
            return score <= self.target
        return score >= self.target


def define(id: object, metric: object, *, scale: object = None, satisfied: object = None,
           high_effort: object = None, target: object = None, turns: object = None
           ) -> Program:
    """The program of a definition as a registry file writes it (values typed `object`:
    they come from TOML), absent fields (None) taking their defaults: scale [0, 10] for nps
    and [1, 5] for csat and ces, ranges the top two points of the scale, no target, `turns`
    true for nps. Raises `ProgramError` listing every problem, at most one per field."""
    found = _problems(id, metric, scale, satisfied, high_effort, target, turns)
    if found or type(id) is not str or metric not in METRICS:  # (the last two: for mypy)
        raise ProgramError(found)
    kind = cast(Metric, metric)
    full = _resolved_scale(kind, scale)
    default = _top_two(full)
    return Program(id=id, metric=kind, scale=full,
                   satisfied=(_pair(satisfied) or default) if kind == "csat" else None,
                   high_effort=(_pair(high_effort) or default) if kind == "ces" else None,
                   target=float(target) if isinstance(target, (int, float)) else None,
                   turns=kind == "nps" and turns is not False)


class Registry:
    """The programs of one deployment, by id. Iterates in id order (stable whatever order
    a file lists them in); refuses two programs with one id."""

    __slots__ = ("_programs",)

    def __init__(self, programs: Iterable[Program]) -> None:
        by_id: dict[str, Program] = {}
        for program in programs:
            if program.id in by_id:
                raise ValueError(f"program id {program.id!r} appears twice: give each "
                                 "program its own id")
            by_id[program.id] = program
        self._programs = {key: by_id[key] for key in sorted(by_id)}

    def __len__(self) -> int:
        return len(self._programs)

    def __iter__(self) -> Iterator[Program]:
        return iter(self._programs.values())

    def __contains__(self, id: object) -> bool:
        return id in self._programs

    def __getitem__(self, id: str) -> Program:
        return self._programs[id]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Registry):
            return NotImplemented
        return self._programs == other._programs

    def __hash__(self) -> int:
        return hash(tuple(self._programs.values()))

    def __repr__(self) -> str:
        return f"Registry({list(self._programs.values())!r})"

    def get(self, id: str) -> Program | None:
        """The program `id`, None when the registry has none by that id."""
        return self._programs.get(id)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._programs)

    def of_metric(self, metric: Metric) -> tuple[Program, ...]:
        """The programs of `metric`, in id order."""
        return tuple(p for p in self._programs.values() if p.metric == metric)

    def fingerprints(self) -> dict[str, str]:
        """Program id → `Program.fingerprint`: what state keeps to notice a changed
        definition (`conflicts`)."""
        return {key: p.fingerprint for key, p in self._programs.items()}


def conflicts(before: Mapping[str, str], after: Registry) -> list[tuple[str, str, str]]:
    """(id, fingerprint before, fingerprint now) of every program of `after` whose metric or
    scale differs from the fingerprint `before` holds for its id, in id order. Programs only
    one side has are no conflict (a new program; one no longer listed)."""
    return [(p.id, before[p.id], p.fingerprint) for p in after
            if p.id in before and before[p.id] != p.fingerprint]


#: The three built-in programs, the fixed surveys of `cxstream.core.scoring`.
BUILTINS: Final = Registry(define(kind, kind, scale=SCORE_RANGES[kind]) for kind in SURVEY_KINDS)


#: What the per-event path needs of a program, precomputed once (`rules`): its metric and
#: scale; whether its answers also count under keys of their own (`segments.program_key`:
#: every program but a built-in, whose own counts are the metric's less the others');
#: whether an NPS answer of it drives the customer's turns; the increment of each score,
#: indexed by score − low; its fingerprint; and whether each score puts a customer at risk
#: (`Program.at_risk`, all False for nps), indexed by score − low. A plain tuple: read by
#: index in the compiled core.
Rule: TypeAlias = tuple[Metric, int, int, bool, bool, tuple[Increment, ...], str,
                        tuple[bool, ...]]


def rules(registry: Registry) -> dict[str, Rule]:
    """Program id → its `Rule`."""
    out: dict[str, Rule] = {}
    for p in registry:
        low, high = p.scale
        risk = p.at_risk
        out[p.id] = (p.metric, low, high, p.id not in BUILTINS, p.metric == "nps" and p.turns,
                     tuple(p.increment(score) for score in range(low, high + 1)),
                     p.fingerprint,
                     tuple(risk is not None and risk[0] <= score <= risk[1]
                           for score in range(low, high + 1)))
    return out


def scales(registry: Registry) -> dict[str, tuple[Metric, int, int]]:
    """Program id → (metric, lowest answer, highest answer): what the decoder checks."""
    return {p.id: (p.metric, p.scale[0], p.scale[1]) for p in registry}


#: `rules(BUILTINS)`: the three fixed surveys.
BUILTIN_RULES: Final = rules(BUILTINS)
