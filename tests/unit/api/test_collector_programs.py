"""Scrape-time metrics over state holding program keys (`segments.program_key`): the keys
are no segments of their own, the gauges are the metric-level sums, and the CES mean is left
out where CES programs of different scales answered (as the scores API withholds it).

A real Processor over a dict state filled with hand-made day entries, stored the way the
data model says; the worker's Faust objects are the small fakes of `test_collector`."""

from __future__ import annotations

from pathlib import Path

from cxstream.api import collector as api_collector
from cxstream.config.settings import Settings
from cxstream.core import keys
from cxstream.core.programs import BUILTINS, Program, define
from cxstream.core.segments import program_key
from cxstream.core.windows import DAY
from cxstream.worker.processor import Processor

from .test_collector import FakeApp, own, samples

AS_OF = 20_757 * DAY
CES_7 = define("ces-7", "ces", scale=[1, 7])
RNPS = define("rnps", "nps")
SURVEYS = """
[programs.ces-7]
metric = "ces"
scale = [1, 7]

[programs.rnps]
metric = "nps"
"""


def entry(answers: list[tuple[Program, int, list[str]]]) -> dict[str, object]:
    counts: dict[str, list[int]] = {}
    for program, score, segments in answers:
        for segment in segments:
            for key in ([segment] if program.id in BUILTINS
                        else [segment, program_key(program.id, segment)]):
                cur = counts.setdefault(key, [0] * 8)
                for position, amount in program.increment(score):
                    cur[position] += amount
    return {"o": 0, "s": counts}


def test_program_keys_are_no_segments_and_the_ces_mean_needs_one_scale(tmp_path: Path) -> None:
    path = tmp_path / "surveys.toml"
    path.write_text(SURVEYS)
    settings = Settings.from_env({"CXSTREAM_SURVEYS": str(path)})
    app = FakeApp()
    state: dict[str, object] = {}
    processor = Processor(app, settings, state)  # type: ignore[arg-type]
    ces = BUILTINS["ces"]
    state[keys.bucket_key(0, DAY, AS_OF - DAY)] = entry([
        (ces, 5, ["all", "plan:pro"]), (CES_7, 7, ["all", "plan:free"]),
        (RNPS, 10, ["all", "plan:free"]), (BUILTINS["nps"], 0, ["all", "plan:pro"])])
    state[keys.bucket_key(1, DAY, AS_OF - DAY)] = entry([(CES_7, 1, ["all", "plan:free"])])
    own(app, 0, 1)
    got = samples(api_collector.WorkerCollector(app, processor, ready=lambda: True,
                                                clock=lambda: AS_OF / 1000))
    labels = {dict(lb)["segment"] for name, lb in got if dict(lb).get("segment")}
    assert labels == {"all", "plan:free", "plan:pro"}  # no `rnps/all`, `ces-7/plan:free`

    def value(name: str, segment: str) -> float | None:
        return got.get((name, (("segment", segment), ("window", "7d"))))

    assert value("cxstream_segment_nps_responses", "all") == 2  # rnps and nps summed
    assert value("cxstream_segment_nps", "all") == 0.0
    assert value("cxstream_segment_ces_responses", "all") == 3
    assert value("cxstream_segment_ces_effort_points", "all") == 13
    # `all`: ces (1–5) and ces-7 (1–7) answered: no mean; one scale in each plan: a mean.
    assert value("cxstream_segment_ces_effort_mean", "all") is None
    assert value("cxstream_segment_ces_effort_mean", "plan:pro") == 5.0
    assert value("cxstream_segment_ces_effort_mean", "plan:free") == 4.0
    assert value("cxstream_segment_ces_high_effort", "plan:free") == 1


def test_other_sums_the_rest_with_their_programs(tmp_path: Path) -> None:
    """Past CXSTREAM_METRIC_SEGMENTS_MAX the rest is summed into `other` with its program
    keys, so the CES mean rule holds there too."""
    path = tmp_path / "surveys.toml"
    path.write_text(SURVEYS)
    settings = Settings.from_env({"CXSTREAM_SURVEYS": str(path),
                                  "CXSTREAM_METRIC_SEGMENTS_MAX": "3"})
    app = FakeApp()
    state: dict[str, object] = {}
    processor = Processor(app, settings, state)  # type: ignore[arg-type]
    ces = BUILTINS["ces"]
    state[keys.bucket_key(0, DAY, AS_OF - DAY)] = entry([
        (ces, 5, ["all", "plan:a"]), (ces, 4, ["all", "plan:a"]), (ces, 3, ["all", "plan:b"]),
        (CES_7, 7, ["all", "plan:c"])])
    own(app, 0)
    got = samples(api_collector.WorkerCollector(app, processor, ready=lambda: True,
                                                clock=lambda: AS_OF / 1000))

    def value(name: str, segment: str) -> float | None:
        return got.get((name, (("segment", segment), ("window", "7d"))))

    assert {dict(lb)["segment"] for name, lb in got if dict(lb).get("segment")} == {
        "all", "plan:a", "other"}
    assert value("cxstream_segment_ces_responses", "other") == 2  # plan:b and plan:c
    assert value("cxstream_segment_ces_effort_mean", "other") is None  # 1–5 and 1–7
    assert value("cxstream_segment_ces_effort_mean", "plan:a") == 4.5
    assert got[("cxstream_metric_segments_summed", (("window", "7d"),))] == 2
