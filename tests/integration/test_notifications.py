"""Notifications against real receivers: signed webhooks delivered once, retries, dead
letters, e-mail over SMTP, Slack blocks, cooldown and privacy; and a hanging receiver never
holds up alerting."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from cxstream.core.alert import alert_id
from cxstream.core.timefmt import format_rfc3339

from .harness import Worker, produce, read_all, wait_drained, wait_for
from .receivers import SECRET, HttpReceiver, SmtpReceiver

NOW = int(time.time() * 1000)


@pytest.fixture
def smtp() -> Any:
    s = SmtpReceiver()
    s.start()
    yield s
    s.stop()


def config(path: Path, http: HttpReceiver, smtp: SmtpReceiver, default: str = "ok") -> Path:
    path.write_text(f'''
cooldown = "1h"
max_attempts = 3
timeout = "5s"
backoff_base_seconds = 0.05
default = "{default}"

[channels.ok]
type = "webhook"
url = "{http.url}/hook/ok"
secret = "{SECRET}"
include_comment = false
allow_private = true

[channels.flaky]
type = "webhook"
url = "{http.url}/hook/flaky"
secret = "{SECRET}"
allow_private = true

[channels.fail]
type = "webhook"
url = "{http.url}/hook/fail"
secret = "{SECRET}"
allow_private = true

[channels.hang]
type = "webhook"
url = "{http.url}/hook/hang"
secret = "{SECRET}"
allow_private = true

[channels.slack]
type = "slack"
url = "{http.url}/slack"
allow_private = true

[channels.mail]
type = "email"
host = "127.0.0.1"
port = {smtp.port}
from = "cxstream@example.com"

[[routes]]
owner = "flaky@example.com"
channel = "flaky"

[[routes]]
owner = "fail@example.com"
channel = "fail"

[[routes]]
owner = "Mia Mail"
channel = "mail"

[[routes]]
segment = "region:br"
channel = "slack"
''')
    return path


def profile(cid: str, owner: dict[str, str] | None, region: str = "na") -> tuple[bytes, bytes]:
    doc: dict[str, Any] = {"customer_id": cid, "segment": {"plan": "pro", "region": region},
                           "updated_at": format_rfc3339(NOW - 86_400_000)}
    if owner:
        doc["owner"] = owner
    return cid.encode(), orjson.dumps(doc)


def nps(cid: str, eid: str, score: int, minutes_ago: int) -> tuple[bytes, bytes]:
    return cid.encode(), orjson.dumps({"event_id": eid, "customer_id": cid, "survey": "nps",
                                       "score": score, "comment": "call me back",
                                       "occurred_at": format_rfc3339(NOW - minutes_ago * 60_000)})


async def start(worker_factory: Any, cfg: Path) -> Worker:
    w = worker_factory(extra_env={"CXSTREAM_NOTIFY_CONFIG": str(cfg)})
    w.start()
    await w.wait_ready()
    return w


async def test_notifications_are_delivered_once_retried_and_dead_lettered(
        worker_factory: Any, http: HttpReceiver, smtp: SmtpReceiver, tmp_path: Path) -> None:
    w = await start(worker_factory, config(tmp_path / "notify.toml", http, smtp))
    t = w.prefix
    oks = [f"ok-{i}" for i in range(20)]
    await produce(w.bootstrap, f"{t}customers", [
        *(profile(c, {"name": "Olga", "email": "olga@example.com"}) for c in oks),
        profile("flaky", {"email": "flaky@example.com"}), profile("fail", {"email": "fail@example.com"}),
        profile("mail", {"name": "Mia Mail", "email": "mia@example.com"}), profile("br", None, "br")])
    await wait_drained(w.bootstrap, f"{t}cxstream", [f"{t}customers"])
    responses = [nps(c, f"{c}-1", 2, 50) for c in [*oks, "flaky", "fail", "mail", "br"]]
    # ok-0 recovers and turns detractor again within the cooldown: only one notification.
    responses += [nps("ok-0", "ok-0-2", 10, 40), nps("ok-0", "ok-0-3", 1, 30)]
    # A duplicate response never makes a second alert or notification.
    responses.append(nps("ok-1", "ok-1-1", 2, 50))
    await produce(w.bootstrap, f"{t}surveys", responses)

    expected_ok = {alert_id(c, f"{c}-1") for c in oks}
    await wait_for(lambda: _ready(lambda: set(http.accepted) >= expected_ok | {alert_id("flaky", "flaky-1")}),
                   90, "webhook deliveries")
    dead = await wait_for(lambda: _records(w, f"{t}notifications.deadletter"), 60, "notification dead letter")
    await wait_for(lambda: _ready(lambda: smtp.mailbox.messages and http.slack), 60, "e-mail and Slack")

    # Each alert accepted exactly once, signed, with the comment left out on this channel.
    assert http.bad_signatures == 0
    for aid in expected_ok:
        assert len(http.accepted[aid]) == 1
        assert http.accepted[aid][0]["body"]["comment"] is None
    assert alert_id("ok-0", "ok-0-3") not in http.accepted  # cooldown
    # The flaky receiver failed twice, then accepted exactly one delivery.
    flaky = alert_id("flaky", "flaky-1")
    assert http.calls[f"flaky:{flaky}"] == 3 and len(http.accepted[flaky]) == 1
    # The receiver that always fails: three attempts, then the dead-letter topic with the reason.
    failing = alert_id("fail", "fail-1")
    assert http.calls[f"fail:{failing}"] == 3
    assert [(d["alert_id"], d["channel"], d["reason"], d["attempts"]) for d in dead] == \
        [(failing, "fail", "HTTP 500", 3)]
    # E-mail to the owner's address; Slack blocks for the segment route.
    (rcpt, msg), = smtp.mailbox.messages
    assert rcpt == ["mia@example.com"] and "mail" in msg["Subject"]
    assert "call me back" in msg.get_content()
    (slack,) = http.slack
    assert slack["blocks"][0]["type"] == "header" and "br" in slack["blocks"][0]["text"]["text"]
    assert any("call me back" in str(b) for b in slack["blocks"])

    m = await w.metrics()
    delivered = sum(v for (name, labels), v in m.items()
                    if name == "cxstream_notifications_total" and dict(labels)["outcome"] == "delivered")
    assert delivered == len(expected_ok) + 3  # oks + flaky + mail + slack


async def test_a_hanging_receiver_does_not_hold_up_alerts(
        worker_factory: Any, http: HttpReceiver, smtp: SmtpReceiver, tmp_path: Path) -> None:
    w = await start(worker_factory, config(tmp_path / "notify.toml", http, smtp, default="hang"))
    t = w.prefix
    await produce(w.bootstrap, f"{t}surveys", [nps(f"h{i}", f"h{i}-1", 1, 10) for i in range(20)])
    await wait_for(lambda: _ready(lambda: http.hanging >= 1), 60, "the receiver to hang")
    # While it hangs, alerts keep flowing for the next customers.
    await produce(w.bootstrap, f"{t}surveys", [nps(f"k{i}", f"k{i}-1", 1, 10) for i in range(200)])
    alerts = await wait_for(lambda: _records(w, f"{t}alerts", at_least=220), 60, "220 alerts")
    assert len({a["alert_id"] for a in alerts}) == 220
    assert http.hanging >= 1 and not http.accepted


async def _ready(check: Any) -> Any:
    return check()


async def _records(w: Worker, topic: str, at_least: int = 1) -> list[dict[str, Any]] | None:
    records = await read_all(w.bootstrap, topic)
    docs = [orjson.loads(r.value) for r in records]
    return docs if len(docs) >= at_least else None
