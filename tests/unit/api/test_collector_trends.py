"""The trend gauges (`cxstream.api.collector.trend_families`): read from the status entries of
the owned report partitions, so each segment is exported once across workers; at most
`CXSTREAM_METRIC_SEGMENTS_MAX` segments per window, the largest changes first."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from cxstream.api.collector import trend_families
from cxstream.worker.processor import Processor


def samples(families: list[Any]) -> dict[tuple[str, str, str], float]:
    return {(f.name, s.labels["segment"], s.labels["window"]): s.value
            for f in families for s in f.samples}


def test_trend_gauges_come_from_the_owned_report_partitions(processor: Processor) -> None:
    store: Any = processor.state.data
    store["s|0"] = {"d": 0, "below": [], "pending": [],
                    "trend": {"7d|region:eu": [-20.5, -30.1, -10.9, 1],
                              "7d|all": [-2.0, -6.0, 2.0, 0]}}
    store["s|1"] = {"d": 0, "below": [], "pending": [],
                    "trend": {"7d|region:us": [3.0, -4.0, 10.0, 0]}}
    got = samples(trend_families(processor, [0]))
    assert got == {("cxstream_segment_nps_change", "region:eu", "7d"): -20.5,
                   ("cxstream_segment_nps_change", "all", "7d"): -2.0,
                   ("cxstream_segment_nps_change_significant", "region:eu", "7d"): 1,
                   ("cxstream_segment_nps_change_significant", "all", "7d"): 0}
    assert len(samples(trend_families(processor, [0, 1]))) == 6
    processor.settings = replace(processor.settings, metric_segments_max=1)
    assert samples(trend_families(processor, [0, 1])) == {
        ("cxstream_segment_nps_change", "region:eu", "7d"): -20.5,
        ("cxstream_segment_nps_change_significant", "region:eu", "7d"): 1}
