"""The verdict logic on hand-made measurements: no model, no run."""

import math

import pytest

from newllm.reproduce.claims import parse_claims
from newllm.reproduce.measure import arithmetic, evaluate, select
from newllm.reproduce.plan import quick_plan
from newllm.reproduce.verdicts import (
    FAILS,
    FAILS_ONLY,
    HOLDS,
    HOLDS_ONLY,
    INCONCLUSIVE,
    NOT_MEASURED,
    SINGLE_RUN,
    TRIVIAL,
    TYPICAL,
    Verdict,
    band,
    check_consistency,
    combine,
    judge_paired,
    judge_single,
    stat,
)

RATE = {"abs": 0.1}
ITER = {"abs": 1.0, "rel": 0.2}
LOSS = {"factor": 2.0}


def s(*vals):
    return stat(dict(enumerate(vals)))


def rate(*counts, tokens=10):
    """A rate stat from per-seed converged counts of ``tokens`` tokens."""
    return stat({i: k / tokens for i, k in enumerate(counts)}, {i: (k, tokens) for i, k in enumerate(counts)})


def test_stat_summary_and_missing_values():
    x = stat({2: 3.0, 0: 1.0, 1: None, 3: math.nan})
    assert x.seeds == (0, 2) and x.values == (1.0, 3.0) and not x.is_rate
    assert x.mean == 2.0 and x.std == pytest.approx(math.sqrt(2)) and (x.min, x.max, x.n) == (1.0, 3.0, 2)
    assert stat({0: None}) is None
    assert s(5.0).std == 0.0 and s(5.0).interval() is None and s(5.0).prediction() is None
    r = rate(6, 5, 7)
    assert r.is_rate and r.counts == (6, 5, 7) and r.tokens == (10, 10, 10)
    assert r.interval().method.startswith("wilson") and rate(6).interval() is not None  # one seed: Wilson


def test_slack_bands():
    assert (band(0.9, RATE).lower, band(0.9, RATE).upper) == pytest.approx((0.8, 1.0))
    assert band(156, ITER).width == pytest.approx(31.2) and band(1.0, ITER).width == 1.0
    b = band(0.011, LOSS)
    assert b.log and (math.exp(b.lower), math.exp(b.upper)) == pytest.approx((0.0055, 0.022))
    assert (band([0.13, 0.36], {}).lower, band([0.13, 0.36], {}).upper) == (0.13, 0.36)
    with pytest.raises(ValueError, match="positive"):
        band(0.0, LOSS)


def test_typical_is_an_equivalence_test_on_the_interval():
    # 20 seeds near 0.6: the interval [~0.55, ~0.65] lies outside 0.9 ± 0.1, inside 0.6 ± 0.1
    lw = rate(*([6, 5, 7, 6, 6] * 4))
    assert judge_single("approx", 0.9, lw, RATE, TYPICAL).status == FAILS
    assert judge_single("approx", 0.6, lw, RATE, TYPICAL).status == HOLDS
    # three seeds that disagree: the interval straddles the band's edge
    v = judge_single("approx", 0.75, s(0.6, 0.9, 0.75), RATE, TYPICAL)
    assert v.status == INCONCLUSIVE and v.question == TYPICAL and "95% interval" in v.detail


def test_single_run_asks_whether_the_number_lies_in_the_prediction_range():
    lw = rate(*([6, 5, 7, 6, 4, 8, 6, 5] * 3))  # a new seed's 10 tokens: roughly 3..9 of 10
    v = judge_single("approx", 0.9, lw, RATE, SINGLE_RUN)
    assert v.status == HOLDS and v.answers[TYPICAL].status == FAILS  # a plausible run, not the typical one
    assert judge_single("approx", 0.0, lw, RATE, SINGLE_RUN).status == FAILS
    assert judge_single("approx", 0.9, s(0.6), RATE, SINGLE_RUN).status == INCONCLUSIVE  # one seed: no range
    assert v.measured["stat"]["prediction"]["level"] == 0.95


def test_factor_slack_compares_on_the_log_scale():
    losses = s(0.010, 0.012, 0.011, 0.0105, 0.0115)
    assert judge_single("approx", 0.011, losses, LOSS, TYPICAL).status == HOLDS
    assert judge_single("approx", 0.05, losses, LOSS, TYPICAL).status == FAILS
    assert judge_single("approx", 0.011, s(0.0, 0.01), LOSS, TYPICAL).status == INCONCLUSIVE


def test_inequalities_need_the_whole_interval_on_one_side():
    assert (
        judge_single("at_least", 0.95, rate(486, 487, 485, 488, 486, tokens=512), RATE).status == INCONCLUSIVE
    )
    full = rate(*[512] * 5, tokens=512)
    assert judge_single("at_least", 0.95, full, RATE).status == HOLDS
    assert judge_single("at_least", 0.95, rate(*[300] * 5, tokens=512), RATE).status == FAILS
    assert judge_single("below", 1.0, s(1.02, 1.021, 1.019), {}).status == FAILS
    assert judge_single("below", 1.0, s(0.7, 0.72, 0.71), {}).status == HOLDS
    # every seed below 1, but three seeds cannot place the mean below 1 at 95% (t with 2 df)
    assert judge_single("below", 1.0, s(0.99, 0.97, 0.98), {}).status == INCONCLUSIVE
    assert judge_single("above", 1.0, s(1.02, 1.021, 1.019), {}).status == HOLDS
    assert judge_single("range", [0.13, 0.36], s(0.24, 0.26, 0.25), {}).status == HOLDS
    assert judge_single("range", [0.13, 0.36], s(0.5, 0.6, 0.55), {}).status == FAILS
    with pytest.raises(ValueError, match="unknown single-measurement test"):
        judge_single("about", 1.0, s(1.0), {})


def test_paired_tests_use_the_interval_of_the_seed_by_seed_difference():
    assert judge_paired("less", None, s(2.0, 2.0, 2.1), s(3.0, 3.1, 3.0), ITER).status == HOLDS
    assert (
        judge_paired("less", None, s(2.0, 2.0, 2.0), s(2.0, 2.0, 2.0), ITER).status == FAILS
    )  # equal is not less
    assert judge_paired("less", None, s(2.0, 4.0, 2.0), s(3.0, 3.0, 3.0), ITER).status == INCONCLUSIVE
    assert judge_paired("greater", None, s(3.0, 3.0, 3.1), s(0.0, 0.1, 0.0), ITER).status == HOLDS
    assert judge_paired("equal", None, s(0.6, 0.6, 0.6), s(0.6, 0.62, 0.61), RATE).status == HOLDS
    assert judge_paired("equal", None, s(0.6, 0.6, 0.6), s(0.9, 0.92, 0.91), RATE).status == FAILS
    r = judge_paired("ratio", 3.0, s(3.0, 3.0, 3.1), s(1.0, 1.05, 1.0), {"rel": 0.2})
    assert r.status == HOLDS and r.measured["stat"]["values"] == pytest.approx([3.0, 3.0 / 1.05, 3.1])
    # losses compare on the log scale: a / b as a log ratio
    v = judge_paired("less", None, s(1e-4, 2e-4, 1.5e-4), s(8e-3, 7e-3, 9e-3), LOSS)
    assert v.status == HOLDS and v.measured["difference"]["of"] == "log(a/b)"
    # only seeds measured on both sides count
    assert judge_paired("less", None, stat({1: 1.0}), stat({0: 2.0}), ITER).status == NOT_MEASURED
    assert judge_paired("less", None, None, s(1.0), ITER).status == NOT_MEASURED


H, F, U = HOLDS, FAILS, INCONCLUSIVE


def _v(status):
    return Verdict(status, status)


@pytest.mark.parametrize("primary", [H, F, U])
@pytest.mark.parametrize("others", [(), (H,), (F,), (U,), (H, F), (H, U), (F, U), (H, F, U)])
@pytest.mark.parametrize("control", [None, H, F, U])
def test_combine_every_combination_of_outcomes(primary, others, control):
    variants = [("own", True, _v(primary))] + [(f"other-{o}", False, _v(o)) for o in others]
    c = combine(variants, None if control is None else _v(control))
    assert c.status == primary  # the note's reading decides; nothing else rescues or sinks it
    assert c.holds_under == tuple(f"other-{o}" for o in others if o == H)
    assert c.fails_under == tuple(f"other-{o}" for o in others if o == F)
    assert c.inconclusive_under == tuple(f"other-{o}" for o in others if o == U)
    assert c.trivial == (primary == H and control == H)
    head = c.text.split(" · ")[0]
    assert head == (TRIVIAL if c.trivial else primary)
    assert (HOLDS_ONLY in c.text) == (primary != H and H in others)
    assert (FAILS_ONLY in c.text) == (primary != F and F in others)


MIRROR = {H: F, F: H, U: U}


@pytest.mark.parametrize("primary", [H, F, U])
@pytest.mark.parametrize("others", [(), (H,), (F,), (U,), (H, F), (H, U), (F, U), (H, F, U), (F, F, H)])
def test_combine_is_symmetric_in_holds_and_fails(primary, others):
    """Swapping every "holds" for "does not hold" swaps the verdict and its two annotations: the
    combiner leans neither way (no control: a control only ever tags a holding claim)."""
    variants = [("own", True, _v(primary))] + [(f"other{i}", False, _v(o)) for i, o in enumerate(others)]
    mirrored = [(lab, own, _v(MIRROR[v.status])) for lab, own, v in variants]
    a, b = combine(variants), combine(mirrored)
    assert b.status == MIRROR[a.status]
    assert (b.holds_under, b.fails_under, b.inconclusive_under) == (
        a.fails_under,
        a.holds_under,
        a.inconclusive_under,
    )
    swap = {HOLDS_ONLY: FAILS_ONLY, FAILS_ONLY: HOLDS_ONLY, H: F, F: H}
    mirror_text = {
        next((swap[k] + p[len(k) :] for k in (HOLDS_ONLY, FAILS_ONLY) if p.startswith(k)), swap.get(p, p))
        for p in a.text.split(" · ")
    }
    assert set(b.text.split(" · ")) == mirror_text


def test_combine_own_variants_are_a_conjunction_and_unmeasured_ones_drop_out():
    n = Verdict(NOT_MEASURED, "")
    assert combine([("a", True, _v(H)), ("b", True, _v(H))]).status == H
    assert combine([("a", True, _v(H)), ("b", True, _v(U))]).status == U
    assert combine([("a", True, _v(U)), ("b", True, _v(F))]).status == F
    assert combine([("a", True, _v(H)), ("b", True, n)]).status == H
    only_others = combine([("a", True, n), ("b", False, _v(H))])
    assert only_others.status == NOT_MEASURED and only_others.holds_under == ("b",)
    assert combine([("a", True, _v(H))], n).trivial is False


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
        "slack": {"rate": {"abs": 0.1}, "iterations": {"abs": 1.0, "rel": 0.2}},
        "templates": templates or {},
        "claims": claims,
        "unmeasured": [],
        "consistency": [],
    }


def _rows():
    """Three seeds of one untrained 10-token model judged two ways (l2: about 0.6; mse: all converge),
    and the same ids trained (train-mode rows) plus its untrained train-mode control."""
    rows = []
    for seed, (l2_k, mse_k) in enumerate([(6, 10), (7, 10), (5, 10)]):
        base = {"exp": "untrained", "arch": "layerwise", "tokens": 10, "clamp": None, "seed": seed}
        rows.append(
            {**base, "judge": "seed000", "rate": l2_k / 10, "converged": l2_k, "mean_iterations": 150.0}
        )
        rows.append({**base, "judge": "mse_w100", "rate": 1.0, "converged": mse_k, "mean_iterations": 101.0})
        rows.append({**base, "judge": "train001", "rate": 1.0, "converged": 10, "mean_iterations": 2.0})
        t = {"exp": "phase1_spec", "arch": "layerwise", "tokens": 10, "seed": seed, "loop": "spec"}
        rows.append(
            {**t, "judge": "train", "rate": 1.0, "converged": 10, "mean_iterations": 1.0 + 0.1 * seed}
        )
    return rows


def test_evaluate_claims_on_hand_made_rows():
    templates = {
        "u": [
            {"label": "l2", "own": True, "exp": "untrained", "judge": "seed000", "where": {"clamp": None}},
            {"label": "mse", "exp": "untrained", "judge": "mse_w100", "where": {"clamp": None}},
        ]
    }
    claims = [
        {"id": "c1", "note": "000", "section": "S", "text": "LW 10 tokens 90%", "test": "approx", "quantity": "rate",
         "claimed": 0.9, "question": "typical", "field": "rate",
         "measure": {"template": "u", "where": {"arch": "layerwise", "tokens": 10}}},
        {"id": "c2", "note": "000", "section": "S", "text": "LW 10 tokens 95%", "test": "approx", "quantity": "rate",
         "claimed": 0.95, "question": "typical", "field": "rate", "own": ["mse"],
         "measure": {"template": "u", "where": {"arch": "layerwise", "tokens": 10}}},
        {"id": "c3", "note": "000", "section": "S", "text": "mse faster", "test": "less", "quantity": "iterations",
         "claimed": None, "question": "typical", "field": "mean_iterations", "measure": [
             {"label": "p", "own": True, "a": {"exp": "untrained", "judge": "mse_w100", "where": {"tokens": 10}},
              "b": {"exp": "untrained", "judge": "seed000", "where": {"tokens": 10}}}]},
        {"id": "c4", "note": "000", "section": "S", "text": "512 tokens", "test": "approx", "quantity": "rate",
         "claimed": 0.5, "question": "single_run", "field": "rate",
         "measure": {"template": "u", "where": {"tokens": 512}}},
        {"id": "c5", "note": "000", "section": "S", "text": "trained: 100%", "test": "approx", "quantity": "rate",
         "claimed": 1.0, "question": "single_run", "field": "rate", "measure": [
             {"label": "train", "own": True, "exp": "phase1_spec", "judge": "train", "where": {"tokens": 10}},
             {"label": "ctl", "control": True, "exp": "untrained", "judge": "train001", "where": {"tokens": 10}}]},
    ]  # fmt: skip
    out = {c["id"]: c for c in evaluate(parse_claims(_doc(claims, templates)), _rows(), quick_plan())}
    # the note's l2 reading misses 0.9; the mse variant holding is context, not a rescue
    assert out["c1"]["status"] == FAILS and out["c1"]["holds_under"] == ["mse"]
    assert out["c1"]["verdict"] == f"{FAILS} · {HOLDS_ONLY}: mse"
    v0 = out["c1"]["variants"][0]
    assert v0["values"] == [0.6, 0.7, 0.5] and v0["n_seeds"] == 3 and v0["question"] == TYPICAL
    assert set(v0["interval"]) >= {"lower", "upper", "level"} and v0["prediction"]["level"] == 0.95
    assert v0["own"] and not out["c1"]["variants"][1]["own"]
    assert out["c2"]["status"] == HOLDS and out["c2"]["fails_under"] == ["l2"]  # "own" picks the mse variant
    assert out["c3"]["status"] == HOLDS
    assert out["c4"]["status"] == NOT_MEASURED
    assert out["c5"]["status"] == HOLDS and out["c5"]["trivial"] and out["c5"]["verdict"] == TRIVIAL
    assert out["c5"]["control"]["verdict"] == HOLDS
    assert out["c1"]["variants"][0]["conditions"]["decision"]["metric"] == "l2"


def test_select_makes_rates_from_counts_and_refuses_ambiguous_rows():
    from newllm.reproduce.claims import Selection

    rows = _rows()
    sel = Selection("untrained", "seed000", "rate", {"tokens": 10})
    st = select(rows, sel)
    assert st.is_rate and st.counts == (6, 7, 5) and st.tokens == (10, 10, 10)
    assert not select(rows, Selection("untrained", "seed000", "mean_iterations", {"tokens": 10})).is_rate
    with pytest.raises(ValueError, match="more than one row"):
        select(rows + rows[:1], sel)


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"test": "roughly"}, "unknown test"),
        ({"note": "009"}, "unknown note"),
        ({"quantity": "speed"}, "no slack"),
        ({"claimed": "high"}, "does not suit"),
        ({"test": "less", "claimed": None}, "disagree on pairing"),
        ({"question": "likely"}, "unknown question"),
        ({"own": ["nope"]}, "'own' names no variant"),
        ({"measure": [{"label": "l", "exp": "untrained", "judge": "mse"}]}, "no variant marked own"),
    ],
)
def test_parse_claims_names_the_bad_field(bad, match):
    c = {"id": "x", "note": "000", "section": "S", "text": "t", "test": "approx", "quantity": "rate",
         "claimed": 0.5, "question": "typical", "field": "rate",
         "measure": [{"label": "l", "own": True, "exp": "untrained", "judge": "mse"}]}  # fmt: skip
    c.update(bad)
    with pytest.raises(ValueError, match=match):
        parse_claims(_doc([c]))
    with pytest.raises(ValueError, match="appears twice"):
        ok = {
            **c,
            **{"test": "approx", "note": "000", "quantity": "rate", "claimed": 0.5, "question": "typical"},
        }
        ok["measure"] = [{"label": "l", "own": True, "exp": "untrained", "judge": "mse"}]
        ok.pop("own", None)
        parse_claims(_doc([ok, ok]))
