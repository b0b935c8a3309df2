"""The notifier's isolation, without a broker: nothing an alert holds and nothing a sender
does makes `handle` raise; every failure is counted and dead-lettered with its reason; every
attempt ends within the time limit, a hanging HTTP or SMTP receiver included; and the
supervisor restarts a failed loop instead of letting it stop the worker.

Kafka writes go to an in-memory list (`Notifier._send` replaced); HTTP and SMTP receivers are
real servers on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, AsyncIterator

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiokafka.errors import CommitFailedError, KafkaConnectionError

from cxstream import metrics
from cxstream.config.settings import Settings
from cxstream.core.notification import Channel, NotifyConfig, Route
from cxstream.notify import notifier as notifier_module
from cxstream.notify import supervisor
from cxstream.notify.notifier import Notifier
from cxstream.notify.senders import new_session

ALERT = {"alert_id": "a-1", "customer_id": "c-1", "kind": "detractor", "score": 1,
         "comment": "slow", "occurred_at": "2026-01-01T00:00:00Z",
         "owner": {"email": "owner@example.com", "name": "Olga"}, "recent_interactions": []}


def counter(metric: Any, *labels: str) -> float:
    return metric.labels(*labels)._value.get()  # noqa: SLF001


@pytest.fixture
async def receiver() -> AsyncIterator[TestServer]:
    """/ok answers 204, /hang never answers, /boom answers 500."""
    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=204)

    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(3600)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/ok", ok)
    app.router.add_post("/hang", hang)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
async def silent_smtp() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never says a word (a hung SMTP server)."""
    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3600)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


def make(tmp_path: Path, channels: dict[str, Channel], **kw: Any) -> tuple[Notifier, list[Any]]:
    cfg = NotifyConfig(channels=channels, default=next(iter(channels)), max_attempts=2,
                       timeout_s=1.0, backoff_base_s=0.01, backoff_cap_s=0.01, **kw)
    n = Notifier(Settings.from_env({"CXSTREAM_DATA_DIR": str(tmp_path)}), cfg, seed=1)
    produced: list[tuple[str, bytes | None, dict[str, Any]]] = []

    async def send(topic: str, key: bytes | None, value: bytes, *,
                   partition: int | None = None) -> None:
        produced.append((topic, key, orjson.loads(value)))
        partitions.append(partition)

    partitions: list[int | None] = []
    n.sent_partitions = partitions  # type: ignore[attr-defined]

    n._send = send  # type: ignore[method-assign]  # noqa: SLF001
    return n, produced


def record(value: bytes, offset: int = 0) -> Any:
    return SimpleNamespace(value=value, offset=offset, partition=3)


def dead(n: Notifier, produced: list[Any]) -> list[dict[str, Any]]:
    return [v for t, _, v in produced if t == n.topics.notifications_deadletter]


async def open_sessions(n: Notifier) -> None:
    n.session = new_session(allow_private=False)
    n.lab_session = new_session(allow_private=True)


async def close_sessions(n: Notifier) -> None:
    assert n.session is not None and n.lab_session is not None
    await n.session.close()
    await n.lab_session.close()


@pytest.mark.parametrize("value, problem", [
    (b"\xff\xfe not json", "not JSON"),
    (b"[1, 2, 3]", "not a JSON object"),
    (orjson.dumps({**ALERT, "alert_id": "a\n1"}), "alert_id"),
    (orjson.dumps({**ALERT, "alert_id": {"x": 1}}), "alert_id"),
    (orjson.dumps({**ALERT, "customer_id": None}), "customer_id"),
    (orjson.dumps({**ALERT, "owner": "olga"}), "owner"),
    (orjson.dumps({**ALERT, "segment": "region:br"}), "segment"),
    (orjson.dumps({**ALERT, "recent_interactions": "none"}), "recent_interactions"),
])
async def test_records_that_are_not_usable_alerts_are_dead_lettered(
        tmp_path: Path, value: bytes, problem: str) -> None:
    n, produced = make(tmp_path, {"hook": Channel("hook", "webhook", url="https://x.invalid",
                                                  secret="s")})
    before = counter(metrics.NOTIFICATIONS_FAILED, "-", "bad_alert")
    await n.handle(record(value, offset=41))
    (d,) = dead(n, produced)
    assert d["code"] == "bad_alert" and problem in d["reason"] and d["channel"] is None
    assert d["source"] == {"topic": n.topics.alerts, "partition": 3, "offset": 41}
    assert counter(metrics.NOTIFICATIONS_FAILED, "-", "bad_alert") == before + 1
    assert not [t for t, _, _ in produced if t == n.topics.notifications_sent]


async def test_an_alert_the_router_cannot_read_is_dead_lettered(tmp_path: Path) -> None:
    n, produced = make(tmp_path, {"hook": Channel("hook", "webhook", url="https://x.invalid",
                                                  secret="s")})
    await n.handle(record(orjson.dumps({**ALERT, "owner": {"email": ["a", "list"]}})))
    (d,) = dead(n, produced)
    assert d["code"] == "bad_alert" and "cannot be routed" in d["reason"]


async def test_an_exception_in_a_sender_is_a_counted_failure_not_a_crash(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("owner@example.com said no")  # text must not reach logs/letters

    monkeypatch.setattr(notifier_module, "send_webhook", explode)
    n, produced = make(tmp_path, {"hook": Channel("hook", "webhook", url="https://x.invalid",
                                                  secret="s")})
    await open_sessions(n)
    before = counter(metrics.NOTIFICATIONS_FAILED, "hook", "error")
    try:
        await n.handle(record(orjson.dumps(ALERT)))
    finally:
        await close_sessions(n)
    (d,) = dead(n, produced)
    assert (d["code"], d["attempts"], d["reason"]) == ("error", 2, "unexpected RuntimeError")
    assert "owner@example.com" not in orjson.dumps(d["reason"]).decode()
    assert counter(metrics.NOTIFICATIONS_FAILED, "hook", "error") == before + 1
    # The alert is still recorded as handled, so its offset can be committed.
    assert [v["ids"] for t, _, v in produced if t == n.topics.notifications_sent] == [["a-1"]]


async def assert_two_timed_out_attempts(tmp_path: Path, channel: Channel) -> None:
    """Delivering over a channel whose receiver never answers: each of the 2 attempts ends
    at the 1 s time limit, then the failure is dead-lettered as `timeout`."""
    n, produced = make(tmp_path, {channel.name: channel})
    await open_sessions(n)
    started = time.monotonic()
    try:
        assert await n.deliver(channel.name, ALERT) is False
    finally:
        await close_sessions(n)
    took = time.monotonic() - started
    assert 2.0 <= took < 6.0, took  # 2 attempts x 1 s, plus a loaded machine's slack
    (d,) = dead(n, produced)
    assert (d["code"], d["attempts"]) == ("timeout", 2)


async def test_a_hanging_http_receiver_costs_one_time_limit_per_attempt(
        tmp_path: Path, receiver: TestServer) -> None:
    url = str(receiver.make_url("/hang"))
    await assert_two_timed_out_attempts(
        tmp_path, Channel("hang", "webhook", url=url, secret="s", allow_private=True))


async def test_a_hanging_smtp_server_costs_one_time_limit_per_attempt(
        tmp_path: Path, silent_smtp: int) -> None:
    await assert_two_timed_out_attempts(
        tmp_path, Channel("mail", "email", host="127.0.0.1", port=silent_smtp,
                          sender="cx@example.com"))


async def test_hostile_text_reaches_receivers_and_bad_recipients_fail_alone(
        tmp_path: Path, receiver: TestServer) -> None:
    """One alert, three channels: the webhook and Slack deliver the hostile text; the e-mail
    to an owner address holding \\x85 fails as bad_alert; the alert is recorded once."""
    url = str(receiver.make_url("/ok"))
    channels = {"hook": Channel("hook", "webhook", url=url, secret="s", allow_private=True),
                "slack": Channel("slack", "slack", url=url, allow_private=True),
                "mail": Channel("mail", "email", host="127.0.0.1", port=1,
                                sender="cx@example.com")}
    n, produced = make(tmp_path, channels)
    n.cfg = NotifyConfig(channels=channels, owner_routes=(), default=None, max_attempts=2,
                         timeout_s=2.0, backoff_base_s=0.01, backoff_cap_s=0.01)
    alert = {**ALERT, "customer_id": "c\n\x85\u2028<!channel>", "comment": "x" * 10_240,
             "owner": {"email": "owner@example.com\x85"}}
    await open_sessions(n)
    try:
        results = {name: await n.deliver(name, alert) for name in channels}
    finally:
        await close_sessions(n)
    assert results == {"hook": True, "slack": True, "mail": False}
    (d,) = dead(n, produced)
    assert (d["channel"], d["code"], d["attempts"]) == ("mail", "bad_alert", 1)


# -- the supervisor --------------------------------------------------------------------------
async def test_the_supervisor_restarts_a_failing_loop_and_counts_each_failure() -> None:
    failures: list[BaseException] = [KafkaConnectionError(), CommitFailedError("x"),
                                     RuntimeError("boom")]
    runs = 0

    async def run_once() -> None:
        nonlocal runs
        runs += 1
        if failures:
            raise failures.pop(0)
        await asyncio.sleep(3600)  # healthy: runs until cancelled

    before = {r: counter(metrics.NOTIFIER_ERRORS, r) for r in metrics.NOTIFIER_ERROR_REASONS}
    task = asyncio.create_task(supervisor.supervise(run_once, "test loop",
                                                    first_delay_s=0.01, max_delay_s=0.02))
    deadline = time.monotonic() + 10
    while runs < 4 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert runs == 4 and not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task  # cancellation (the worker stopping) is the only way out
    after = {r: counter(metrics.NOTIFIER_ERRORS, r) - before[r]
             for r in metrics.NOTIFIER_ERROR_REASONS}
    assert after == {"kafka": 1, "commit_failed": 1, "error": 1}


async def test_the_notifier_loop_survives_an_unreachable_broker(tmp_path: Path) -> None:
    """`run` with no broker at all: the loop fails, is counted and restarted, and `run` itself
    neither returns nor raises until cancelled."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    settings = Settings.from_env({"CXSTREAM_DATA_DIR": str(tmp_path),
                                  "CXSTREAM_BROKER": f"127.0.0.1:{port}"})
    n = Notifier(settings, NotifyConfig(channels={}))
    before = counter(metrics.NOTIFIER_ERRORS, "kafka")
    task = asyncio.create_task(n.run())
    deadline = time.monotonic() + 60
    while counter(metrics.NOTIFIER_ERRORS, "kafka") == before and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert counter(metrics.NOTIFIER_ERRORS, "kafka") > before and not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# -- target alerts ---------------------------------------------------------------------------
TARGET = {"schema_version": 1, "alert_id": "t-1", "kind": "below_target",
          "segment_key": "region:br", "segment": {"region": "br"}, "program": "rnps",
          "metric": "nps", "window": "7d", "window_start": "2026-12-01T10:00:00Z",
          "window_end": "2026-12-08T10:00:00Z", "score": 41.5, "target": 50, "responses": 212,
          "margin_of_error": 9.8, "detected_at": "2026-12-08T11:05:02Z"}


def target_notifier(tmp_path: Path, url: str, **kw: Any) -> tuple[Notifier, list[Any]]:
    """A notifier of every kind: region:br to `br`, all to `everyone`, else `default`."""
    channels = {name: Channel(name, "webhook", url=f"{url}?{name}", secret="s",
                              allow_private=True) for name in ("default", "br", "everyone")}
    n, produced = make(tmp_path, channels)
    n.cfg = NotifyConfig(channels=channels, default="default",
                         owner_routes=(Route("br", owner="ana@example.com"),),
                         segment_routes=(Route("br", segment="region:br"),
                                         Route("everyone", segment="all")),
                         kinds=frozenset({"detractor", "below_target", "back_on_target"}),
                         max_attempts=1, timeout_s=2.0, **kw)
    return n, produced


def sent(n: Notifier, produced: list[Any]) -> list[tuple[bytes | None, dict[str, Any]]]:
    return [(k, v) for t, k, v in produced if t == n.topics.notifications_sent]


async def test_target_alerts_are_routed_by_segment_and_recorded_per_subject(
        tmp_path: Path, receiver: TestServer) -> None:
    hits: list[str] = []
    n, produced = target_notifier(tmp_path, str(receiver.make_url("/ok")))
    original = n.deliver

    async def deliver(name: str, alert: dict[str, Any], source: Any = None) -> bool:
        hits.append(name)
        return await original(name, alert, source)

    n.deliver = deliver  # type: ignore[method-assign]
    await open_sessions(n)
    try:
        await n.handle(record(orjson.dumps(TARGET)))
        await n.handle(record(orjson.dumps({**TARGET, "alert_id": "t-2", "segment_key": "all",
                                            "segment": {}})))
        await n.handle(record(orjson.dumps({**TARGET, "alert_id": "t-3",
                                            "segment_key": "region:mx",
                                            "segment": {"region": "mx"},
                                            "owner": {"email": "ana@example.com"}})))
    finally:
        await close_sessions(n)
    assert hits == ["br", "everyone", "default"]  # owner routes never match a target alert
    assert sent(n, produced) == [
        (b"target|region:br|rnps|7d", {"ids": ["t-1"], "last": n.state[
            "target|region:br|rnps|7d"]["last"]}),
        (b"target|all|rnps|7d", {"ids": ["t-2"], "last": n.state["target|all|rnps|7d"]["last"]}),
        (b"target|region:mx|rnps|7d", {"ids": ["t-3"],
                                       "last": n.state["target|region:mx|rnps|7d"]["last"]}),
    ]
    assert all(v["last"] is not None for _, v in sent(n, produced))
    # the state goes to the alert record's partition (3), where `restore` reads it back
    assert n.sent_partitions == [3, 3, 3]  # type: ignore[attr-defined]
    assert not dead(n, produced)


async def test_target_alerts_are_deduplicated_by_alert_id_per_subject(
        tmp_path: Path, receiver: TestServer) -> None:
    n, produced = target_notifier(tmp_path, str(receiver.make_url("/ok")))
    before = counter(metrics.NOTIFICATIONS, "-", "duplicate")
    delivered = counter(metrics.NOTIFICATIONS, "br", "delivered")
    await open_sessions(n)
    try:
        for alert in (TARGET, TARGET, {**TARGET, "kind": "back_on_target", "alert_id": "t-2"},
                      {**TARGET, "window": "30d"}):  # another window: its own subject
            await n.handle(record(orjson.dumps(alert)))
    finally:
        await close_sessions(n)
    assert counter(metrics.NOTIFICATIONS, "-", "duplicate") == before + 1
    assert counter(metrics.NOTIFICATIONS, "br", "delivered") == delivered + 3
    assert n.state["target|region:br|rnps|7d"]["ids"] == ["t-1", "t-2"]
    assert n.state["target|region:br|rnps|30d"]["ids"] == ["t-1"]


async def test_the_cooldown_of_target_alerts_is_per_segment_program_and_window(
        tmp_path: Path, receiver: TestServer) -> None:
    n, produced = target_notifier(tmp_path, str(receiver.make_url("/ok")),
                                  cooldown_ms=3_600_000)
    suppressed = counter(metrics.NOTIFICATIONS, "-", "suppressed")
    await open_sessions(n)
    try:
        await n.handle(record(orjson.dumps(TARGET)))
        # 10 minutes later, the same subject: in cooldown
        await n.handle(record(orjson.dumps({**TARGET, "alert_id": "t-2",
                                            "kind": "back_on_target",
                                            "detected_at": "2026-12-08T11:15:02Z"})))
        # the same segment, another program or window, or a customer: not in cooldown
        for change in ({"program": "tnps"}, {"window": "30d"}):
            await n.handle(record(orjson.dumps({**TARGET, "alert_id": "t-3", **change,
                                                "detected_at": "2026-12-08T11:15:02Z"})))
    finally:
        await close_sessions(n)
    assert counter(metrics.NOTIFICATIONS, "-", "suppressed") == suppressed + 1
    st = n.state
    assert st["target|region:br|rnps|7d"]["ids"] == ["t-1", "t-2"]
    assert st["target|region:br|tnps|7d"]["last"] is not None
    assert st["target|region:br|rnps|30d"]["last"] is not None


@pytest.mark.parametrize("value, problem", [
    (orjson.dumps({**TARGET, "segment_key": None}), "segment_key"),
    (orjson.dumps({**TARGET, "window": 7}), "window"),
    (orjson.dumps({**TARGET, "kind": ["below_target"]}), "kind"),
])
async def test_unusable_target_alerts_are_dead_lettered(
        tmp_path: Path, value: bytes, problem: str) -> None:
    n, produced = make(tmp_path, {"hook": Channel("hook", "webhook", url="https://x.invalid",
                                                  secret="s")})
    await n.handle(record(value, offset=5))
    (d,) = dead(n, produced)
    assert d["code"] == "bad_alert" and problem in d["reason"] and d["channel"] is None
    assert not sent(n, produced)


async def test_a_failed_target_notification_is_dead_lettered_under_its_subject(
        tmp_path: Path) -> None:
    channel = Channel("mail", "email", host="127.0.0.1", port=1, sender="cx@example.com")
    n, produced = make(tmp_path, {"mail": channel},
                       kinds=frozenset({"below_target"}))
    # no `to`: a target alert is never mailed to an owner, even one its record names
    await open_sessions(n)
    try:
        await n.handle(record(orjson.dumps({**TARGET, "owner": {"email": "ana@example.com"}})))
    finally:
        await close_sessions(n)
    ((topic, key, d),) = [p for p in produced if p[0] == n.topics.notifications_deadletter]
    assert key == b"target|region:br|rnps|7d"
    assert (d["channel"], d["code"]) == ("mail", "bad_alert") and "`to`" in d["reason"]
    assert [k for k, _ in sent(n, produced)] == [b"target|region:br|rnps|7d"]


async def test_target_alerts_are_skipped_unless_their_kind_is_notified(tmp_path: Path) -> None:
    n, produced = make(tmp_path, {"hook": Channel("hook", "webhook", url="https://x.invalid",
                                                  secret="s")})
    skipped = counter(metrics.NOTIFICATIONS, "-", "skipped")
    await n.handle(record(orjson.dumps(TARGET)))  # kinds: detractor only (the default)
    assert counter(metrics.NOTIFICATIONS, "-", "skipped") == skipped + 1
    assert produced == []
