"""Real worker processes and Kafka clients for integration tests (no mocks).

Each test gets its own topic prefix, so topics, consumer group and changelog never mix
between tests sharing the session's broker. Waits poll real state with a deadline; they
never sleep a fixed time and hope.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


#: The peer token test workers share (see `Worker.env`).
PEER_TOKEN = "peer-token-of-the-test-group"


@dataclass
class Worker:
    """One `cxstream worker` subprocess with its own web port."""

    bootstrap: str
    prefix: str
    data_dir: Path
    partitions: int = 4
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"worker-{self.port}.log"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CXSTREAM_")}
        env.update({
            "CXSTREAM_BROKER": self.bootstrap,
            "CXSTREAM_TOPIC_PREFIX": self.prefix,
            "CXSTREAM_PARTITIONS": str(self.partitions),
            "CXSTREAM_WEB_PORT": str(self.port),
            "CXSTREAM_DATA_DIR": str(self.data_dir),
            "CXSTREAM_SESSION_TIMEOUT": "6",
            "CXSTREAM_LOG_LEVEL": "info",
            **self.extra_env,
        })
        # The workers of a test group reach each other's /_cx/partials, which is never open:
        # they share a peer token unless the test sets its own tokens.
        own = ("CXSTREAM_API_TOKEN", "CXSTREAM_PEER_TOKEN")
        if not any(k.startswith(own) for k in self.extra_env):
            env["CXSTREAM_PEER_TOKEN"] = PEER_TOKEN
        return env

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "cxstream", "worker"], env=self.env(),
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.starts += 1

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    async def wait_ready(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as s:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log_tail()}")
                try:
                    async with s.get(f"{self.url}/readyz") as r:
                        if r.status == 200:
                            return
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    pass
                await asyncio.sleep(0.3)
        raise AssertionError(f"worker not ready within {timeout_s}s:\n{self.log_tail()}")

    async def get(self, path: str, **params: str) -> tuple[int, Any]:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s:
            async with s.get(f"{self.url}{path}", params=params) as r:
                body = await r.read()
                ctype = r.headers.get("content-type", "")
                return r.status, orjson.loads(body) if "json" in ctype else body.decode()

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, text = await self.get("/metrics")
        assert status == 200, text
        out = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return out

    async def events_total(self) -> float:
        return sum(v for (name, _), v in (await self.metrics()).items()
                   if name == "cxstream_events_total")

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM and wait (a clean shutdown)."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: the crash case."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


async def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str,
                   interval_s: float = 0.3) -> Any:
    """Poll an async predicate until it returns a truthy value."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await predicate()
        if last:
            return last
        await asyncio.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})")


async def produce(bootstrap: str, topic: str, items: list[tuple[bytes | None, bytes]]
                  ) -> list[tuple[int, int]]:
    """Send (key, value) pairs in order; returns each message's (partition, offset)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in items]
        metas = [await f for f in futures]
    finally:
        await producer.stop()
    return [(m.partition, m.offset) for m in metas]


async def read_all(bootstrap: str, topic: str, *, idle_s: float = 1.0) -> list[Any]:
    """Every record currently on `topic` (all partitions, from the beginning)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        if not parts:
            await consumer._client.force_metadata_update()  # noqa: SLF001
            parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out: list[Any] = []
        while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
            batch = await consumer.getmany(timeout_ms=int(idle_s * 1000))
            for records in batch.values():
                out.extend(records)
        return out
    finally:
        await consumer.stop()


async def wait_drained(bootstrap: str, group: str, topics: list[str], timeout_s: float = 180.0) -> None:
    """Wait until `group` has committed the end offset of every partition of `topics`."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]
        if not tps:
            await consumer._client.force_metadata_update()  # noqa: SLF001
            tps = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]

        lagging: dict[str, str] = {}

        async def drained() -> bool:
            end = await consumer.end_offsets(tps)
            committed = await admin.list_consumer_group_offsets(group)
            lagging.clear()
            for tp in tps:
                done = committed[tp].offset if tp in committed else 0
                if done < end[tp]:
                    lagging[f"{tp.topic}[{tp.partition}]"] = f"committed {done} of {end[tp]}"
            return not lagging

        try:
            await wait_for(drained, timeout_s, f"group {group} to commit every offset of {topics}", 0.5)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; still lagging: {lagging}") from None
    finally:
        await consumer.stop()
        await admin.close()


# -- shared by the acceptance and chaos tests: a mixed input stream and its oracle checks ------
# (appended; tests/chaos builds on these, and test_scores/test_alerts follow the same rules)

import random  # noqa: E402

from cxstream.core.alert import alert_id as _alert_id  # noqa: E402
from cxstream.core.timefmt import format_rfc3339 as _fmt  # noqa: E402
from cxstream.core.windows import DAY as _DAY  # noqa: E402
from cxstream.core.windows import HOUR as _HOUR  # noqa: E402
from cxstream.core.windows import MINUTE as _MINUTE  # noqa: E402

from ..unit.core import oracle as _oracle  # noqa: E402

#: Largest default window (30 d) + default grace (1 h): what "too late" is measured against.
HORIZON_MS = 30 * _DAY + _HOUR
WINDOW_MS = {"1h": _HOUR, "24h": _DAY, "7d": 7 * _DAY, "30d": 30 * _DAY}


@dataclass(frozen=True)
class Sent:
    """One input message a test sends, and what the worker must make of it."""

    topic: str  #: short input topic name: surveys, customers or interactions
    key: bytes | None
    value: bytes
    bad: str | None = None  #: the dead-letter code the decoder must give; None: valid
    doc: dict[str, Any] | None = None  #: the document, when valid


def _bad_surveys(rng: Any, cid: str, other: str, i: int, at: int) -> list[Sent]:
    """One bad survey message per decoder rule a producer can plausibly break."""
    ok = {"event_id": f"bad{i}", "customer_id": cid, "survey": "nps", "score": 3,
          "occurred_at": _fmt(at)}
    k = cid.encode()

    def doc(**over: Any) -> bytes:
        return orjson.dumps({**ok, **over})

    options = [
        (k, bytes(rng.randrange(256) for _ in range(rng.randrange(1, 60))) + b"\xff", "not_json"),
        (k, b'{"event_id": "x", "score": NaN}', "not_json"),
        (k, doc()[:-3], "not_json"),
        (k, b'{"event_id": "caf\xe9"}', "not_json"),
        (k, b"[1, 2, 3]", "not_object"),
        (k, orjson.dumps({k2: v for k2, v in ok.items() if k2 != "score"}), "missing_field"),
        (k, doc(score="9"), "wrong_type"),
        (k, doc(score=7.5), "wrong_type"),
        (k, doc(event_id=""), "invalid_value"),
        (k, doc(survey="eNPS"), "unknown_survey"),
        (k, doc(score=11), "score_out_of_range"),
        (k, doc(score=1e300), "score_out_of_range"),
        (k, doc(occurred_at="yesterday"), "bad_timestamp"),
        (other.encode(), doc(), "key_mismatch"),
        (None, doc(), "key_mismatch"),
        (k, doc(comment="x" * 70_000), "too_large"),
    ]
    key, value, code = rng.choice(options)
    return [Sent("surveys", key, value, code)]


def mixed_stream(seed: int, responses: int, *, customers: int = 250, now_ms: int | None = None,
                 bad_share: float = 0.05, late_share: float = 0.03, retry_share: float = 0.04,
                 profile_updates: int = 100) -> tuple[list[Sent], list[Sent]]:
    """(profiles, surveys): NPS/CSAT/CES responses over 42 days ending 2 h ago, roughly in time
    order with ±3 h jitter (out of order), producer retries (duplicates), responses far too
    late once stream time has moved on, and bad messages of every decoder rule; plus a
    profile per customer (owner, segment), later owner updates and a few bad profiles."""
    rng = random.Random(seed)
    end = (now_ms if now_ms is not None else int(time.time() * 1000)) - 2 * _HOUR
    start = end - 42 * _DAY
    ids = [f"cust-{i:04d}" for i in range(customers)]
    seg = {c: {"plan": rng.choice(["free", "pro", "enterprise"]),
               "region": rng.choice(["na", "eu", "br", "apac"])} for c in ids}

    def profile(c: str, owner: str, at: int) -> Sent:
        d = {"customer_id": c, "segment": seg[c], "updated_at": _fmt(at),
             "owner": {"name": owner, "email": f"{owner}@example.com"}}
        return Sent("customers", c.encode(), orjson.dumps(d), None, d)

    profiles = [profile(c, rng.choice(["ana", "ben"]), start) for c in ids]
    for j in range(profile_updates):
        profiles.append(profile(rng.choice(ids), rng.choice(["cleo", "dan"]), start + j * _HOUR))
        if rng.random() < 0.1:
            c = rng.choice(ids)
            bad = rng.choice([(c.encode(), b"\x00\x01garbage", "not_json"),
                              (c.encode(), orjson.dumps({"customer_id": c}), "missing_field"),
                              (b"someone-else", orjson.dumps({"customer_id": c, "segment": {},
                                                              "updated_at": _fmt(start)}),
                               "key_mismatch")])
            profiles.append(Sent("customers", *bad))

    surveys: list[Sent] = []
    for i in range(responses):
        cid = rng.choice(ids)
        if rng.random() < bad_share:
            surveys.extend(_bad_surveys(rng, cid, rng.choice(ids), i, end - rng.randrange(_DAY)))
            continue
        kind = rng.choices(["nps", "csat", "ces"], weights=[3, 1, 1])[0]
        at = start + (end - start) * i // responses + rng.randrange(-3 * _HOUR, 3 * _HOUR)
        if rng.random() < late_share:
            at -= 36 * _DAY  # too late once stream time has moved on
        d = {"event_id": f"r{i}", "customer_id": cid, "survey": kind,
             "score": rng.randrange(11) if kind == "nps" else rng.randrange(1, 6),
             "occurred_at": _fmt(min(at, end)), "segment": seg[cid],
             "touchpoint": rng.choice(["support", "billing", "product"]),
             "channel": rng.choice(["email", "chat", "phone", "web"]), "comment": "why"}
        surveys.append(Sent("surveys", cid.encode(), orjson.dumps(d), None, d))
        if rng.random() < retry_share:  # a producer retry of a recent valid message
            recent = [s for s in surveys[-200:] if s.bad is None]
            surveys.append(rng.choice(recent))
    return profiles, surveys


async def produce_sent(bootstrap: str, prefix: str, items: list[Sent], *, chunks: int = 1,
                       pause_s: tuple[float, float] = (0.0, 0.0), seed: int = 0
                       ) -> list[tuple[int, int]]:
    """Send `items` in order (each to `<prefix><topic>`), in `chunks` with a random pause in
    `pause_s` between them (pacing, so a stream is still flowing while a test breaks things);
    returns each item's (partition, offset)."""
    rng = random.Random(seed)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                                max_request_size=2 * 1024 * 1024)
    await producer.start()
    positions: list[tuple[int, int]] = []
    try:
        size = max(1, -(-len(items) // chunks))
        for n in range(0, len(items), size):
            futures = [await producer.send(f"{prefix}{s.topic}", s.value, key=s.key)
                       for s in items[n:n + size]]
            positions.extend((m.partition, m.offset) for m in [await f for f in futures])
            if n + size < len(items) and pause_s[1] > 0:
                await asyncio.sleep(rng.uniform(*pause_s))
    finally:
        await producer.stop()
    return positions


@dataclass
class Expected:
    """What a worker must have made of everything sent: the oracle's view."""

    events: list[_oracle.Ev] = field(default_factory=list)  #: valid responses, with positions
    dead: dict[tuple[str, int, int], str] = field(default_factory=dict)  #: position → code
    alerts: dict[str, tuple[str, str]] = field(default_factory=dict)  #: alert_id → (kind, customer)

    def add(self, prefix: str, items: list[Sent], positions: list[tuple[int, int]]) -> None:
        assert len(items) == len(positions)
        for s, (p, o) in zip(items, positions):
            if s.bad is not None:
                self.dead[(f"{prefix}{s.topic}", p, o)] = s.bad
            elif s.topic == "surveys":
                assert s.doc is not None
                self.events.append(_oracle.Ev.of(s.doc, p, o))

    async def produce(self, bootstrap: str, prefix: str, items: list[Sent]) -> None:
        """Send `items` in order (`produce_sent`, one chunk) and `add` them at the positions
        the broker gave them."""
        self.add(prefix, items, await produce_sent(bootstrap, prefix, items))

    def finish(self, prefix: str, horizon: int = HORIZON_MS) -> "Expected":
        """Add the too-late dead letters and the alerts implied by the events."""
        for p, o in _oracle.too_late(self.events, horizon):
            self.dead[(f"{prefix}surveys", p, o)] = "too_late"
        self.alerts = alert_oracle(self.events, horizon)
        return self

    @property
    def accepted(self) -> list[_oracle.Ev]:
        return _oracle.accepted(self.events, HORIZON_MS)


def alert_oracle(events: list[_oracle.Ev], horizon: int = HORIZON_MS,
                 programs: dict[str, _oracle.Program] = _oracle.BUILTIN_PROGRAMS, *,
                 risk: bool = True) -> dict[str, tuple[str, str]]:
    """alert_id → (kind, customer) of every customer alert (`oracle.customer_turns`: each
    customer's latest answer of each metric by (occurred_at, event_id), recomputed from
    scratch after every accepted response in log order; too-late responses and duplicates
    are never applied). `risk`: CXSTREAM_AT_RISK (default true)."""
    return {_alert_id(cid, eid): (kind, cid) for (cid, eid), (kind, _) in
            _oracle.customer_turns(events, horizon, programs, risk=risk).items()}


async def assert_scores_match_oracle(w: Worker, events: list[_oracle.Ev],
                                     horizon: int = HORIZON_MS) -> int:
    """Every segment, every default window, several whole-minute instants: the worker's
    `/scores` equals the brute-force oracle exactly. Returns the number of rows compared."""
    good = _oracle.accepted(events, horizon)
    stream_time = max(_oracle.stream_times(events, horizon).values())
    top = stream_time - stream_time % _MINUTE
    instants = {
        "1h": [top + _MINUTE, top - 3 * _DAY - 17 * _MINUTE, top - 20 * _DAY + 41 * _MINUTE],
        "24h": [top + _MINUTE, top - 5 * _DAY + 7 * _MINUTE, top + 3 * _HOUR],
        "7d": [top + _MINUTE, top - 9 * _DAY - 59 * _MINUTE],
        "30d": [top + _MINUTE, top - 37 * _MINUTE],
    }
    segments = sorted(_oracle.all_segments(good))
    checked = 0
    for window, ts in instants.items():
        for t in ts:
            status, body = await w.get("/scores", window=window, as_of=_fmt(t))
            assert status == 200, (w.url, window, t, body)
            got = {row["segment"]: row for row in body["segments"]}
            for segment in segments:
                want = _oracle.scores(good, segment, t - WINDOW_MS[window], t)
                if segment not in got:
                    assert sum(want[s]["responses"] for s in ("nps", "csat", "ces")) == 0, \
                        (w.url, segment, window, t, want)
                    continue
                try:
                    _oracle.assert_matches(got[segment], want)
                except AssertionError as exc:
                    raise AssertionError(f"{w.url} {segment} {window} as of {_fmt(t)}: {exc}") from None
                checked += 1
    return checked


def _doc(rec: Any) -> dict[str, Any]:
    return orjson.loads(rec.value)


#: Alert kinds about a segment, not a customer: left out of the customer alert oracle.
SEGMENT_KINDS = ("below_target", "back_on_target", "segment_shift")


async def assert_alerts_match_oracle(bootstrap: str, prefix: str,
                                     expected: dict[str, tuple[str, str]]) -> int:
    """The alert topic holds exactly the oracle's alerts by alert_id; a repeated alert_id
    (allowed after a crash) is the same alert (kind, customer, response). Returns the number
    of repeated records."""
    # Customer alerts only: segment alerts have tests of their own (test_targets, test_trends).
    docs = [d for d in map(_doc, await read_all(bootstrap, f"{prefix}alerts"))
            if d["kind"] not in SEGMENT_KINDS]
    by_id: dict[str, tuple[Any, ...]] = {}
    for d in docs:
        what = (d["kind"], d["customer_id"], d["survey_event_id"], d["score"],
                d["previous_category"], d["occurred_at"])
        assert by_id.setdefault(d["alert_id"], what) == what, ("one alert_id, two alerts", d)
    got = {aid: (what[0], what[1]) for aid, what in by_id.items()}
    missing = {a: v for a, v in expected.items() if a not in got}
    extra = {a: v for a, v in got.items() if a not in expected}
    assert not missing and not extra and got == expected, \
        f"{len(missing)} missing (e.g. {list(missing.items())[:3]}), {len(extra)} unexpected " \
        f"(e.g. {list(extra.items())[:3]}), {sum(got[a] != v for a, v in expected.items() if a in got)} wrong kind"
    return len(docs) - len(by_id)


async def dead_letter_counts(bootstrap: str, prefix: str) -> tuple[dict[tuple[str, int, int], int],
                                                                   dict[tuple[str, int, int], dict[str, Any]]]:
    """(position → number of dead letters for it, position → one of them)."""
    counts: dict[tuple[str, int, int], int] = {}
    one: dict[tuple[str, int, int], dict[str, Any]] = {}
    for rec in await read_all(bootstrap, f"{prefix}deadletter"):
        d = _doc(rec)
        pos = (d["source_topic"], d["source_partition"], d["source_offset"])
        counts[pos] = counts.get(pos, 0) + 1
        one.setdefault(pos, d)
    return counts, one


async def assert_dead_letters_match(bootstrap: str, prefix: str,
                                    expected: dict[tuple[str, int, int], str], *,
                                    max_repeats_each: int) -> int:
    """Every bad input is dead-lettered with its code and a reason, at its own position; no
    other position is; one position is dead-lettered at most 1 + `max_repeats_each` times
    (0 without crashes). Returns the number of repeated records."""
    counts, one = await dead_letter_counts(bootstrap, prefix)
    missing = sorted(set(expected) - set(counts))
    extra = sorted(set(counts) - set(expected))
    assert not missing and not extra, \
        f"{len(missing)} bad inputs not dead-lettered (e.g. {missing[:5]}), {len(extra)} " \
        f"unexpected dead letters (e.g. {[one[p] for p in extra[:3]]})"
    wrong = {p: (one[p]["error_code"], code) for p, code in expected.items()
             if one[p]["error_code"] != code}
    assert not wrong, f"{len(wrong)} dead letters with another code (got, want): {list(wrong.items())[:5]}"
    assert all(one[p]["reason"] for p in expected)
    over = {p: n for p, n in counts.items() if n > 1 + max_repeats_each}
    assert not over, f"positions dead-lettered more than {1 + max_repeats_each} times: {over}"
    return sum(counts.values()) - len(counts)


async def split_between(a: Worker, b: Worker, partitions: int = 4) -> bool:
    """Both workers ready and owning some input partitions, all of them between the two."""
    try:
        (sa, ba), (sb, bb) = await a.get("/readyz"), await b.get("/readyz")
    except Exception:  # noqa: BLE001 - a worker still (re)starting is just not split yet
        return False
    return (sa == sb == 200 and bool(ba["partitions"]) and bool(bb["partitions"])
            and sorted(ba["partitions"] + bb["partitions"]) == list(range(partitions)))


async def wait_inputs_drained(w: Worker, timeout_s: float = 240.0) -> None:
    """Until the worker's group has committed every input message."""
    t = w.prefix
    await wait_drained(w.bootstrap, f"{t}cxstream", [f"{t}surveys", f"{t}customers", f"{t}interactions"],
                       timeout_s=timeout_s)


async def readyz(w: Worker, timeout_s: float = 2.0) -> int | None:
    """HTTP status of `/readyz`, or None when the worker does not answer."""
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as s:
            async with s.get(f"{w.url}/readyz") as r:
                await r.read()
                return r.status
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
        return None


def metric_samples(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str
                   ) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of one metric from `Worker.metrics()`, by label set."""
    return {labels: v for (n, labels), v in metrics.items() if n == name}


def loading(folder: Path) -> dict[str, str]:
    """Worker environment that loads the test-only `sitecustomize.py` in `folder` (a fault
    forced on the worker), ahead of the inherited PYTHONPATH."""
    return {"PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])}


def as_of_after(events: list[_oracle.Ev], horizon: int = HORIZON_MS) -> str:
    """The whole-minute `as_of` just past the latest stream time of `events`: scores asked at
    it see every accepted response."""
    return _fmt(max(_oracle.stream_times(events, horizon).values()) + _MINUTE)


async def scores_by_window(w: Worker, as_of: str) -> dict[str, Any]:
    """The worker's `/scores` for every default window at `as_of` (each must answer rows)."""
    out = {}
    for window in ("1h", "24h", "7d", "30d"):
        status, body = await w.get("/scores", window=window, as_of=as_of)
        assert status == 200 and body["segments"], body
        out[window] = body
    return out
