"""Segment targets: one `below_target` alert when a segment's score for a survey program,
over a target window, falls below the program's target, and one `back_on_target` when it
meets it again.

Why two stages: inputs are keyed by customer, so a segment's answers are spread over every
input partition and no partition alone knows its score. The partitions report their part of
each window to an internal topic (`<app id>-target-reports`, co-partitioned with the
inputs), where the report partition of the segment sums the parts and decides:

1. **Report** (input partition *p*, in the step of the response that moves its stream time
   past ``B + settle``, where the *boundary* ``B`` is a multiple of `TargetConfig.every_ms`):
   *p*'s counts of every target window ``[B − W, B)`` of every segment with answers, one
   record per report partition *q* holding the segments that belong to *q*
   (`report_partition`), an empty one when none does, so *q* hears from every partition.
   The counts are read from the state as that step left it. A record of the partition
   carries them (`reports`).
2. **Decide** (report partition *q*, `plan_report`): sums the reports of boundary ``B``;
   once every input partition's report of ``B`` is in, decides every (window, program,
   segment) of *q* with at least `min_responses` answers: below the target and not yet
   known below → `below_target`; meeting it and known below → `back_on_target`. What is
   known below is kept in *q*'s status entry, with the last boundary decided.

Guarantees:

* **By event time.** A report is a function of its partition's history up to the step that
  crosses ``B + settle``; the decision of ``B`` a function of the reports; so a replay of
  the same input decides the same way and gives the same alerts, with the same `alert_id`
  (`cxstream.core.alert.target_alert_id` of kind, program, window, segment and ``B``).
  Answers that arrive later than ``settle`` after a window's end count in the scores, not
  in that window's decision (they were not there when it was taken).
* **Once per crossing.** Boundaries are decided in order, each at most once: a report of a
  boundary at or before the last decided one changes nothing; a repeated report (same
  partition and part) is recognised by its tag. The decision's status entry is written
  only after the broker acknowledged its alerts (the agent's `after_alert` order), with
  the partial sums deleted after it: a crash before it decides again, the same way, from
  the same status; after it, every repeat is recognised (sums a crash left behind are never
  read again, and the worker deletes them when it takes the partition on: `stale_reports`).
* **Exactly the reports of a crash-free run.** A report is sent and acknowledged before the
  stream time that crosses its boundary is written (the agent sends reports with the
  batch's alerts), so a crash before re-crosses and reports again from the same state: a
  crash loses a suffix of a partition's changelog, never a middle.
* **Bounded.** A jump of stream time over many boundaries reports the last `MAX_JUMP`
  (older boundaries are then never decided: one partition's report is missing); at most
  `MAX_PENDING` boundaries wait for reports per report partition (the oldest is dropped).
  A boundary waits for every input partition: one that never receives responses holds
  the decisions back, as a watermark does (`cxstream_target_pending_boundaries`).

Pure: no I/O. Not compiled: it runs once per boundary, not per event.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import orjson

from cxstream.core import keys
from cxstream.core.alert import SCHEMA_VERSION, SEGMENT_KINDS, target_alert_id
from cxstream.core.buckets import window_counts_all
from cxstream.core.errors import ErrorCode, Rejection
from cxstream.core.programs import BUILTINS, Program
from cxstream.core.programscores import by_segment, own_counts, program_view
from cxstream.core.scoring import WIDTH, Counts, merge
from cxstream.core.segments import ALL, split_program_key
from cxstream.core.timefmt import MAX_MS, MIN_MS, format_rfc3339
from cxstream.core.trends import Change, change, z_for
from cxstream.core.windows import MINUTE, Window

__all__ = ["KINDS", "MAX_JUMP", "MAX_PENDING", "ReportPlan", "TargetConfig", "boundaries",
           "build_shift_alert", "build_target_alert", "decide", "decide_trends", "previous", "plan_report", "report_crossings", "report_partition", "reports",
           "stale_reports", "status_name"]

#: The alert kinds of this module.
KINDS = SEGMENT_KINDS
#: Most boundaries one step reports when the stream time jumps over several.
MAX_JUMP = 24
#: Most boundaries waiting for reports, per report partition.
MAX_PENDING = 48
#: Version of the report record (`reports`).
REPORT_VERSION = 1
_Z = 1.96


@dataclass(frozen=True, slots=True)
class TargetConfig:
    """What the segment checks are made on (`CXSTREAM_TARGET_WINDOWS`, `CXSTREAM_TREND_*`,
    `CXSTREAM_CHECK_*`, `cxstream.config.settings`).

    `windows`: the target windows; `programs`: the programs with a target (none: no target
    is checked). `trends`: the trend windows (none: no trend is tested).
    `partitions`: how many input partitions there are (= report partitions): a boundary is
    decided once that many have reported it. `max_report_bytes`: a report record is split
    into parts under it (the report topic's max.message.bytes, less room for the record)."""

    windows: tuple[Window, ...]
    every_ms: int
    settle_ms: int
    min_responses: int
    programs: tuple[Program, ...]
    partitions: int = 1
    #: The trend windows (`CXSTREAM_TREND_WINDOWS`): each segment's NPS in the window is
    #: tested against the window before it (`cxstream.core.trends`), `segment_shift` alerts.
    trends: tuple[Window, ...] = ()
    trend_level: float = 0.999
    trend_min_responses: int = 100
    max_report_bytes: int = 900_000
    #: The bound on a stored entry's value (`StepConfig.entry_max_bytes`): a window's sums
    #: that would pass it are not kept, and the window is not decided.
    max_entry_bytes: int = 1_047_564
    #: Whether a built-in program has a target: the built-ins' counts are the segment's own
    #: key less every program key, so every program key is then reported.
    builtin: bool = field(init=False)
    ids: frozenset[str] = field(init=False)
    #: The normal quantile of `trend_level`.
    z: float = field(init=False)

    def __post_init__(self) -> None:
        if self.every_ms <= 0 or self.every_ms % MINUTE:
            raise ValueError("the target check interval must be a positive whole number of "
                             "minutes")
        if self.settle_ms < 0:
            raise ValueError("the target settle time must not be negative")
        if self.partitions < 1:
            raise ValueError("partitions must be at least 1")
        if any(p.target is None for p in self.programs):
            raise ValueError("only programs with a target are checked")
        if not self.programs:
            object.__setattr__(self, "windows", ())  # no target to check them against
        object.__setattr__(self, "z", z_for(self.trend_level))
        object.__setattr__(self, "builtin", any(p.id in BUILTINS for p in self.programs))
        object.__setattr__(self, "ids", frozenset(p.id for p in self.programs))


def boundaries(old: int | None, new: int, cfg: TargetConfig) -> list[int]:
    """The boundaries whose window a step reports when it moves the partition's stream time
    from `old` (None: the partition had none) to `new`: every ``B`` (a multiple of
    `every_ms`) with ``old < B + settle ≤ new``, ascending, the last `MAX_JUMP` of them."""
    if old is None or new <= old:
        return []
    first = (old - cfg.settle_ms) // cfg.every_ms + 1
    last = (new - cfg.settle_ms) // cfg.every_ms
    first = max(first, last - MAX_JUMP + 1)
    return [k * cfg.every_ms for k in range(first, last + 1)]


def report_crossings(get: Callable[[str], Any], partition: int, old: int | None, new: int,
                     cfg: TargetConfig, out: list[tuple[int, bytes]]) -> None:
    """Add to `out` the reports (`reports`) of every boundary a step crosses when it moves
    the stream time of `partition` from `old` to `new` (`boundaries`)."""
    for boundary in boundaries(old, new, cfg):
        out.extend(reports(get, partition, boundary, cfg))


def report_partition(segment: str, partitions: int) -> int:
    """The report partition that decides `segment`: CRC-32 of its UTF-8 bytes, modulo the
    count (stable across processes and releases, unlike `hash`)."""
    return zlib.crc32(segment.encode()) % partitions


def _wanted(key: str, cfg: TargetConfig) -> bool:
    program = split_program_key(key)[0]
    return program is None or cfg.builtin or program in cfg.ids


def _plain(key: str) -> bool:
    return split_program_key(key)[0] is None


def previous(window: str) -> str:
    """How a report names the window before trend window `window`."""
    return f"{window}^"


def _reported(boundary: int, cfg: TargetConfig
              ) -> list[tuple[str, int, int, Callable[[str], bool]]]:
    """(name, start, end, which stored keys) of every window a report of `boundary` holds:
    the target windows (the keys their programs' scores need), the trend windows and the
    windows before them (the segments' own keys: the trend is of the metric-level NPS)."""
    out: dict[str, tuple[str, int, int, Callable[[str], bool]]] = {}
    for window in cfg.trends:
        out[window.name] = (window.name, boundary - window.ms, boundary, _plain)
        out[previous(window.name)] = (previous(window.name), boundary - 2 * window.ms,
                                      boundary - window.ms, _plain)
    for window in cfg.windows:
        out[window.name] = (window.name, boundary - window.ms, boundary,
                            lambda key: _wanted(key, cfg))
    return list(out.values())


def reports(get: Callable[[str], Any], partition: int, boundary: int,
            cfg: TargetConfig) -> list[tuple[int, bytes]]:
    """Partition `partition`'s report of `boundary`: (report partition, record value) for
    every report partition, at least one record each (empty when none of its segments has
    answers), each one's counts under `cfg.max_report_bytes` unless one segment alone is
    larger (the record's few other fields are not counted: the worker's bound leaves room).

    `get` reads the state as the crossing step left it. A record is
    ``{"v": 1, "p": partition, "n": partitions, "b": boundary, "i": part, "k": parts,
    "c": {window: {stored key: counts}}}``; a segment's keys (its own and its programs')
    always travel in one part."""
    n = cfg.partitions
    # report partition -> segment -> window -> key -> counts
    found: list[dict[str, dict[str, dict[str, Counts]]]] = [{} for _ in range(n)]
    for name, start, end, wanted in _reported(boundary, cfg):
        counts = window_counts_all(get, partition, start, end)
        for key in sorted(counts):
            if not wanted(key):
                continue
            segment = split_program_key(key)[1]
            q = report_partition(segment, n)
            found[q].setdefault(segment, {}).setdefault(name, {})[key] = counts[key]
    out: list[tuple[int, bytes]] = []
    for q in range(n):
        parts = _parts(found[q], cfg.max_report_bytes)
        for i, part in enumerate(parts):
            out.append((q, orjson.dumps({"v": REPORT_VERSION, "p": partition, "n": n,
                                         "b": boundary, "i": i, "k": len(parts), "c": part})))
    return out


def _parts(segments: dict[str, dict[str, dict[str, Counts]]], limit: int
           ) -> list[dict[str, dict[str, Counts]]]:
    """`segments` (segment → window → key → counts) as window → key → counts parts, each
    under `limit` bytes of JSON where the segments allow (whole segments per part)."""
    parts: list[dict[str, dict[str, Counts]]] = [{}]
    size = 0
    for segment in sorted(segments):
        windows = segments[segment]
        grown = len(orjson.dumps(windows))
        if size and size + grown > limit:
            parts.append({})
            size = 0
        size += grown
        for window, counted in windows.items():
            parts[-1].setdefault(window, {}).update(counted)
    return parts


@dataclass(slots=True)
class ReportPlan:
    """What one report record does at its report partition: `outcome` (``accepted``,
    ``duplicate``: its partition and part were summed already; ``replayed``: its boundary
    was decided already; ``deadlettered``: `rejection`), the alerts of a decision, and the
    state writes (`first`, sealed, then `writes`), to be carried out after the broker
    acknowledged the alerts."""

    outcome: str
    rejection: Rejection | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)
    writes: list[tuple[str, Any]] = field(default_factory=list)
    #: Deletions of the sums of windows that can never be decided (passed over, or past
    #: `MAX_PENDING`), to be written before `writes` and apart from them (sealed): the
    #: status entry in `writes` no longer names them, so a crash between the two must not
    #: keep them.
    first: list[tuple[str, Any]] = field(default_factory=list)
    #: The boundaries waiting for reports once this is written (for the gauge).
    waiting: int = 0


def _bad(reason: str) -> ReportPlan:
    return ReportPlan("deadlettered", Rejection(ErrorCode.INVALID_VALUE,
                                                f"target report: {reason}"))


def _decode(raw: bytes | None, cfg: TargetConfig) -> dict[str, Any] | ReportPlan:
    """The report record `raw`, checked as far as a decision needs: every field of its type
    and range (`n` this deployment's partition count, `b` a check point), every counts list
    of eight non-negative integers, and the keys as the state stores them (`_keys_problem`).
    A record that fails is dead-lettered, so summing and deciding never raise."""
    try:
        doc = orjson.loads(raw or b"")
    except orjson.JSONDecodeError:
        return ReportPlan("deadlettered", Rejection(ErrorCode.NOT_JSON,
                                                    "target report: not JSON"))
    if not isinstance(doc, dict) or type(doc.get("v")) is not int \
            or doc["v"] != REPORT_VERSION:
        return _bad(f"not a report of version {REPORT_VERSION}")
    for name in ("p", "n", "b", "i", "k"):
        if type(doc.get(name)) is not int:
            return _bad(f"{name} must be an integer")
    if doc["n"] != cfg.partitions:
        return _bad(f"made for {doc['n']} input partitions, not {cfg.partitions}")
    if not (0 <= doc["p"] < doc["n"] and 0 <= doc["i"] < doc["k"]):
        return _bad("partition or part out of range")
    longest = max([w.ms for w in cfg.windows] + [2 * w.ms for w in cfg.trends] + [0])
    if doc["b"] % cfg.every_ms or not MIN_MS + longest <= doc["b"] <= MAX_MS:
        return _bad("b is not a check point (a multiple of CXSTREAM_CHECK_EVERY)")
    windows = doc.get("c")
    if not isinstance(windows, dict) or not all(
            isinstance(counted, dict) and all(_is_counts(v) for v in counted.values())
            for counted in windows.values()):
        return _bad("c must map windows to stored keys to counts")
    for counted in windows.values():
        problem = _keys_problem(counted)
        if problem is not None:
            return _bad(problem)
    return doc


def _keys_problem(counted: Mapping[str, Counts]) -> str | None:
    """What is wrong with a window's keys, or None: as stored, each program key is of a
    program other than the built-ins, beside its segment's own key, and holds at most that
    key's counts on its metric's positions (`programscores.by_segment`, `own_counts`)."""
    try:
        for group in by_segment(counted).values():
            for builtin in BUILTINS:
                own_counts(group, builtin.id)
    except ValueError as exc:
        return f"counts not as stored ({exc})"
    return None


def _is_counts(value: object) -> bool:
    return (type(value) is list and len(value) == WIDTH
            and all(type(x) is int and x >= 0 for x in value))


def _add(total: Mapping[str, Mapping[str, Counts]], part: Mapping[str, Mapping[str, Counts]]
         ) -> dict[str, dict[str, Counts]]:
    """`total` plus `part` (window → key → counts), as new dicts: stored values are never
    mutated (the batch's pending writes and the store may share them)."""
    out = {window: dict(counted) for window, counted in total.items()}
    for window, counted in part.items():
        acc = out.setdefault(window, {})
        for key, counts in counted.items():
            cur = acc.get(key)
            acc[key] = list(counts) if cur is None else merge(cur, counts)
    return out


def _complete(seen: Mapping[str, int], partitions: int) -> bool:
    """Whether `seen` (tag ``"<partition>.<part>"`` → parts) holds every part of every
    partition's report."""
    got: dict[int, set[int]] = {}
    parts: dict[int, int] = {}
    for tag, k in seen.items():
        p, i = (int(x) for x in tag.split("."))
        got.setdefault(p, set()).add(i)
        parts[p] = k
    return all(len(got.get(p, ())) == parts.get(p, -1) for p in range(partitions))


def plan_report(get: Callable[[str], Any], cfg: TargetConfig, partition: int,
                raw: bytes | None, now_ms: int) -> ReportPlan:
    """What the report record `raw` does at report partition `partition` (module
    docstring, stage 2), read against `get` (the state as every earlier record of the
    partition left it). Never raises for a bad record: it is dead-lettered."""
    decoded = _decode(raw, cfg)
    if isinstance(decoded, ReportPlan):
        return decoded
    doc = decoded
    b, n = doc["b"], doc["n"]
    skey = keys.target_status_key(partition)
    status = get(skey) or {"d": None, "below": [], "pending": []}
    pkey = keys.target_pending_key(partition, b)
    if status["d"] is not None and b <= status["d"]:
        # Decided already; a leftover of its sums (a crash between the status and the
        # deletion) goes now.
        return ReportPlan("replayed", writes=[(pkey, None)] if get(pkey) is not None else [])
    pending = get(pkey) or {"n": n, "seen": {}, "c": {}}
    tag = f"{doc['p']}.{doc['i']}"
    source = f"{doc['p']}."
    # A report seen already, in part or whole; or one made again after a crash of its
    # partition, perhaps in another number of parts (from a state that may already hold
    # later answers: the first report, acknowledged before that state was written, came
    # first and is the one of a clean run).
    if tag in pending["seen"] or any(t.startswith(source) and k != doc["k"]
                                     for t, k in pending["seen"].items()):
        return ReportPlan("duplicate", waiting=len(status["pending"]))
    seen = {**pending["seen"], tag: doc["k"]}
    sums = _add(pending["c"], doc["c"])
    waiting = sorted({*status["pending"], b})
    if not _complete(seen, n):
        entry = {"n": n, "seen": seen, "c": sums}
        if len(orjson.dumps(entry)) > cfg.max_entry_bytes:
            # Too many segments and programs for one entry: this window is not decided.
            waiting.remove(b)
            return ReportPlan("deadlettered", Rejection(
                ErrorCode.ENTRY_TOO_LARGE,
                "target report: the sums of this window's reports would pass the state entry "
                "bound, so it is not decided; raise the state changelog's max.message.bytes, "
                "or check fewer programs or windows (CXSTREAM_TARGET_WINDOWS)"),
                first=[(pkey, None)], writes=[(skey, {**status, "pending": waiting})],
                waiting=len(waiting))
        dropped, waiting = waiting[:-MAX_PENDING], waiting[-MAX_PENDING:]
        writes: list[tuple[str, Any]] = [(skey, {**status, "pending": waiting})]
        if b in waiting:
            writes.append((pkey, entry))
        return ReportPlan("accepted", writes=writes, waiting=len(waiting),
                          first=[(keys.target_pending_key(partition, old), None)
                                 for old in dropped])
    alerts, below = decide(sums, set(status["below"]), b, cfg, now_ms)
    shifts, shifted, trend = decide_trends(sums, status.get("shift", {}), b, cfg, now_ms)
    # Earlier boundaries still waiting never complete now: every partition has passed them.
    passed = [old for old in waiting if old < b]
    later = [old for old in waiting if old > b]
    return ReportPlan("accepted", alerts=alerts + shifts, waiting=len(later),
                      first=[(keys.target_pending_key(partition, old), None) for old in passed],
                      writes=[(skey, {"d": b, "below": sorted(below), "pending": later,
                                      "shift": shifted, "trend": trend}),
                              (pkey, None)])


def stale_reports(pending_keys: list[str], status: Any) -> list[str]:
    """The keys among `pending_keys` (a report partition's `keys.target_pending_key`s) of
    windows decided already by `status` (its status entry): what a crash between writing a
    decision and deleting its sums leaves behind. Never read again (a report of a decided
    window changes nothing), and deleted by the worker when it takes the partition on."""
    decided = None if status is None else status.get("d")
    if decided is None:
        return []
    return [key for key in pending_keys if int(key.rsplit("|", 1)[1]) <= decided]


def status_name(window: str, program: str, segment: str) -> str:
    """How the status entry names one (window, program, segment) known below its target."""
    return f"{window}|{program}|{segment}"


def decide(sums: Mapping[str, Mapping[str, Counts]], below: set[str], boundary: int,
           cfg: TargetConfig, now_ms: int) -> tuple[list[dict[str, Any]], set[str]]:
    """The alerts of boundary `boundary`, given every partition's summed counts (`sums`:
    window → stored key → counts) and what is known below target (`below`, status names);
    returns them (window, segment, program order) and what is known below after."""
    below = set(below)
    alerts: list[dict[str, Any]] = []
    for window in cfg.windows:
        groups = by_segment(sums.get(window.name, {}))
        for segment, group in groups.items():
            for program in cfg.programs:
                view = program_view(group, program, min_responses=cfg.min_responses)
                part = view[program.metric]
                if part["responses"] < cfg.min_responses:
                    continue  # too few answers to say: what was known stays
                name = status_name(window.name, program.id, segment)
                meets = view["meets_target"]
                if meets is False and name not in below:
                    kind = "below_target"
                    below.add(name)
                elif meets is True and name in below:
                    kind = "back_on_target"
                    below.discard(name)
                else:
                    continue
                alerts.append(build_target_alert(kind, program, window, segment, boundary,
                                                 part, now_ms))
    return alerts, below


def decide_trends(sums: Mapping[str, Mapping[str, Counts]], shifted: Mapping[str, str],
                  boundary: int, cfg: TargetConfig, now_ms: int
                  ) -> tuple[list[dict[str, Any]], dict[str, str], dict[str, list[float]]]:
    """The `segment_shift` alerts of boundary `boundary`: for every trend window and segment
    with NPS answers in it and in the window before, the change of NPS
    (`cxstream.core.trends.change`); a significant one alerts when its direction is not the
    one alerted last for that window and segment (`shifted`: ``"<window>|<segment>"`` →
    "up"/"down"), so at most once per direction until it reverses. Returns the alerts,
    the directions alerted last after them, and this boundary's changes
    (``"<window>|<segment>"`` → [change, low, high, significant 0/1], for the gauges)."""
    shifted = dict(shifted)
    alerts: list[dict[str, Any]] = []
    changes: dict[str, list[float]] = {}
    for window in cfg.trends:
        current = sums.get(window.name, {})
        before = sums.get(previous(window.name), {})
        for segment in sorted(current):
            if segment not in before or not _plain(segment):
                continue
            found = change(current[segment], before[segment], z=cfg.z,
                           min_responses=cfg.trend_min_responses)
            if found is None:
                continue
            name = f"{window.name}|{segment}"
            changes[name] = [found.change, found.low, found.high, int(found.significant)]
            direction = found.direction
            if direction is None or shifted.get(name) == direction:
                continue
            shifted[name] = direction
            alerts.append(build_shift_alert(direction, window, segment, boundary, found, cfg,
                                            now_ms))
    return alerts, shifted, changes


def build_shift_alert(direction: str, window: Window, segment: str, boundary: int,
                      found: Change, cfg: TargetConfig, now_ms: int) -> dict[str, Any]:
    """The `segment_shift` alert document (schemas/alert.schema.json): key on the alert
    topic = `segment_key`; `window_start`/`window_end` the window tested, `previous_*` the
    one before; scores, change and interval in NPS points."""
    dim, _, value = segment.partition(":")
    return {
        "alert_id": target_alert_id("segment_shift", direction, window.name, segment,
                                    boundary),
        "kind": "segment_shift",
        "direction": direction,
        "segment_key": segment,
        "segment": {} if segment == ALL else {dim: value},
        "metric": "nps",
        "window": window.name,
        "window_start": format_rfc3339(boundary - window.ms),
        "window_end": format_rfc3339(boundary),
        "previous_start": format_rfc3339(boundary - 2 * window.ms),
        "nps": found.nps,
        "previous_nps": found.previous_nps,
        "change": found.change,
        "interval": [found.low, found.high],
        "level": cfg.trend_level,
        "responses": found.responses,
        "previous_responses": found.previous_responses,
        "detected_at": format_rfc3339(now_ms),
        "schema_version": SCHEMA_VERSION,
    }


def _margin(program: Program, part: Mapping[str, Any]) -> float | None:
    """The 95 % margin of error of the score, in its unit: NPS as `scoring.nps` gives it;
    CSAT the normal approximation for a share, in points; CES None (the counts keep no
    sum of squares, so the mean's variance is unknown)."""
    if program.metric == "nps":
        return part["margin_of_error"]
    if program.metric == "csat":
        n = part["responses"]
        p = part["satisfied"] / n
        return _Z * 100.0 * (p * (1 - p) / n) ** 0.5
    return None


def build_target_alert(kind: str, program: Program, window: Window, segment: str,
                       boundary: int, part: Mapping[str, Any], now_ms: int) -> dict[str, Any]:
    """The alert document of a crossing (schemas/alert.schema.json, target kinds): key on
    the alert topic = `segment_key`. `part`: the program's score object
    (`programscores.program_view`)."""
    score = part["mean"] if program.metric == "ces" else part["score"]
    dim, _, value = segment.partition(":")
    return {
        "alert_id": target_alert_id(kind, program.id, window.name, segment, boundary),
        "kind": kind,
        "segment_key": segment,
        "segment": {} if segment == ALL else {dim: value},
        "program": program.id,
        "metric": program.metric,
        "window": window.name,
        "window_start": format_rfc3339(boundary - window.ms),
        "window_end": format_rfc3339(boundary),
        "score": score,
        "target": program.target,
        "responses": part["responses"],
        "margin_of_error": _margin(program, part),
        "detected_at": format_rfc3339(now_ms),
        "schema_version": SCHEMA_VERSION,
    }
