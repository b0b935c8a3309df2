"""Alert documents: ids, fields, the JSON Schema contract and the CloudEvents headers."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from cxstream.config.priority import parse_rules
from cxstream.core.alert import ALERT_NAMESPACE, alert_id, build_alert, cloudevent_headers
from cxstream.core.journey import (
    CustomerState,
    Journey,
    Turn,
    apply_interaction,
    apply_profile,
    apply_survey,
)
from cxstream.core.model import CustomerProfile, Interaction, Owner, SurveyResponse
from cxstream.core.priority import DEFAULT_RULES, PriorityRules
from cxstream.core.programs import BUILTIN_RULES
from cxstream.core.timefmt import parse_rfc3339

SCHEMA = json.loads((Path(__file__).resolve().parents[3] / "schemas" / "alert.schema.json").read_text())
ALERT_SCHEMA = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)
T0 = 1_790_000_000_000  # 2026-09-21T14:13:20Z


def nps(eid: str, score: int, at: int, **kw: Any) -> SurveyResponse:
    return SurveyResponse(eid, "c1", "nps", score, T0 + at, **kw)


def errors(doc: dict[str, Any]) -> list[str]:
    return [e.message for e in ALERT_SCHEMA.iter_errors(doc)]


def context_state() -> CustomerState:
    s = CustomerState.empty("c1")
    s = apply_profile(s, CustomerProfile("c1", {"plan": "pro", "region": "br"}, T0,
                                         Owner("Ana", "ana@example.com", "@ana")))
    s, _ = apply_survey(s, nps("a", 9, 2), horizon_start_ms=0)
    return s


#: The journey of `context_state`'s customer.
JOURNEY = apply_interaction(
    apply_interaction((), Interaction("i1", "c1", T0 + 1, "ticket_opened", "support", "email", "open")),
    Interaction("i2", "c1", T0 + 2_500, "call", None, "phone", None))


# -- alert_id -------------------------------------------------------------------------------
def test_alert_id_is_pinned_forever() -> None:
    """Changing the namespace or the name format would turn every re-delivery into a new alert."""
    assert ALERT_NAMESPACE == uuid.UUID("6f1c2d1e-6a2b-5c8e-9a51-0c7e3b1d9f42")
    assert alert_id("c1", "e1") == "69a9be64-ffc4-5391-93e5-de26eef846b1"
    assert alert_id("c1", "e1") == str(uuid.uuid5(ALERT_NAMESPACE, "c1\ne1"))
    assert uuid.UUID(alert_id("c1", "e1")).version == 5


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=130), st.text(max_size=130))
def test_alert_id_is_uuid5_of_customer_and_event(customer_id: str, event_id: str) -> None:
    """`alert_id` computes uuid5 itself (faster); it must stay exactly `uuid.uuid5`."""
    expected = uuid.uuid5(ALERT_NAMESPACE, f"{customer_id}\n{event_id}")
    assert alert_id(customer_id, event_id) == str(expected)
    assert uuid.UUID(alert_id(customer_id, event_id)) == expected


def test_alert_id_depends_on_customer_and_event_only() -> None:
    assert alert_id("c1", "e1") == alert_id("c1", "e1")
    assert len({alert_id("c1", "e1"), alert_id("c2", "e1"), alert_id("c1", "e2"), alert_id("c1e", "1")}) == 4


# -- documents ------------------------------------------------------------------------------
def test_detractor_alert_document() -> None:
    s = context_state()
    r = nps("b", 3, 3_000, comment="slow", touchpoint="support", channel="chat")
    after, turn = apply_survey(s, r, horizon_start_ms=0)
    assert turn == Turn("detractor", "promoter")
    doc = build_alert(s, r, turn, journey=JOURNEY, detected_at_ms=T0 + 3_412)
    assert doc == {
        "alert_id": alert_id("c1", "b"),
        "kind": "detractor",
        "customer_id": "c1",
        "survey_event_id": "b",
        "program": "nps",
        "score": 3,
        "previous_category": "promoter",
        "occurred_at": "2026-09-21T14:13:23Z",
        "detected_at": "2026-09-21T14:13:23.412Z",
        "segment": {"plan": "pro", "region": "br"},
        "touchpoint": "support",
        "channel": "chat",
        "comment": "slow",
        "owner": {"name": "Ana", "email": "ana@example.com", "slack": "@ana"},
        "recent_interactions": [
            {"event_id": "i2", "kind": "call", "occurred_at": "2026-09-21T14:13:22.500Z",
             "touchpoint": None, "channel": "phone", "outcome": None},
            {"event_id": "i1", "kind": "ticket_opened", "occurred_at": "2026-09-21T14:13:20.001Z",
             "touchpoint": "support", "channel": "email", "outcome": "open"},
        ],
        "priority": "normal",
        "value": None,
        "schema_version": 1,
    }
    assert errors(doc) == []
    assert orjson.loads(orjson.dumps(doc)) == doc


def test_recovered_alert_document_without_context() -> None:
    s = CustomerState.empty("c1")
    s, _ = apply_survey(s, nps("a", 2, 0), horizon_start_ms=0)
    r = nps("b", 8, 10)
    _, turn = apply_survey(s, r, horizon_start_ms=0)
    doc = build_alert(s, r, turn, journey=(), detected_at_ms=T0 + 20)
    assert doc["kind"] == "recovered" and doc["previous_category"] == "detractor" and doc["score"] == 8
    assert doc["owner"] is None and doc["segment"] == {} and doc["recent_interactions"] == []
    assert doc["touchpoint"] is None and doc["comment"] is None
    assert errors(doc) == []


def test_first_response_alert_has_no_previous_category() -> None:
    s = CustomerState.empty("c1")
    r = nps("a", 0, 0)
    _, turn = apply_survey(s, r, horizon_start_ms=0)
    doc = build_alert(s, r, turn, journey=(), detected_at_ms=T0)
    assert doc["previous_category"] is None and errors(doc) == []


def test_segment_is_the_responses_own_else_the_profiles() -> None:
    s = context_state()
    r = nps("b", 3, 3_000, segment={"plan": "free"})
    _, turn = apply_survey(s, r, horizon_start_ms=0)
    assert turn is not None
    assert build_alert(s, r, turn, journey=JOURNEY, detected_at_ms=T0)["segment"] == {"plan": "free"}  # not merged


def test_context_is_the_state_before_the_response() -> None:
    """Owner and journey as known when the response was processed: later profile updates
    and interactions do not rewrite an alert (a re-delivery builds it from the same state)."""
    s = context_state()
    r = nps("b", 3, 3_000)
    _, turn = apply_survey(s, r, horizon_start_ms=0)
    later = apply_profile(s, CustomerProfile("c1", {"plan": "ent"}, T0 + 9_000, Owner("Ben")))
    assert turn is not None
    assert build_alert(s, r, turn, journey=JOURNEY, detected_at_ms=T0)["owner"]["name"] == "Ana"
    assert build_alert(later, r, turn, journey=JOURNEY, detected_at_ms=T0)["owner"]["name"] == "Ben"
    doc = build_alert(s, r, turn, journey=JOURNEY, detected_at_ms=T0)
    doc["owner"]["name"] = "changed"
    assert s.profile["owner"]["name"] == "Ana"  # the document does not alias the state


def test_build_alert_refuses_non_nps_and_foreign_responses() -> None:
    s = CustomerState.empty("c1")
    with pytest.raises(ValueError):
        build_alert(s, SurveyResponse("x", "c1", "csat", 1, T0), Turn("detractor", None), journey=(),
                    detected_at_ms=T0)
    with pytest.raises(ValueError):
        build_alert(s, SurveyResponse("x", "c2", "nps", 1, T0), Turn("detractor", None), journey=(),
                    detected_at_ms=T0)


# -- CloudEvents ----------------------------------------------------------------------------
def test_cloudevent_headers_binary_mode() -> None:
    s = context_state()
    r = nps("b", 3, 3_000)
    _, turn = apply_survey(s, r, horizon_start_ms=0)
    doc = build_alert(s, r, turn, journey=JOURNEY, detected_at_ms=T0 + 3_412)
    assert cloudevent_headers(doc, source="cxstream/app1") == [
        ("ce_specversion", b"1.0"),
        ("ce_id", alert_id("c1", "b").encode()),
        ("ce_type", b"com.cxstream.alert.detractor"),
        ("ce_source", b"cxstream/app1"),
        ("ce_time", b"2026-09-21T14:13:23.412Z"),
        ("content-type", b"application/json"),
    ]
    recovered = {**doc, "kind": "recovered"}
    assert dict(cloudevent_headers(recovered, source="x"))["ce_type"] == b"com.cxstream.alert.recovered"
    with pytest.raises(ValueError):
        cloudevent_headers({**doc, "kind": "other"}, source="x")
    with pytest.raises(ValueError):
        cloudevent_headers(doc, source="")


# -- schema ---------------------------------------------------------------------------------
CUSTOMER_KINDS = ("detractor", "recovered", "promoter", "passive", "at_risk")
TARGET_KINDS = ("below_target", "back_on_target")
CUSTOMER = SCHEMA["$defs"]["customerAlert"]
TARGET = SCHEMA["$defs"]["targetAlert"]
CUSTOMER_EXAMPLES = [e for e in SCHEMA["examples"] if e["kind"] in CUSTOMER_KINDS]
TARGET_EXAMPLE = next(e for e in SCHEMA["examples"] if e["kind"] == "below_target")


def test_schema_examples_are_consistent() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$id"] and SCHEMA["title"] and SCHEMA["description"]
    assert sorted(e["kind"] for e in SCHEMA["examples"]) == ["at_risk", "below_target",
                                                             "detractor", "recovered",
                                                             "segment_shift"]
    assert set(SCHEMA["properties"]["kind"]["enum"]) >= {*CUSTOMER_KINDS, *TARGET_KINDS}
    for example in SCHEMA["examples"]:
        assert errors(example) == []
    for example in CUSTOMER_EXAMPLES:
        assert example["alert_id"] == alert_id(example["customer_id"], example["survey_event_id"])
        # metric: at_risk alerts only
        metric = set() if example["kind"] == "at_risk" else {"metric"}
        assert set(example) == (set(SCHEMA["properties"]) | set(CUSTOMER["properties"])) - metric
        # program: always written, but optional (the alerts of earlier releases lack it)
        # priority and value too (every customer alert of this release has them)
        assert set(CUSTOMER["required"]) == set(example) - {"program", "metric", "priority",
                                                            "value"}
    # a target alert: every field required (margin_of_error may be null), no customer field
    assert set(TARGET_EXAMPLE) == set(SCHEMA["properties"]) | set(TARGET["properties"]) \
        == set(TARGET["required"])
    assert str(uuid.UUID(TARGET_EXAMPLE["alert_id"])) == TARGET_EXAMPLE["alert_id"]


def test_alerts_of_earlier_releases_without_program_still_validate() -> None:
    for example in CUSTOMER_EXAMPLES:
        assert errors({k: v for k, v in example.items() if k != "program"}) == []
        assert errors({k: v for k, v in example.items()
                       if k not in ("program", "priority", "value")}) == []


def valued_state(value: dict[str, Any] | None) -> CustomerState:
    s = CustomerState.empty("c1")
    s = apply_profile(s, CustomerProfile("c1", {"plan": "pro"}, T0, None, value))
    s, _ = apply_survey(s, nps("a", 9, 2), horizon_start_ms=0)
    return s


@pytest.mark.parametrize(("value", "comment", "expected"), [
    (None, None, "normal"),
    ({"tier": "strategic"}, None, "urgent"),
    ({"tier": "high", "arr": 5, "currency": "EUR"}, None, "high"),
    ({"tier": "standard", "arr": 100000, "currency": "EUR"}, None, "high"),
    ({"tier": "standard", "arr": 99999.99, "currency": "USD"}, None, "normal"),
    ({"tier": "low"}, None, "low"),
    ({"tier": "low"}, "I will CANCEL.", "normal"),
    ({"tier": "standard"}, "billing\nissue", "high"),
    ({"tier": "high"}, "refund please", "urgent"),
    ({"tier": "strategic"}, "churn", "urgent"),
    ({"tier": "standard"}, "cancellation", "normal"),  # whole words only
])
def test_alert_carries_the_customers_value_and_priority(value: Any, comment: Any,
                                                        expected: str) -> None:
    s = valued_state(value)
    r = nps("b", 3, 3_000, comment=comment)
    _, turn = apply_survey(s, r, horizon_start_ms=0)
    doc = build_alert(s, r, turn, journey=(), detected_at_ms=T0 + 3_412)
    assert doc["priority"] == expected and doc["value"] == value and errors(doc) == []
    # the escalation words raise detractors only: the same answer recovering is not raised
    s2, _ = apply_survey(s, r, horizon_start_ms=0)
    r2 = nps("c", 8, 4_000, comment=comment)
    _, turn2 = apply_survey(s2, r2, horizon_start_ms=0)
    assert turn2 == Turn("recovered", "detractor")
    plain = build_alert(s2, r2, turn2, journey=(), detected_at_ms=T0)
    assert plain["priority"] == build_alert(s, r, turn, journey=(), detected_at_ms=T0,
                                            rules=PriorityRules(DEFAULT_RULES.rules))["priority"]


def test_configured_rules_reach_the_alert() -> None:
    rules = PriorityRules(parse_rules("kind=detractor&arr>=10:urgent;*:low"), frozenset())
    s = valued_state({"arr": 10, "currency": "BRL"})
    r = nps("b", 3, 3_000, comment="billing")
    _, turn = apply_survey(s, r, horizon_start_ms=0)
    assert build_alert(s, r, turn, journey=(), detected_at_ms=T0, rules=rules)["priority"] == "urgent"
    s = valued_state({"arr": 9.5, "currency": "BRL"})
    assert build_alert(s, r, turn, journey=(), detected_at_ms=T0, rules=rules)["priority"] == "low"


@pytest.mark.parametrize("change", [
    {"priority": "critical"}, {"priority": None}, {"value": {"tier": "gold"}},
    {"value": {"arr": 5}}, {"value": {"arr": -1, "currency": "EUR"}},
    {"value": {"arr": 5, "currency": "eur"}}, {"value": {"tier": "low", "x": 1}}, {"value": []},
])
def test_schema_rejects_bad_priority_or_value(change: dict[str, Any]) -> None:
    assert errors({**NPS_EXAMPLE, **change}) != []


@pytest.mark.parametrize("change", [{"priority": "high"}, {"value": None}, {"priority": None}])
def test_segment_alerts_carry_no_priority(change: dict[str, Any]) -> None:
    assert errors({**TARGET_EXAMPLE, **change}) != []


NPS_EXAMPLE = next(e for e in CUSTOMER_EXAMPLES if e["kind"] == "detractor")
RISK_EXAMPLE = next(e for e in CUSTOMER_EXAMPLES if e["kind"] == "at_risk")


@pytest.mark.parametrize(("doc", "ok"), [
    ({**NPS_EXAMPLE, "kind": "promoter", "score": 9, "previous_category": "passive"}, True),
    ({**NPS_EXAMPLE, "kind": "promoter", "score": 10, "previous_category": None}, True),
    ({**NPS_EXAMPLE, "kind": "promoter", "score": 8, "previous_category": None}, False),
    ({**NPS_EXAMPLE, "kind": "promoter", "score": 9, "previous_category": "detractor"}, False),
    ({**NPS_EXAMPLE, "kind": "passive", "score": 7, "previous_category": "promoter"}, True),
    ({**NPS_EXAMPLE, "kind": "passive", "score": 8, "previous_category": "detractor"}, False),
    ({**NPS_EXAMPLE, "kind": "passive", "score": 9, "previous_category": "promoter"}, False),
    ({**NPS_EXAMPLE, "score": 11}, False),
    ({**NPS_EXAMPLE, "metric": "csat"}, False),
    ({**RISK_EXAMPLE, "metric": "ces", "score": 7, "previous_category": None}, True),
    ({**RISK_EXAMPLE, "score": -3}, True),
    ({**RISK_EXAMPLE, "previous_category": "detractor"}, False),
    ({**RISK_EXAMPLE, "metric": "nps"}, False),
    ({k: v for k, v in RISK_EXAMPLE.items() if k != "metric"}, False),
])
def test_schema_of_the_new_customer_kinds(doc: dict[str, Any], ok: bool) -> None:
    assert (errors(doc) == []) == ok


@pytest.mark.parametrize("kind", TARGET_KINDS)
@pytest.mark.parametrize("change", [
    {},
    {"segment_key": "all", "segment": {}},
    {"segment_key": "touchpoint:support", "segment": {"touchpoint": "support"}},
    {"metric": "csat", "score": 82.5, "target": 80},
    {"metric": "ces", "score": 4.2, "target": 3, "margin_of_error": None},
    {"metric": "nps", "score": -100, "target": 100, "margin_of_error": None},
    {"score": 50, "target": 50.5, "responses": 1, "margin_of_error": 0},
])
def test_target_alerts_validate(kind: str, change: dict[str, Any]) -> None:
    assert errors({**TARGET_EXAMPLE, "kind": kind, **change}) == []


@pytest.mark.parametrize("missing", sorted(TARGET["required"]))
def test_a_target_alert_missing_a_field_does_not_validate(missing: str) -> None:
    assert errors({k: v for k, v in TARGET_EXAMPLE.items() if k != missing})


@pytest.mark.parametrize("change", [
    {"segment_key": ""},
    {"segment_key": "region"},
    {"segment_key": "Region:br"},
    {"segment_key": "region:br\n"},
    {"segment_key": "all", "segment": {"region": "br"}},  # all has no dimension
    {"segment": {}},  # region:br has one
    {"segment": {"region": 1}},
    {"segment": None},
    {"program": "rNPS"},
    {"metric": "ltv"},
    {"window": ""},
    {"window_start": "2026-12-01 10:00:00"},
    {"score": 100.5},
    {"score": "41.5"},
    {"target": None},
    {"metric": "csat", "score": -1},
    {"responses": 0},
    {"responses": 2.5},
    {"margin_of_error": -1},
    {"metric": "ces", "score": 4.2, "target": 3},  # ces keeps no variance: margin null
    {"alert_id": "not-a-uuid"},
    {"kind": "ontarget"},
    {"schema_version": 2},
])
def test_schema_rejects_inconsistent_target_alerts(change: dict[str, Any]) -> None:
    assert errors({**TARGET_EXAMPLE, **change})


@pytest.mark.parametrize("kind", CUSTOMER_KINDS)
def test_a_customer_alert_shaped_like_a_target_alert_does_not_validate(kind: str) -> None:
    """The kind decides the shape: customer kinds still need every customer field."""
    assert "'customer_id' is a required property" in errors({**TARGET_EXAMPLE, "kind": kind})
    target = next((e for e in CUSTOMER_EXAMPLES if e["kind"] == kind), CUSTOMER_EXAMPLES[0])
    assert "'segment_key' is a required property" in errors({**target, "kind": "below_target"})


def test_alert_names_the_program_of_the_answer() -> None:
    """An answer of a registered nps program carries its id; the built-in one, `nps`."""
    s = context_state()
    for program in ("nps-onboarding", "nps", None):
        r = SurveyResponse("b", "c1", "nps", 3, T0 + 3_000, program=program)
        _, turn = apply_survey(s, r, horizon_start_ms=0)
        assert turn is not None
        doc = build_alert(s, r, turn, journey=(), detected_at_ms=T0 + 3_412)
        assert doc["program"] == (program or "nps") and errors(doc) == []


@pytest.mark.parametrize("change", [
    {"kind": "recovered"},  # from promoter with a score of 3: not a recovery
    {"previous_category": "detractor"},  # detractor -> detractor is no alert
    {"score": 7},
    {"alert_id": "not-a-uuid"},
    {"occurred_at": "2026-10-31 14:05:00"},
    {"schema_version": 2},
    {"owner": {"name": "Ana"}},
    {"comment": 5},
    {"program": "NPS"},
    {"program": ""},
    {"program": "nps\n"},
    {"program": "x" * 65},
    {"program": None},
])
def test_schema_rejects_inconsistent_documents(change: dict[str, Any]) -> None:
    example = next(e for e in CUSTOMER_EXAMPLES if e["kind"] == "detractor")
    assert errors({**example, **change})


texts = st.one_of(st.none(), st.text(max_size=6))
segments = st.dictionaries(st.sampled_from(["plan", "region"]), st.text(min_size=1, max_size=4), max_size=2)
events = st.one_of(
    st.builds(SurveyResponse, st.text("ab", min_size=1, max_size=3), st.just("c1"), st.just("nps"),
              st.integers(0, 10), st.integers(0, 10**13), segments, texts, texts, texts,
              program=st.sampled_from([None, "nps", "nps-relationship", "n" * 64])),
    st.builds(SurveyResponse, st.text("ab", min_size=1, max_size=3), st.just("c1"),
              st.sampled_from(["csat", "ces"]), st.integers(1, 5), st.integers(0, 10**13),
              segments, texts, texts, texts),
    st.builds(Interaction, st.text("ij", min_size=1, max_size=3), st.just("c1"), st.integers(0, 10**13),
              st.text(min_size=1, max_size=5), texts, texts, texts),
    st.builds(CustomerProfile, st.just("c1"), segments, st.integers(0, 10**13),
              st.one_of(st.none(), st.builds(Owner, texts, texts, texts)),
              st.one_of(st.none(), st.fixed_dictionaries({}, optional={
                  "tier": st.sampled_from(["strategic", "high", "standard", "low"]),
                  "arr": st.one_of(st.integers(0, 10**9), st.floats(0, 1e12)),
              }).map(lambda v: {**v, "currency": "EUR"} if "arr" in v else v or None))),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(events, max_size=30), st.integers(0, 10**13))
def test_every_built_alert_validates(evs: list[Any], detected: int) -> None:
    s = CustomerState.empty("c1")
    j: Journey = ()
    for e in evs:
        if isinstance(e, SurveyResponse):
            after, turn = apply_survey(s, e, horizon_start_ms=0, rules=BUILTIN_RULES)
            if turn is not None:
                doc = build_alert(s, e, turn, journey=j, detected_at_ms=detected)
                assert doc["kind"] == turn.kind and doc.get("metric") == (
                    e.survey if turn.kind == "at_risk" else None)
                assert errors(doc) == []
                assert parse_rfc3339(doc["occurred_at"]) == e.occurred_at
                assert parse_rfc3339(doc["detected_at"]) == detected
                assert len(doc["recent_interactions"]) == len(j)
                assert doc["program"] == e.program
                headers = dict(cloudevent_headers(doc, source="cxstream/t"))
                assert headers["ce_id"].decode() == doc["alert_id"] and headers["ce_time"].decode() == doc["detected_at"]
            s = after
        elif isinstance(e, Interaction):
            j = apply_interaction(j, e, journey_len=3)
        else:
            s = apply_profile(s, e)


def test_a_shift_alert_as_built_validates_and_its_example_is_one() -> None:
    """`build_shift_alert`'s documents validate, with every field required; one without its
    interval does not; the example is what it builds for its inputs."""
    from cxstream.core.targets import TargetConfig, build_shift_alert
    from cxstream.core.trends import Change
    from cxstream.core.windows import Window

    [example] = [e for e in SCHEMA["examples"] if e["kind"] == "segment_shift"]
    shift = SCHEMA["$defs"]["shiftAlert"]
    assert set(example) == set(SCHEMA["properties"]) | set(shift["properties"]) \
        == set(shift["required"])
    week = Window("7d", 7 * 86_400_000)
    cfg = TargetConfig(windows=(), every_ms=3_600_000, settle_ms=300_000, min_responses=30,
                       programs=(), trends=(week,))
    found = Change(nps=-0.5, previous_nps=28.5, responses=402, previous_responses=389,
                   change=-29.0, low=-48.7, high=-9.4, significant=True)
    built = build_shift_alert("down", week, "region:br", 1_796_724_000_000, found, cfg,
                              1_796_727_900_000)
    assert built == example and errors(built) == []
    for segment in ("all", "touchpoint:support"):
        assert errors(build_shift_alert("up", week, segment, 1_796_724_000_000, found, cfg,
                                        1_796_727_900_000)) == []
    assert errors({k: v for k, v in built.items() if k != "interval"}) != []

