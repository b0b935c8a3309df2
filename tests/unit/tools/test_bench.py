"""The bench's helpers: percentiles, ratios to the baseline, phase parsing, the table,
which customers the produced events go to, the state's compacted size."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from cxstream.tools.bench.report import (add_ratios, compacted_state_bytes, dir_bytes,
                                         latency_summary, parse_phases, percentile, render_table,
                                         vm_hwm_kb)
from cxstream.tools.bench.run import first_events
from cxstream.cli import main
from cxstream.tools.simulator import Simulator


def test_percentile_interpolates_between_closest_ranks() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 50) == 3.0
    assert percentile(values, 100) == 5.0
    assert percentile(values, 25) == 2.0
    assert percentile([10.0, 20.0], 95) == pytest.approx(19.5)
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_latency_summary() -> None:
    s = latency_summary([float(i) for i in range(1, 101)])
    assert s["count"] == 100 and s["max_ms"] == 100.0
    assert s["p50_ms"] == pytest.approx(50.5)
    assert s["p99_ms"] == pytest.approx(99.01)
    assert latency_summary([]) == {"count": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None,
                                   "max_ms": None}


def test_ratios_are_rates_over_the_baseline() -> None:
    r = add_ratios({"baseline": {"events_per_s": 1000.0}, "faust": {"events_per_s": 250.0},
                    "cxstream": {"events_per_s": 100.0}, "windows": {"x": 1}})
    assert r["baseline"]["ratio_to_baseline"] == 1.0
    assert r["faust"]["ratio_to_baseline"] == 0.25
    assert r["cxstream"]["ratio_to_baseline"] == 0.1
    assert "ratio_to_baseline" not in r["windows"]
    # no baseline measured: ratios are unknown, not made up
    r = add_ratios({"cxstream": {"events_per_s": 100.0}})
    assert r["cxstream"]["ratio_to_baseline"] is None


def test_parse_phases_orders_and_adds_what_latency_needs() -> None:
    assert parse_phases("cxstream,baseline") == ["baseline", "cxstream"]
    assert parse_phases("latency") == ["cxstream", "latency"]
    assert parse_phases(" windows , faust ") == ["windows", "faust"]
    with pytest.raises(ValueError, match="throughput"):
        parse_phases("throughput")
    with pytest.raises(ValueError):
        parse_phases(",")


def test_table_shows_every_phase_and_ratios() -> None:
    r = add_ratios({
        "baseline": {"events": 3000, "seconds": 0.5, "events_per_s": 6000.0},
        "faust": {"events": 3000, "seconds": 1.5, "events_per_s": 2000.0},
        "cxstream": {"events": 3000, "seconds": 3.0, "events_per_s": 1000.0, "peak_rss_mb": 123.4,
                     "customers": 100, "store": "rocksdb://", "state_bytes_on_disk": 2 * 1024**2,
                     "state_bytes_compacted": 1024**2, "state_bytes_per_response": 700.0, "state_bytes_per_customer": 900.0},
        "latency": {"offered_events_per_s": 500.0, "sent_events_per_s": 499.0, "alerts": 12,
                    **latency_summary([10.0, 20.0, 30.0])},
        "windows": {"1h": {"us_per_response": 60.0, "writes_per_response": 18.0,
                           "buckets_per_query_max": 4},
                    "1h,24h,7d,30d": {"us_per_response": 66.0, "writes_per_response": 18.0,
                                      "buckets_per_query_max": 112},
                    "ratio_30d_vs_1h": 1.1},
        "errors": {"faust": "boom"},
    })
    text = render_table(r)
    lines = text.splitlines()
    assert lines[0].split() == ["phase", "events", "seconds", "events/s", "vs", "baseline"]
    assert lines[1].split()[-1] == "100.0%"
    assert lines[2].split()[0] == "faust" and lines[2].split()[-1] == "33.3%"
    assert lines[3].split()[0] == "cxstream" and lines[3].split()[-1] == "16.7%"
    assert "p50 20 ms" in text and "p99 30 ms" in text and "12 alerts" in text
    assert "123 MB" in text and "700 bytes per response" in text
    assert "flushed and compacted: 1.0 MB" in text and "directory: 2.0 MB" in text
    assert "cost ratio (up to 30 d) / (1 h only): 1.10" in text
    assert "faust: FAILED: boom" in text


def test_table_says_whether_the_core_was_compiled() -> None:
    """Figures of a plain Python core are not comparable with the README's: say so."""
    base = {"baseline": {"events": 1, "seconds": 1.0, "events_per_s": 1.0}}
    compiled = render_table(add_ratios({**base, "machine": {"core": "compiled"}}))
    plain = render_table(add_ratios({**base, "machine": {"core": "python"}}))
    assert "core: compiled (mypyc)" in compiled and "NOT compiled" not in compiled
    assert "core: plain Python, NOT compiled" in plain


def test_table_leaves_out_phases_not_run() -> None:
    text = render_table(add_ratios({"baseline": {"events": 1, "seconds": 1.0, "events_per_s": 1.0}}))
    assert "baseline" in text and "latency" not in text and "windows" not in text


def test_resource_helpers(tmp_path) -> None:
    import os

    kb = vm_hwm_kb(os.getpid())
    assert kb is None or kb > 0
    assert vm_hwm_kb(2**22 + 12345) is None
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_bytes(b"x" * 100)
    (tmp_path / "g").write_bytes(b"y" * 23)
    assert dir_bytes(tmp_path) == 123


def test_windows_phase_from_the_cli_writes_json(tmp_path) -> None:
    out = tmp_path / "bench.json"
    result = CliRunner(mix_stderr=False).invoke(
        main, ["bench", "--phases", "windows", "--responses", "300", "--json-out", str(out)])
    assert result.exit_code == 0, result.output + result.stderr
    import orjson

    data = orjson.loads(out.read_bytes())
    assert data["windows"]["responses"] == 300 and data["windows"]["ratio_30d_vs_1h"] > 0
    assert "cost ratio" in result.stdout


def test_unknown_phase_is_a_usage_error() -> None:
    result = CliRunner(mix_stderr=False).invoke(main, ["bench", "--phases", "nope"])
    assert result.exit_code == 2 and "Traceback" not in result.stderr and "nope" in result.stderr


@pytest.mark.parametrize(("events", "customers"), [(200, 100), (250, 100), (99, 100), (5, 1)])
def test_every_customer_gets_an_event_when_there_are_enough(events: int, customers: int) -> None:
    sim = Simulator(seed=3, customers=customers)
    firsts = first_events(sim.customers, events, seed=3)
    assert len({c.customer_id for c in firsts.values()}) == min(events, customers)
    assert all(0 <= i < events for i in firsts)
    assert 0 in firsts  # spread from the start of the run
    assert first_events(sim.customers, events, seed=3) == firsts  # reproducible


def test_live_events_are_prepared_ready_to_send() -> None:
    """Made up before the latency phase's clock starts: each one's `occurred_at` filled in
    when sent gives an event the worker accepts, in the partition `send` would choose."""
    from aiokafka.partitioner import DefaultPartitioner

    from cxstream.tools.bench.latency import _prepare_live
    from cxstream.core.decode import decode_interaction, decode_survey
    from cxstream.core.timefmt import format_rfc3339

    partitions = {f"p.{t}": [0, 1, 2, 3] for t in ("surveys", "interactions", "customers")}
    events = _prepare_live(Simulator(seed=3, customers=50), 300, partitions, "p.")
    now_ms = 1_790_000_000_123
    decoders = {"p.surveys": decode_survey, "p.interactions": decode_interaction}
    surveys = 0
    for topic, partition, key, parts, survey_id in events:
        value = format_rfc3339(now_ms).encode().join(parts)
        decoded = decoders[topic](value, key, now_ms)
        assert decoded.occurred_at == now_ms, decoded  # type: ignore[union-attr]
        assert partition == DefaultPartitioner()(key, [0, 1, 2, 3], [0, 1, 2, 3])
        assert (survey_id == decoded.event_id) is (topic == "p.surveys")  # type: ignore[union-attr]
        surveys += survey_id is not None
    assert 0 < surveys < len(events) == 300


def test_compacted_state_bytes_reads_a_live_database_and_leaves_it_alone(tmp_path: Path) -> None:
    """The state's size once flushed and compacted, read beside the process that writes it;
    its directory meanwhile holds the same writes, uncompressed, in the write-ahead log."""
    import rocksdict

    path = tmp_path / "worker" / "app" / "tables" / "state-0.db"
    path.parent.mkdir(parents=True)
    db = rocksdict.Rdict(str(path), rocksdict.Options(raw_mode=True))
    try:
        for i in range(20_000):
            for _ in range(3):  # three versions of each entry, as a customer's record gets
                db[f'"c|cust-{i:05d}"'.encode()] = orjson.dumps({"s": {"v": 3, "n": None, "k": i}})
        size = compacted_state_bytes(tmp_path / "worker")
        assert 0 < size < dir_bytes(tmp_path / "worker") / 2
        db[b'"c|cust-99999"'] = b"{}"  # still the writer's
        assert db[b'"c|cust-00007"'] == orjson.dumps({"s": {"v": 3, "n": None, "k": 7}})
    finally:
        db.close()
    assert compacted_state_bytes(tmp_path / "worker") >= size
