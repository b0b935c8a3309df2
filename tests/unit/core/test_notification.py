"""Routing, privacy, signatures, retry policy and the routing file, for customer alerts and
target alerts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import re
from pathlib import Path

import orjson
import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from cxstream.core.notification import (
    Channel,
    NotifyConfig,
    Route,
    alert_problem,
    backoff_s,
    delivery_subject,
    email_message,
    in_cooldown,
    is_target_alert,
    parse_retry_after,
    redact,
    route,
    sign,
    signing_key,
    slack_message,
    verdict,
    webhook_headers,
)
from cxstream.notify.routing import NotifyConfigError, load, parse

ALERT = {"alert_id": "a1", "kind": "detractor", "customer_id": "c1", "score": 2,
         "previous_category": "promoter", "occurred_at": "2026-10-31T10:00:00Z",
         "segment": {"plan": "pro", "region": "br"}, "touchpoint": "support", "channel": "chat",
         "comment": "terrible",
         "owner": {"name": "Ana", "email": "ana@example.com", "slack": "@ana"},
         "recent_interactions": [{"event_id": "i1", "kind": "ticket_opened",
                                  "occurred_at": "2026-10-30T10:00:00Z", "outcome": "open"}]}
CH = {n: Channel(n, "webhook", url="https://x") for n in ("a", "b", "c", "d")}


def cfg(**kw: object) -> NotifyConfig:
    return NotifyConfig(channels=CH, **kw)  # type: ignore[arg-type]


def test_route_by_owner_then_segment_then_default() -> None:
    c = cfg(owner_routes=(Route("a", owner="ana@example.com"), Route("b", owner="@ana")),
            segment_routes=(Route("c", segment="region:br"),), default="d")
    assert route(ALERT, c) == ["a", "b"]
    assert route({**ALERT, "owner": None}, c) == ["c"]
    assert route({**ALERT, "owner": None, "segment": {}, "touchpoint": None}, c) == ["d"]
    by_touchpoint = cfg(segment_routes=(Route("c", segment="touchpoint:support"),))
    assert route({**ALERT, "owner": None, "segment": {}}, by_touchpoint) == ["c"]
    assert route({**ALERT, "owner": None, "segment": {}, "touchpoint": None}, cfg()) == []


def test_a_route_with_kinds_takes_only_those_kinds() -> None:
    """Promoters to a marketing channel, passives to the success manager, the rest by the
    routes without kinds; a route with kinds is passed over for any other kind."""
    c = cfg(owner_routes=(Route("a", owner="ana@example.com", kinds=frozenset({"passive"})),),
            segment_routes=(Route("b", segment="region:br", kinds=frozenset({"promoter"})),
                            Route("c", segment="plan:pro")), default="d")
    assert route({**ALERT, "kind": "passive", "score": 7}, c) == ["a"]
    assert route({**ALERT, "kind": "promoter", "score": 9}, c) == ["b", "c"]
    assert route(ALERT, c) == ["c"]
    assert route({**ALERT, "kind": "at_risk", "segment": {}}, c) == ["d"]
    only = cfg(segment_routes=(Route("b", segment="all", kinds=frozenset({"back_on_target"})),),
               default="d")
    target = {"kind": "below_target", "segment_key": "all"}
    assert route(target, only) == ["d"]
    assert route({**target, "kind": "back_on_target"}, only) == ["b"]


def test_routing_file_kinds_per_route() -> None:
    doc = {"kinds": ["promoter", "passive", "at_risk", "detractor"],
           "channels": {"m": {"type": "webhook", "url": "https://m", "unsigned": True}},
           "routes": [{"segment": "all", "channel": "m", "kinds": ["promoter"]},
                      {"owner": "ana", "channel": "m"}]}
    c = parse(doc)
    assert c.kinds == {"promoter", "passive", "at_risk", "detractor"}
    assert c.segment_routes[0].kinds == {"promoter"} and c.owner_routes[0].kinds is None
    for bad, match in [(["vip"], r"routes\[0\]\.kinds may only contain"),
                       ([], r"routes\[0\]\.kinds is empty"),
                       ("promoter", r"routes\[0\]\.kinds must be a list")]:
        with pytest.raises(ValueError, match=match):
            parse({**doc, "routes": [{**doc["routes"][0], "kinds": bad}]})


def test_a_route_with_priority_takes_only_those_priorities() -> None:
    """Urgent and high alerts of pro customers to an escalation channel, before the owner's
    own route; alerts of other priorities, segment alerts and alerts of earlier releases (no
    priority) pass over it."""
    hot = frozenset({"urgent", "high"})
    c = cfg(owner_routes=(Route("a", owner="ana@example.com", priorities=hot),),
            segment_routes=(Route("b", segment="plan:pro", priorities=frozenset({"low"})),
                            Route("c", segment="region:br")), default="d")
    assert route({**ALERT, "priority": "urgent"}, c) == ["a"]
    assert route({**ALERT, "priority": "high"}, c) == ["a"]
    assert route({**ALERT, "priority": "normal"}, c) == ["c"]
    assert route({**ALERT, "priority": "low"}, c) == ["b", "c"]
    assert route(ALERT, c) == ["c"]  # no priority (an earlier release): no priority route
    both = cfg(segment_routes=(Route("b", segment="all", priorities=hot,
                                     kinds=frozenset({"detractor"})),), default="d")
    target = {"kind": "below_target", "segment_key": "all"}
    assert route(target, both) == ["d"]
    assert route({**ALERT, "segment": {}, "touchpoint": None, "channel": None,
                  "priority": "urgent"}, both) == ["d"]  # no segment all for customers
    by_kind = cfg(owner_routes=(Route("b", owner="Ana", priorities=hot,
                                      kinds=frozenset({"detractor"})),), default="d")
    assert route({**ALERT, "priority": "urgent"}, by_kind) == ["b"]
    assert route({**ALERT, "priority": "urgent", "kind": "at_risk"}, by_kind) == ["d"]
    assert route({**ALERT, "priority": "normal"}, by_kind) == ["d"]


def test_routing_file_priority_per_route() -> None:
    doc = {"channels": {"m": {"type": "webhook", "url": "https://m", "unsigned": True}},
           "routes": [{"segment": "plan:pro", "channel": "m", "priority": ["urgent", "high"]},
                      {"owner": "ana", "channel": "m"}]}
    c = parse(doc)
    assert c.segment_routes[0].priorities == {"urgent", "high"}
    assert c.owner_routes[0].priorities is None
    for bad, match in [(["critical"], r"routes\[0\]\.priority may only contain urgent, high"),
                       (["high", {"x": 1}], r"routes\[0\]\.priority may only contain"),
                       ([], r"routes\[0\]\.priority must be a non-empty list"),
                       ("urgent", r"routes\[0\]\.priority must be a non-empty list")]:
        with pytest.raises(ValueError, match=match):
            parse({**doc, "routes": [{**doc["routes"][0], "priority": bad}]})


@pytest.mark.parametrize(("extra", "shown"), [
    ({"priority": "urgent", "value": {"tier": "strategic", "arr": 250000, "currency": "EUR"}},
     "urgent (tier strategic, ARR 250,000 EUR)"),
    ({"priority": "high", "value": {"arr": 120000.0, "currency": "USD"}}, "high (ARR 120,000 USD)"),
    ({"priority": "low", "value": {"arr": 99.5, "currency": "BRL"}}, "low (ARR 99.5 BRL)"),
    ({"priority": "normal", "value": None}, "normal"),
    ({"priority": "normal", "value": {"tier": "standard", "arr": "x"}}, "normal (tier standard)"),
])
def test_messages_show_priority_and_value(extra: dict[str, object], shown: str) -> None:
    alert = {**ALERT, **extra}
    _, body = email_message(alert)
    assert f"\nPriority: {shown}\n" in body
    fields = slack_message(alert)["blocks"][1]["fields"]
    assert fields[-1]["text"] == f"*Priority*\n{shown}"
    # without a priority (alerts of earlier releases): no line, no field
    assert "Priority" not in email_message(ALERT)[1]
    assert all("Priority" not in f["text"] for f in slack_message(ALERT)["blocks"][1]["fields"])


@pytest.mark.parametrize(("kind", "score", "words"), [
    ("promoter", 10, "turned promoter"), ("passive", 7, "slipped to passive"),
    ("at_risk", 2, "is at risk")])
def test_new_customer_kinds_render(kind: str, score: int, words: str) -> None:
    alert = {**ALERT, "kind": kind, "score": score,
             "previous_category": "promoter" if kind != "promoter" else "passive"}
    if kind == "at_risk":
        alert.update(metric="csat", program="csat-delivery", previous_category="passive")
    subject, body = email_message(alert)
    slack = slack_message(alert)
    assert words in subject and words in slack["text"]
    assert words in slack["blocks"][0]["text"]["text"]
    if kind == "at_risk":
        assert "(CSAT csat-delivery 2)" in subject
        assert "CSAT csat-delivery score: 2 (NPS category passive)" in body
    else:
        assert f"(NPS {score})" in subject and "NPS score:" in body


def test_privacy_switches() -> None:
    out = redact(ALERT, Channel("x", "webhook", include_comment=False, include_email=False))
    assert out["comment"] is None and out["owner"]["email"] is None
    assert out["owner"]["name"] == "Ana"
    assert ALERT["comment"] == "terrible"  # the input is untouched


def test_signature_is_standard_webhooks() -> None:
    body = b'{"a":1}'
    headers = webhook_headers("a1", "s3cret", 1_700_000_000, body)
    mac = hmac.new(b"s3cret", b"a1.1700000000." + body, hashlib.sha256).digest()
    expected = base64.b64encode(mac).decode()
    assert headers["webhook-signature"] == f"v1,{expected}"
    assert sign("s3cret", "a1", 1_700_000_000, body) == f"v1,{expected}"
    assert headers["Idempotency-Key"] == headers["webhook-id"] == "a1"
    assert "webhook-signature" not in webhook_headers("a1", None, 1, body)


def test_a_whsec_secret_signs_with_its_base64_decoded_key() -> None:
    """Standard Webhooks: the key is the base64 after `whsec_`, not the secret's text."""
    key = bytes(range(32))
    secret = "whsec_" + base64.b64encode(key).decode()
    body = b'{"a":1}'
    mac = hmac.new(key, b"a1.1700000000." + body, hashlib.sha256).digest()
    assert sign(secret, "a1", 1_700_000_000, body) == "v1," + base64.b64encode(mac).decode()
    assert signing_key(secret) == key == signing_key(secret.rstrip("="))  # padding optional
    assert signing_key("plain secret") == b"plain secret"  # the earlier scheme, kept


@pytest.mark.parametrize("secret", ["whsec_", "whsec_not base64!", "whsec_@@@@"])
def test_a_malformed_whsec_secret_is_refused_with_the_fix(secret: str) -> None:
    with pytest.raises(ValueError, match="whsec_"):
        signing_key(secret)


@settings(max_examples=200, deadline=None)
@given(key=st.binary(min_size=1, max_size=64), msg_id=st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40),
    body=st.binary(max_size=300), ts=st.integers(min_value=0, max_value=2**33))
def test_signatures_match_the_standard_webhooks_reference_library(
        key: bytes, msg_id: str, body: bytes, ts: int) -> None:
    """The reference library (`standardwebhooks`, PyPI) signs exactly what cxstream signs, for
    any key, id, timestamp and body."""
    from datetime import datetime, timezone

    from standardwebhooks import Webhook

    secret = "whsec_" + base64.b64encode(key).decode()
    theirs = Webhook(secret).sign(msg_id, datetime.fromtimestamp(ts, tz=timezone.utc), body)
    assert sign(secret, msg_id, ts, body) == theirs


@pytest.mark.parametrize("status,expected", [(200, "delivered"), (204, "delivered"), (429, "retry"),
                                             (500, "retry"), (503, "retry"), (400, "fail"),
                                             (404, "fail"),
                                             (301, "fail")])
def test_verdict(status: int, expected: str) -> None:
    assert verdict(status) == expected


def test_backoff_grows_with_jitter_and_honours_retry_after() -> None:
    c = cfg(backoff_base_s=1.0, backoff_cap_s=8.0)
    rng = random.Random(1)
    for attempt in range(1, 8):
        assert 0 <= backoff_s(attempt, c, rng) <= min(8.0, 2 ** (attempt - 1))
    assert backoff_s(1, c, rng, retry_after_s=3) == 3
    assert backoff_s(1, c, rng, retry_after_s=60) == 8
    assert parse_retry_after("2") == 2
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert 0 <= backoff_s(1, c, rng, retry_after_s=float("nan")) <= 1  # ignored: the backoff


@pytest.mark.parametrize("header, seconds", [
    ("nan", None), ("NaN", None), ("inf", None), ("-inf", None), ("Infinity", None),
    ("1e400", None), ("1_000", None), ("", None), (None, None), ("soon", None),
    ("-5", 0.0), ("-0.5", 0.0), ("0", 0.0), ("2", 2.0), (" 7 ", 7.0), ("2.5", 2.5),
    ("300", 300.0), ("301", 300.0), ("86400", 300.0), ("1e9", 300.0),
])
def test_retry_after_is_clamped_to_0_to_300_seconds(header: str | None,
                                                    seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=12)))
def test_retry_after_is_always_none_or_within_bounds(header: str) -> None:
    """Oracle: a finite number parses to itself clamped to 0..300; anything else to None."""
    import math
    import re

    got = parse_retry_after(header)
    try:
        number = float(header.strip()) if header and "_" not in header else None
    except ValueError:
        number = None
    if number is None or not math.isfinite(number):
        assert got is None
    else:
        assert got == min(max(number, 0.0), 300.0)
    assert got is None or (0.0 <= got <= 300.0 and not re.search("nan|inf", str(got)))


def test_cooldown() -> None:
    assert not in_cooldown(None, 100, 50)
    assert in_cooldown(100, 120, 50)
    assert not in_cooldown(100, 150, 50) and not in_cooldown(100, 120, 0)


def test_messages_carry_the_context() -> None:
    blocks = slack_message(ALERT)["blocks"]
    text = str(blocks)
    assert "c1" in text and "terrible" in text and "ticket_opened" in text and "region=br" in text
    subject, body = email_message(ALERT)
    assert "c1" in subject and "terrible" in body and "ticket_opened" in body


def test_routing_file(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("abc\n")
    f = tmp_path / "n.toml"
    f.write_text('''
cooldown = "30m"
default = "hook"
kinds = ["detractor", "recovered"]
[channels.hook]
type = "webhook"
url = "https://hooks.example.com/x"
secret_file = "secret"
[channels.mail]
type = "email"
host = "smtp.example.com"
from = "cx@example.com"
starttls = true
[[routes]]
owner = "ana@example.com"
channel = "mail"
''')
    c = load(f)
    assert c.channels["hook"].secret == "abc" and c.cooldown_ms == 30 * 60_000
    assert c.owner_routes == (Route("mail", owner="ana@example.com"),) and c.default == "hook"
    assert c.kinds == {"detractor", "recovered"} and c.channels["mail"].starttls


@pytest.mark.parametrize("doc,message", [
    ({"channels": {"x": {"type": "pager"}}}, "type must be"),
    ({"channels": {"x": {"type": "webhook"}}}, "url is required"),
    ({"channels": {"x": {"type": "webhook", "url": "https://a", "sekret": 1}}}, "unknown key"),
    ({"routes": [{"owner": "a", "channel": "nope"}]}, "not a defined channel"),
    ({"default": "nope"}, "not defined"),
])
def test_routing_file_errors_name_the_field(doc: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse(doc)


def test_unreadable_routing_file(tmp_path: Path) -> None:
    with pytest.raises(NotifyConfigError, match="cannot read"):
        load(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("[channels\n")
    with pytest.raises(NotifyConfigError, match="not valid TOML"):
        load(tmp_path / "bad.toml")


# -- customer text in Slack and e-mail ---------------------------------------------------------
HOSTILE = ["<!channel>", "<!here|here>", "<@U123>", "<https://evil.example|click>", "a & b",
           "line\nbreak", "nel\x85", "ls\u2028ps\u2029", "cr\rlf", "\x00\x07\x1b[31m"]


def _texts(message: dict) -> list[tuple[str, dict]]:
    """(block type, text object) of every text in a Block Kit message."""
    out = []
    for block in message["blocks"]:
        if "text" in block:
            out.append((block["type"], block["text"]))
        for f in block.get("fields", []):
            out.append(("field", f))
        for e in block.get("elements", []):
            out.append(("context", e))
    return out


LIMITS = {"header": 150, "section": 3000, "field": 2000, "context": 2000}


def _hostile_alert(text: str, size: int = 1) -> dict:
    return {**ALERT, "customer_id": text * size, "comment": text * size, "score": text,
            "previous_category": text, "touchpoint": text, "alert_id": "a-1",
            "segment": {text: text, "plan": text * size}, "owner": {"name": text},
            "recent_interactions": [{"occurred_at": text, "kind": text * size, "outcome": text}]}


@pytest.mark.parametrize("text", HOSTILE)
def test_slack_text_is_escaped_so_customer_text_cannot_mention_or_link(text: str) -> None:
    message = slack_message(_hostile_alert(text))
    for kind, obj in _texts(message):
        # No raw < or > survives (but the quote marks cxstream puts before comment lines);
        # & only as the start of one of Slack's three escapes.
        assert "<" not in obj["text"], obj
        assert ">" not in ("\n" + obj["text"]).replace("\n> ", ""), obj
        assert not re.search(r"&(?!amp;|lt;|gt;)", obj["text"]), obj
        if obj["type"] == "mrkdwn":
            assert obj.get("verbatim") is True
        else:
            assert kind == "header" and obj["text"].splitlines() == [obj["text"]]
    assert "<!channel>" not in orjson.dumps(message).decode()
    assert "<" not in message["text"]


def test_slack_quotes_every_line_of_the_comment() -> None:
    message = slack_message({**ALERT, "comment": "first\n<!channel> second"})
    (quote,) = [o["text"] for k, o in _texts(message) if o["text"].startswith("> ")]
    assert quote == "> first\n> &lt;!channel&gt; second"


@pytest.mark.parametrize("text, size", [("x", 10_240), ("<!channel> & ", 1000), ("é", 5000),
                                        ("i", 200), ("&", 3001)])
def test_slack_messages_stay_within_block_kit_limits(text: str, size: int) -> None:
    """10 KB comments and ids, 200-character ids, text that grows when escaped: every text
    fits its Block Kit limit, cut text ends with an ellipsis, and no escape is cut in half."""
    message = slack_message(_hostile_alert(text, size))
    for kind, obj in _texts(message):
        assert 1 <= len(obj["text"]) <= LIMITS[kind], (kind, len(obj["text"]))
        assert not re.search(r"&[a-z]{0,3}…", obj["text"]), obj["text"][-10:]
    assert len(message["text"]) <= 3000
    if len(text) * size > 3000:
        comment = [o["text"] for k, o in _texts(message) if o["text"].startswith("> ")][0]
        assert comment.endswith("…") and len(comment) == 3000 or len(comment) > 2990


def test_slack_200_character_ids_are_cut_in_the_header_only_where_needed() -> None:
    cid = "c" * 200
    message = slack_message({**ALERT, "customer_id": cid})
    header = message["blocks"][0]["text"]["text"]
    assert len(header) <= 150 and header.startswith("Customer ccc") and "…" in header
    assert any(cid in o["text"] for k, o in _texts(message) if k == "field")  # whole in a field


@pytest.mark.parametrize("text", HOSTILE)
def test_email_subject_is_one_line_whatever_the_customer_id(text: str) -> None:
    subject, body = email_message({**ALERT, "customer_id": f"c{text}1", "score": text})
    assert subject.splitlines() == [subject] and len(subject) <= 200
    assert all(ch.isprintable() for ch in subject), repr(subject)
    assert f"c{text}1" in body  # the body keeps the text as it is


@pytest.mark.parametrize("alert, problem", [
    ([1, 2], "not a JSON object"),
    ({"customer_id": "c"}, "alert_id"),
    ({"alert_id": "a\n1", "customer_id": "c"}, "alert_id"),
    ({"alert_id": "a 1", "customer_id": "c"}, "alert_id"),
    ({"alert_id": "é", "customer_id": "c"}, "alert_id"),
    ({"alert_id": "a" * 129, "customer_id": "c"}, "alert_id"),
    ({"alert_id": "a1", "customer_id": 7}, "customer_id"),
    ({"alert_id": "a1", "customer_id": ""}, "customer_id"),
    ({"alert_id": "a1", "customer_id": "c", "owner": "ana"}, "owner"),
    ({"alert_id": "a1", "customer_id": "c", "segment": ["x"]}, "segment"),
    ({"alert_id": "a1", "customer_id": "c", "recent_interactions": [1]}, "recent_interactions"),
])
def test_alerts_the_notifier_cannot_use_are_named(alert: object, problem: str) -> None:
    assert problem in (alert_problem(alert) or "")


def test_a_well_formed_alert_has_no_problem() -> None:
    assert alert_problem(ALERT) is None
    assert alert_problem({**ALERT, "customer_id": "c\n\x85\u2028", "owner": None}) is None


# -- routing file validation ------------------------------------------------------------------
HOOK = {"type": "webhook", "url": "https://a"}


@pytest.mark.parametrize("doc, message", [
    ({"max_attempts": 0}, "max_attempts must be a whole number from 1"),
    ({"max_attempts": -3}, "max_attempts must be a whole number from 1"),
    ({"max_attempts": "5"}, "max_attempts must be a whole number"),
    ({"queue_size": 0}, "queue_size must be a whole number from 1"),
    ({"backoff_base_seconds": float("nan")}, "backoff_base_seconds must be a number"),
    ({"backoff_cap_seconds": -1}, "backoff_cap_seconds must be a number of at least 0"),
    ({"channels": {"h": HOOK}}, "set unsigned = true to send it without signature"),
    ({"channels": {"h": {**HOOK, "secret": "s", "unsigned": True}}}, "remove one"),
    ({"channels": {"h": {**HOOK, "unsigned": "yes"}}}, "unsigned must be true or false"),
    ({"channels": {"h": {"type": "slack", "url": "https://a", "unsigned": True}}},
     "webhook channels only"),
    ({"channels": {"h": {**HOOK, "secret": "whsec_***"}}}, "channels.h.secret: .*base64"),
    ({"channels": {"m": {"type": "email", "host": "h", "from": "a\n@b.c"}}},
     "channels.m.from must hold plain e-mail addresses"),
    ({"channels": {"m": {"type": "email", "host": "h", "from": "cx@example.com",
                         "to": ["ok@example.com", "Ana <ana@example.com>"]}}},
     "channels.m.to must hold plain"),
])
def test_routing_values_are_checked_at_load_with_the_fix(doc: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse(doc)


def test_unsigned_webhooks_need_saying_so() -> None:
    c = parse({"channels": {"h": {**HOOK, "unsigned": True}}, "max_attempts": 1, "queue_size": 7})
    assert c.channels["h"].unsigned and c.channels["h"].secret is None
    assert c.max_attempts == 1 and c.queue_size == 7
    signed = parse({"channels": {"h": {**HOOK, "secret": "whsec_" + "A" * 32}}})
    assert not signed.channels["h"].unsigned


# -- target alerts ------------------------------------------------------------------------------
TARGET = {"schema_version": 1, "alert_id": "8b5aeffe-8a12-5ade-8464-44a7e0268e2e",
          "kind": "below_target", "segment_key": "region:br", "segment": {"region": "br"},
          "program": "rnps", "metric": "nps", "window": "7d",
          "window_start": "2026-12-01T10:00:00Z", "window_end": "2026-12-08T10:00:00Z",
          "score": 41.5, "target": 50, "responses": 212, "margin_of_error": 9.8,
          "detected_at": "2026-12-08T11:05:02Z"}


def test_the_schema_example_is_the_target_alert_these_tests_use() -> None:
    import json

    schema = json.loads((Path(__file__).resolve().parents[3] / "schemas"
                         / "alert.schema.json").read_text())
    example = next(e for e in schema["examples"] if e["kind"] == "below_target")
    assert example == TARGET


@pytest.mark.parametrize("kind", ["below_target", "back_on_target"])
def test_a_target_alert_needs_no_customer(kind: str) -> None:
    assert alert_problem({**TARGET, "kind": kind}) is None
    assert alert_problem({k: v for k, v in TARGET.items() if k != "segment"}) is None
    assert delivery_subject({**TARGET, "kind": kind}) == "target|region:br|rnps|7d"
    assert delivery_subject({**TARGET, "segment_key": "all"}) == "target|all|rnps|7d"


@pytest.mark.parametrize("change, problem", [
    ({"segment_key": None}, "segment_key"),
    ({"segment_key": ""}, "segment_key"),
    ({"segment_key": ["region:br"]}, "segment_key"),
    ({"program": 7}, "program"),
    ({"window": ""}, "window"),
    ({"segment": "region:br"}, "segment"),
    ({"segment": ["region", "br"]}, "segment"),
    ({"alert_id": "a\n1"}, "alert_id"),
])
def test_target_alerts_the_notifier_cannot_use_are_named(change: dict, problem: str) -> None:
    alert = {**TARGET, **change}
    assert problem in (alert_problem(alert) or "")
    if problem != "segment" and problem != "alert_id":
        assert delivery_subject(alert) is None


def test_a_missing_segment_key_is_a_problem_even_with_a_customer_id() -> None:
    alert = {k: v for k, v in TARGET.items() if k != "segment_key"}
    assert "segment_key" in (alert_problem({**alert, "customer_id": "c1"}) or "")


def test_customer_alerts_still_need_a_customer_and_the_kind_decides() -> None:
    assert delivery_subject(ALERT) == "c1"
    # a customer kind with the fields of a target alert is a customer alert without customer
    assert "customer_id" in (alert_problem({**TARGET, "kind": "detractor"}) or "")
    assert "customer_id" in (alert_problem({**TARGET, "kind": None}) or "")
    assert not is_target_alert(ALERT) and is_target_alert(TARGET)


@pytest.mark.parametrize("kind", [["below_target"], {"k": 1}, 7, True])
def test_a_kind_that_is_not_text_is_a_problem_not_a_crash(kind: object) -> None:
    alert = {**TARGET, "kind": kind}
    assert not is_target_alert(alert)
    assert alert_problem(alert) == "kind must be a string"


def test_target_alerts_route_by_segment_key_else_default_never_by_owner() -> None:
    c = cfg(owner_routes=(Route("a", owner="ana@example.com"),),
            segment_routes=(Route("b", segment="region:br"), Route("c", segment="all"),
                            Route("b", segment="region:br"), Route("c", segment="plan:pro")),
            default="d")
    assert route(TARGET, c) == ["b"]
    assert route({**TARGET, "segment_key": "all", "segment": {}}, c) == ["c"]
    assert route({**TARGET, "segment_key": "region:mx", "segment": {"region": "mx"}}, c) == ["d"]
    # an owner in the record (target alerts carry none) is ignored, and so are the segment
    # object, touchpoint and channel: only segment_key routes
    hostile = {**TARGET, "segment_key": "region:mx", "segment": {"plan": "pro"},
               "owner": {"email": "ana@example.com"}, "touchpoint": "x", "channel": "y"}
    assert route(hostile, c) == ["d"]
    assert route({**TARGET, "segment_key": "region:mx"}, cfg()) == []
    # "all" routes target alerts only: a customer alert has no segment "all"
    assert route({**ALERT, "owner": None, "segment": {}, "touchpoint": None,
                  "channel": None}, cfg(segment_routes=(Route("c", segment="all"),))) == []


def test_redacting_a_target_alert_adds_no_field() -> None:
    out = redact(TARGET, Channel("x", "webhook", include_comment=False, include_email=False))
    assert out == TARGET and out is not TARGET


def test_target_alerts_in_slack() -> None:
    message = slack_message(TARGET)
    texts = [o["text"] for _, o in _texts(message)]
    assert texts[0] == "rnps below target in region:br"
    assert "*Score*\nNPS 41.5 (target 50)" in texts
    assert "*Segment*\nregion:br" in texts
    assert "*Window*\n7d: 2026-12-01T10:00:00Z to 2026-12-08T10:00:00Z" in texts
    assert "*Responses*\n212, margin of error ±9.8 (95%)" in texts
    assert any(TARGET["alert_id"] in t for t in texts)
    assert message["text"] == (":chart_with_downwards_trend: rnps below target in region:br: "
                               "NPS 41.5 (target 50) over 7d")
    back = slack_message({**TARGET, "kind": "back_on_target", "score": 52})
    assert back["blocks"][0]["text"]["text"] == "rnps back on target in region:br"
    assert back["text"].startswith(":white_check_mark: ")
    assert "customer" not in orjson.dumps(message).decode().lower()


def test_target_alerts_in_email() -> None:
    subject, body = email_message(TARGET)
    assert subject == "[cxstream] rnps below target in region:br: NPS 41.5 (target 50) over 7d"
    assert body == ("Program: rnps (nps)\n"
                    "Segment: region:br\n"
                    "Score: NPS 41.5 (target 50)\n"
                    "Window: 7d: 2026-12-01T10:00:00Z to 2026-12-08T10:00:00Z\n"
                    "Responses: 212\n"
                    "Margin of error: ±9.8 (95%)\n"
                    "Detected at: 2026-12-08T11:05:02Z\n"
                    "\n"
                    f"Alert id: {TARGET['alert_id']}\n")
    subject, body = email_message({**TARGET, "kind": "back_on_target", "segment_key": "all",
                                   "segment": {}, "metric": "csat", "program": "csat-delivery",
                                   "score": 81.2, "target": 80, "margin_of_error": 2.5})
    assert subject == ("[cxstream] csat-delivery back on target in all: CSAT 81.2% "
                       "(target 80%) over 7d")
    assert "Margin of error: ±2.5% (95%)" in body
    _, body = email_message({**TARGET, "metric": "ces", "score": 4.2, "target": 3,
                             "margin_of_error": None})
    assert "Score: CES 4.2 (target 3)\n" in body and "Margin of error: - (not kept for CES)" in body


def _hostile_target(text: str, size: int = 1) -> dict:
    return {**TARGET, "segment_key": "region:" + text * size, "program": text * size,
            "window": text, "window_start": text, "window_end": text * size, "score": text,
            "target": text, "responses": text, "margin_of_error": text, "metric": text,
            "detected_at": text, "alert_id": "a-1"}


@pytest.mark.parametrize("text", HOSTILE)
def test_target_alert_text_is_escaped_in_slack_and_one_line_in_email(text: str) -> None:
    message = slack_message(_hostile_target(text))
    for kind, obj in _texts(message):
        assert "<" not in obj["text"] and ">" not in obj["text"], obj
        assert not re.search(r"&(?!amp;|lt;|gt;)", obj["text"]), obj
        if obj["type"] == "mrkdwn":
            assert obj.get("verbatim") is True
        else:
            assert kind == "header" and obj["text"].splitlines() == [obj["text"]]
    assert "<" not in message["text"]
    subject, body = email_message(_hostile_target(text))
    assert subject.splitlines() == [subject] and len(subject) <= 200
    assert all(ch.isprintable() for ch in subject), repr(subject)
    assert "region:" + text in body  # the body keeps the text as it is


@pytest.mark.parametrize("text, size", [("x", 10_240), ("<!channel> & ", 1000), ("&", 3001)])
def test_target_alerts_stay_within_block_kit_limits(text: str, size: int) -> None:
    message = slack_message(_hostile_target(text, size))
    for kind, obj in _texts(message):
        assert 1 <= len(obj["text"]) <= LIMITS[kind], (kind, len(obj["text"]))
        assert not re.search(r"&[a-z]{0,3}…", obj["text"]), obj["text"][-10:]
    assert len(message["text"]) <= 3000


def test_routing_file_accepts_the_target_kinds() -> None:
    c = parse({"kinds": ["detractor", "recovered", "below_target", "back_on_target"],
               "channels": {"h": {**HOOK, "unsigned": True}},
               "routes": [{"segment": "all", "channel": "h"}]})
    assert c.kinds == {"detractor", "recovered", "below_target", "back_on_target"}
    assert c.segment_routes == (Route("h", segment="all"),)
    assert parse({"kinds": ["below_target"]}).kinds == {"below_target"}
    with pytest.raises(ValueError, match="kinds may only contain detractor, recovered, promoter, "
                                         "passive, at_risk, below_target, back_on_target and "
                                         "segment_shift"):
        parse({"kinds": ["detractor", "on_target"]})


def test_a_segment_shift_is_routed_by_its_segment_and_rendered_with_its_interval() -> None:
    shift = {"alert_id": "s-1", "kind": "segment_shift", "direction": "down",
             "segment_key": "region:br", "segment": {"region": "br"}, "metric": "nps",
             "window": "7d", "window_start": "2026-12-01T10:00:00Z",
             "window_end": "2026-12-08T10:00:00Z", "previous_start": "2026-11-24T10:00:00Z",
             "nps": -0.5, "previous_nps": 28.5, "change": -29.0, "interval": [-48.7, -9.4],
             "level": 0.999, "responses": 402, "previous_responses": 389,
             "detected_at": "2026-12-08T11:05:00Z", "schema_version": 1}
    assert alert_problem(shift) is None and delivery_subject(shift) == "shift|region:br|7d"
    assert alert_problem({**shift, "window": ""}) == "window must be a non-empty string"
    c = parse({"kinds": ["segment_shift"], "default": "h",
               "channels": {"h": {**HOOK, "unsigned": True},
                            "br": {**HOOK, "unsigned": True}},
               "routes": [{"segment": "region:br", "channel": "br"}]})
    assert route(shift, c) == ["br"]
    assert route({**shift, "segment_key": "region:us"}, c) == ["h"]
    subject, body = email_message(shift)
    assert subject == "[cxstream] NPS down in region:br: NPS -0.5, was 28.5: -29.0 points over 7d"
    assert "Change: interval [-48.7, -9.4] at 99.9%" in body and "402 (before: 389)" in body
    assert slack_message(shift)["text"].startswith(":chart_with_downwards_trend: NPS down")

