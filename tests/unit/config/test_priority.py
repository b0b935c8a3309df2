"""`CXSTREAM_PRIORITY_RULES` and `CXSTREAM_PRIORITY_WORDS`: the grammar, and one-line errors
at start naming the rule."""

from __future__ import annotations

import pytest

from cxstream.config.errors import SettingsError
from cxstream.config.priority import parse_rules, parse_words
from cxstream.config.settings import SETTINGS, Settings
from cxstream.core.priority import DEFAULT_RULES, Condition, PriorityRule, PriorityRules


def test_the_defaults_are_the_cores_defaults() -> None:
    s = Settings.from_env({})
    assert PriorityRules(s.priority_rules, s.priority_words) == DEFAULT_RULES
    specs = {spec.attr: spec.default for spec in SETTINGS}
    assert specs["priority_rules"] == "tier=strategic:urgent;tier=high:high;arr>=100000:high;tier=low:low"
    assert specs["priority_words"] == "cancel,billing,refund,churn"


def test_the_grammar() -> None:
    assert parse_rules("") == parse_rules("  ") == ()
    rules = parse_rules(" tier = strategic | high & arr >= 2500.5 : urgent ; * : low ; "
                        "kind=detractor|at_risk&currency=EUR|USD:high; arr<10:low")
    assert rules == (
        PriorityRule((Condition("tier", ("strategic", "high")),
                      Condition("arr", op=">=", number=2500.5)), "urgent"),
        PriorityRule((), "low"),
        PriorityRule((Condition("kind", ("detractor", "at_risk")),
                      Condition("currency", ("EUR", "USD"))), "high"),
        PriorityRule((Condition("arr", op="<", number=10.0),), "low"),
    )
    assert [c.op for r in parse_rules("arr>1:low;arr<=1:low;arr=1:low") for c in r.conditions] \
        == [">", "<=", "="]
    assert parse_words(" Cancel, billing ,,REFUND ") == frozenset({"cancel", "billing", "refund"})
    assert parse_words("") == frozenset()


@pytest.mark.parametrize(("text", "error"), [
    ("tier=gold:high", "rule 1 'tier=gold:high': unknown tier 'gold' (expected strategic, "
                       "high, standard or low)"),
    ("tier=high:high;tier=low:critical", "rule 2 'tier=low:critical': unknown priority "
                                         "'critical' (expected urgent, high, normal or low)"),
    ("tier=high", "rule 1 'tier=high': expected <conditions>:<priority>"),
    (":high", "rule 1 ':high': no condition before ':' (use * to match every alert)"),
    ("arr=>5:high", "rule 1 'arr=>5:high': arr= needs a non-negative number"),
    ("arr>=-5:high", "arr>= needs a non-negative number such as 100000 or 2500.50, got '-5'"),
    ("arr>=1e5:high", "got '1e5'"),
    ("arr:high", "arr needs a comparison (>= <= > < =) and a number"),
    ("arr 5:high", "arr needs a comparison"),
    ("plan=pro:high", "unknown condition 'plan=pro': expected tier=…, currency=…, kind=… or arr"),
    ("tier:high", "unknown condition 'tier'"),
    ("currency=eur:high", "currency 'eur' is not three upper-case letters (ISO 4217)"),
    ("kind=below_target:high", "unknown kind 'below_target' (expected detractor, recovered, "
                               "promoter, passive or at_risk)"),
    ("tier=high&:high", "unknown condition ''"),
    ("tier=high|:high", "unknown tier ''"),
    ("tier=high:high;", "rule 2 '': expected <conditions>:<priority>"),
])
def test_bad_rules_fail_at_start_with_one_line(text: str, error: str) -> None:
    with pytest.raises(ValueError) as exc:
        parse_rules(text)
    assert error in str(exc.value)
    with pytest.raises(SettingsError) as at_start:
        Settings.from_env({"CXSTREAM_PRIORITY_RULES": text})
    message = str(at_start.value)
    assert message.startswith(f"CXSTREAM_PRIORITY_RULES={text!r} is not valid: rule ")
    assert "\n" not in message and error in message


@pytest.mark.parametrize("text", ["can cel", "billing-issue", "refund,ça va"])
def test_bad_words_fail_at_start(text: str) -> None:
    with pytest.raises(SettingsError) as exc:
        Settings.from_env({"CXSTREAM_PRIORITY_WORDS": text})
    assert "is not one word" in str(exc.value) and "\n" not in str(exc.value)
