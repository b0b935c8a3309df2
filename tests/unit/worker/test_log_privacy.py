"""No personal data in logs at INFO and above: comments, e-mail addresses, names and raw
payloads stay out of every log record the worker's error paths write (dead letters keep the
payload on purpose; logs do not).

Runs the real error paths without a broker: the processor's decoder failures and an
unexpected processing error, the notifier's failed deliveries (HTTP 500, redirect, refused
address, no e-mail recipient, SMTP unreachable) and an unreadable alert; Kafka produce calls
are replaced by in-memory lists.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any, AsyncIterator

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from cxstream.worker.processor import Processor
from cxstream.core.notification import Channel, NotifyConfig
from cxstream.core.store import StoreReader
from cxstream.notify.notifier import Notifier
from cxstream.notify.senders import new_session
from cxstream.config.settings import Settings

from ..processing import handle

EMAIL = "maria.gomez@example.org"
NAME = "Maria Gomez"
COMMENT = "the technician insulted my mother"
SECRETS = (EMAIL, NAME, COMMENT, "maria", "insulted")


def assert_clean(caplog: pytest.LogCaptureFixture) -> None:
    """No INFO+ record (message, arguments or attached traceback) quotes personal data."""
    for record in caplog.records:
        if record.levelno < logging.INFO:
            continue
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        for secret in SECRETS:
            assert secret.lower() not in text.lower(), (record.levelname, record.name, text)


def survey(**overrides: Any) -> bytes:
    doc = {"event_id": "e-1", "customer_id": "c-1", "survey": "nps", "score": 2,
           "comment": COMMENT, "occurred_at": "2026-01-01T00:00:00Z",
           "respondent": {"email": EMAIL, "name": NAME}, **overrides}
    return orjson.dumps(doc)


async def test_processor_error_paths_log_no_personal_data(
        processor: Processor, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    topic = processor.topics.surveys
    bad = [
        survey(score=42),                                  # score_out_of_range
        survey(survey="nope"),                             # unknown_survey
        survey(occurred_at=f"soon, {EMAIL}"),              # bad_timestamp
        survey(customer_id=EMAIL),                         # key_mismatch
        f"{COMMENT} {EMAIL}".encode(),                     # not_json
        orjson.dumps([COMMENT, EMAIL]),                    # not_object
        survey(event_id=""),                               # invalid_value
    ]
    for offset, value in enumerate(bad):
        await handle(processor, topic, value, offset=offset)
    assert len(processor.deadletters.sent) == len(bad)  # type: ignore[attr-defined]

    class Exploding:
        """A store whose reads fail with personal data in the message."""

        def get(self, *args: Any) -> Any:
            raise ValueError(f"cannot handle {EMAIL}: {COMMENT} ({NAME})")

    processor.reader = StoreReader(None, Exploding(), {})
    await handle(processor, topic, survey(), offset=99)
    dead = [orjson.loads(d["value"]) for d in processor.deadletters.sent]  # type: ignore[attr-defined]
    assert dead[-1]["error_code"] == "processing_error"
    assert EMAIL not in dead[-1]["reason"]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and "ValueError" in errors[-1].getMessage()
    assert_clean(caplog)


@pytest.fixture
async def failing_receiver() -> AsyncIterator[TestServer]:
    async def fail(request: web.Request) -> web.Response:
        return web.Response(status=500, text=f"{EMAIL} {COMMENT}")

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"/elsewhere?who={EMAIL}")

    app = web.Application()
    app.router.add_post("/fail", fail)
    app.router.add_post("/moved", moved)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


async def test_notifier_error_paths_log_no_personal_data(
        tmp_path: Path, failing_receiver: TestServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = str(failing_receiver.make_url(""))
    channels = {
        "fail": Channel("fail", "webhook", url=f"{url}/fail", secret="s", allow_private=True),
        "moved": Channel("moved", "webhook", url=f"{url}/moved", secret="s", allow_private=True),
        "private": Channel("private", "webhook", url="https://127.0.0.1/hook", secret="s"),
        "slack": Channel("slack", "slack", url=f"{url}/fail", allow_private=True),
        "mail": Channel("mail", "email", host="127.0.0.1", port=1, sender="cx@example.com"),
        "nobody": Channel("nobody", "email", host="127.0.0.1", port=1, sender="cx@example.com"),
    }
    cfg = NotifyConfig(channels=channels, max_attempts=2, timeout_s=2, backoff_base_s=0.01,
                       backoff_cap_s=0.01)
    notifier = Notifier(Settings.from_env({"CXSTREAM_DATA_DIR": str(tmp_path)}), cfg, seed=1)
    produced: list[tuple[str, bytes | None, bytes]] = []

    async def send(topic: str, key: bytes | None, value: bytes) -> None:
        produced.append((topic, key, value))

    notifier._send = send  # type: ignore[method-assign]  # noqa: SLF001
    notifier.session = new_session(allow_private=False)
    notifier.lab_session = new_session(allow_private=True)
    alert = {"alert_id": "a-1", "customer_id": "c-1", "kind": "detractor", "score": 1,
             "comment": COMMENT, "occurred_at": "2026-01-01T00:00:00Z",
             "owner": {"email": EMAIL, "name": NAME}, "recent_interactions": []}
    try:
        for name in channels:
            doc = dict(alert, owner=None) if name == "nobody" else alert
            assert await notifier.deliver(name, doc) is False
        await notifier.handle(SimpleNamespace(value=f"{{{COMMENT} {EMAIL}".encode(), offset=7,
                                              partition=0))
    finally:
        await notifier.session.close()
        await notifier.lab_session.close()
    dead = [orjson.loads(v) for t, _, v in produced if t == notifier.topics.notifications_deadletter]
    assert len(dead) == len(channels) + 1
    reasons = {d["channel"]: d["reason"] for d in dead}
    assert "redirect not followed" in reasons["moved"]
    assert "private" in reasons["private"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == len(channels)
    assert_clean(caplog)
