"""The verdict logic on hand-made measurements: no model, no run."""

import math

import pytest

from newllm.reproduce.claims import parse_claims
from newllm.reproduce.measure import arithmetic, evaluate, select
from newllm.reproduce.plan import quick_plan
from newllm.reproduce.verdicts import (
    FAILS,
    HOLDS,
    HOLDS_ONLY,
    INCONCLUSIVE,
    NOT_MEASURED,
    Verdict,
    check_consistency,
    combine,
    judge_paired,
    judge_single,
    stat,
    within,
)

RATE = {"abs": 0.1}
ITER = {"abs": 1.0, "rel": 0.2}
LOSS = {"factor": 2.0}


def s(*vals):
    return stat(dict(enumerate(vals)))


def test_stat_summary_and_missing_values():
    x = stat({2: 3.0, 0: 1.0, 1: None, 3: math.nan})
    assert x.seeds == (0, 2) and x.values == (1.0, 3.0)
    assert x.mean == 2.0 and x.std == pytest.approx(math.sqrt(2)) and (x.min, x.max, x.n) == (1.0, 3.0, 2)
    assert stat({0: None}) is None
    assert s(5.0).std == 0.0


def test_tolerance_bands():
    assert within(0.85, 0.9, RATE) and not within(0.79, 0.9, RATE)
    # iterations: max(1, 20% of the claim)
    assert within(130, 156, ITER) and not within(124, 156, ITER)
    assert within(2.0, 1.0, ITER) and not within(2.1, 1.0, ITER)
    assert within(0.02, 0.011, LOSS) and not within(0.03, 0.011, LOSS)
    assert not within(0.0, 0.011, LOSS)


def test_approx_holds_fails_inconclusive():
    assert judge_single("approx", 0.9, s(0.85, 0.9, 0.95), RATE).status == HOLDS
    assert judge_single("approx", 0.9, s(0.6, 0.5, 0.55), RATE).status == FAILS
    # the mean misses, but one seed agrees: the seeds disagree
    v = judge_single("approx", 0.9, s(0.3, 0.9, 0.4), RATE)
    assert v.status == INCONCLUSIVE and "mean 0.5333" in v.detail
    assert judge_single("approx", 0.9, None, RATE).status == NOT_MEASURED


def test_per_seed_inequalities_and_range():
    assert judge_single("at_least", 0.95, s(1.0, 0.96), RATE).status == HOLDS
    assert judge_single("at_least", 0.95, s(1.0, 0.94), RATE).status == INCONCLUSIVE
    assert judge_single("below", 1.0, s(1.02, 1.01), {}).status == FAILS
    assert judge_single("below", 1.0, s(0.99, 0.5), {}).status == HOLDS
    assert judge_single("above", 1.0, s(1.01), {}).status == HOLDS
    assert judge_single("range", [0.13, 0.36], s(0.2, 0.3), {}).status == HOLDS
    v = judge_single("range", [0.13, 0.36], s(0.05, 0.3, 0.5), {})
    assert v.status == INCONCLUSIVE and v.detail.startswith("1/3")
    with pytest.raises(ValueError, match="unknown single-measurement test"):
        judge_single("about", 1.0, s(1.0), {})


def test_paired_tests_compare_seed_by_seed():
    a, b = s(2.0, 2.0, 2.0), s(3.0, 3.0, 1.0)
    v = judge_paired("less", None, a, b, ITER)
    assert v.status == INCONCLUSIVE and v.detail.startswith("2/3")
    assert judge_paired("greater", None, b, s(0.0, 0.0, 0.0), ITER).status == HOLDS
    assert judge_paired("equal", None, s(0.6, 0.6), s(0.65, 0.6), RATE).status == HOLDS
    assert judge_paired("equal", None, s(0.6, 0.6), s(0.9, 0.9), RATE).status == FAILS
    r = judge_paired("ratio", 3.0, s(3.0, 3.0), s(1.0, 1.1), {"rel": 0.2})
    assert r.status == HOLDS and r.measured["ratio"]["values"] == pytest.approx([3.0, 3.0 / 1.1])
    assert judge_paired("ratio", 3.0, s(3.0), s(2.0), {"rel": 0.2}).status == FAILS
    # only seeds measured on both sides count
    only = judge_paired("less", None, stat({0: 1.0, 1: 5.0}), stat({0: 2.0}), ITER)
    assert only.status == HOLDS and only.detail.startswith("1/1")
    assert judge_paired("less", None, stat({1: 1.0}), stat({0: 2.0}), ITER).status == NOT_MEASURED


def test_combine_over_conditions():
    h, f, i, n = (Verdict(x, "") for x in (HOLDS, FAILS, INCONCLUSIVE, NOT_MEASURED))
    assert combine([("a", h), ("b", h), ("c", n)]) == (HOLDS, HOLDS)
    assert combine([("a", f), ("b", f)]) == (FAILS, FAILS)
    assert combine([("l2", h), ("mse", f), ("rel", h)]) == (HOLDS_ONLY, "holds only under: l2; rel")
    assert combine([("a", h), ("b", i)]) == (HOLDS_ONLY, "holds only under: a (seeds disagree under: b)")
    assert combine([("a", f), ("b", i)]) == (INCONCLUSIVE, "inconclusive (seeds disagree under: b)")
    assert combine([("a", n)]) == (NOT_MEASURED, NOT_MEASURED)


def test_consistency_rules():
    lst = [129, 199, 101, 108, 123, 138, 184, 101, 106, 200]
    assert check_consistency({"rule": "mean_of", "values": lst, "claimed": 138.9})["status"] == "consistent"
    assert check_consistency({"rule": "mean_of", "values": lst, "claimed": 140.0})["status"] == "inconsistent"
    cap = check_consistency({"rule": "at_cap", "values": lst, "cap": 200, "position": 2})
    assert cap["status"] == "inconsistent" and "[10]" in cap["detail"]
    assert (
        check_consistency({"rule": "at_cap", "values": lst, "cap": 200, "position": 10})["status"]
        == "consistent"
    )
    assert (
        check_consistency({"rule": "below", "values": [0.005, 0.011], "bound": 0.01})["status"]
        == "inconsistent"
    )
    eq = check_consistency({"rule": "equal", "a": 256, "b": {"divide": [1.6, 0.01]}})
    assert eq["status"] == "inconsistent" and "160" in eq["detail"]
    less = check_consistency({"rule": "less", "a": [1, 2, 2], "b": [3, 3, 1], "labels": ["10", "20", "50"]})
    assert less["status"] == "inconsistent" and less["detail"].endswith("50")
    with pytest.raises(ValueError, match="unknown consistency rule"):
        check_consistency({"rule": "similar"})


def test_arithmetic_of_the_thresholds():
    a = arithmetic(256)
    assert a["l2_at_mse_0.01"] == pytest.approx(1.6)
    assert a["mse_at_l2_0.01"] == pytest.approx(0.01**2 / 256)
    assert a["strictness_mse_units"] == pytest.approx(25_600)
    assert a["strictness_l2_units"] == pytest.approx(160)
    assert a["strictness_vs_rms_mse_units"] == pytest.approx(256)
    assert a["strictness_vs_rms_l2_units"] == pytest.approx(16)


def _doc(claims, templates=None):
    return {
        "notes": {"000": {"file": "000_x.md", "title": "t"}},
        "tolerances": {"rate": {"abs": 0.1}, "iterations": {"abs": 1.0, "rel": 0.2}},
        "templates": templates or {},
        "claims": claims,
        "unmeasured": [],
        "consistency": [],
    }


def _rows():
    rows = []
    for seed, (l2_rate, mse_rate) in enumerate([(0.6, 1.0), (0.7, 1.0), (0.5, 1.0)]):
        base = {"exp": "untrained", "arch": "layerwise", "tokens": 10, "clamp": None, "seed": seed}
        rows.append({**base, "judge": "seed000", "rate": l2_rate, "mean_iterations": 150.0})
        rows.append({**base, "judge": "mse_w100", "rate": mse_rate, "mean_iterations": 101.0})
    return rows


def test_evaluate_claims_on_hand_made_rows():
    templates = {
        "u": [
            {"label": "l2", "exp": "untrained", "judge": "seed000", "where": {"clamp": None}},
            {"label": "mse", "exp": "untrained", "judge": "mse_w100", "where": {"clamp": None}},
        ]
    }
    claims = [
        {"id": "c1", "note": "000", "section": "S", "text": "LW 10 tokens 90%", "test": "approx", "quantity": "rate",
         "claimed": 0.9, "field": "rate", "measure": {"template": "u", "where": {"arch": "layerwise", "tokens": 10}}},
        {"id": "c2", "note": "000", "section": "S", "text": "LW 10 tokens 60%", "test": "approx", "quantity": "rate",
         "claimed": 0.6, "field": "rate", "measure": {"template": "u", "where": {"arch": "layerwise", "tokens": 10}}},
        {"id": "c3", "note": "000", "section": "S", "text": "mse faster", "test": "less", "quantity": "iterations",
         "claimed": None, "field": "mean_iterations", "measure": [
             {"label": "p", "a": {"exp": "untrained", "judge": "mse_w100", "where": {"tokens": 10}},
              "b": {"exp": "untrained", "judge": "seed000", "where": {"tokens": 10}}}]},
        {"id": "c4", "note": "000", "section": "S", "text": "512 tokens", "test": "approx", "quantity": "rate",
         "claimed": 0.5, "field": "rate", "measure": {"template": "u", "where": {"tokens": 512}}},
    ]  # fmt: skip
    out = {c["id"]: c for c in evaluate(parse_claims(_doc(claims, templates)), _rows(), quick_plan())}
    assert (
        out["c1"]["verdict"] == "holds only under: mse"
    )  # l2 mean 0.6 misses 0.9; mse mean 1.0 is within 0.1
    assert out["c1"]["variants"][0]["measured"]["stat"]["values"] == [0.6, 0.7, 0.5]
    assert out["c2"]["verdict"] == "holds only under: l2"
    assert out["c3"]["verdict"] == HOLDS
    assert out["c4"]["status"] == NOT_MEASURED
    assert out["c1"]["variants"][0]["conditions"]["decision"]["metric"] == "l2"


def test_select_refuses_ambiguous_rows():
    from newllm.reproduce.claims import Selection

    rows = _rows()
    with pytest.raises(ValueError, match="more than one row"):
        select(rows + rows[:1], Selection("untrained", "seed000", "rate", {"tokens": 10}))


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"test": "roughly"}, "unknown test"),
        ({"note": "009"}, "unknown note"),
        ({"quantity": "speed"}, "no tolerance"),
        ({"claimed": "high"}, "does not suit"),
        ({"test": "less", "claimed": None}, "disagree on pairing"),
    ],
)
def test_parse_claims_names_the_bad_field(bad, match):
    c = {"id": "x", "note": "000", "section": "S", "text": "t", "test": "approx", "quantity": "rate",
         "claimed": 0.5, "field": "rate", "measure": [{"label": "l", "exp": "untrained", "judge": "mse"}]}  # fmt: skip
    c.update(bad)
    with pytest.raises(ValueError, match=match):
        parse_claims(_doc([c]))
    with pytest.raises(ValueError, match="appears twice"):
        ok = {**c, **{"test": "approx", "note": "000", "quantity": "rate", "claimed": 0.5}}
        parse_claims(_doc([ok, ok]))
