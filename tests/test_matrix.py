"""The experiment matrix (newllm.matrix): its axes hold the settings the experiments used, and the one
cache of trained models trains once per spec and code version, returns the trained weights exactly,
is shared between processes, and retrains a damaged entry."""

import json
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from newllm import ModelConfig, SolverConfig, spread_token_ids
from newllm.matrix import (
    ARCHITECTURES,
    CONTROL_RULES,
    NOTES_RULES,
    RECIPES,
    STABLE_RULES,
    ModelSpec,
    build,
    model_config,
    rules,
    seeds,
    token_ids,
)
from newllm.matrix import cache as MC
from newllm.matrix import regression as R
from newllm.phase1 import Phase1Config
from newllm.runs.checkpoint import MANIFEST

TINY = {"vocab_size": 64, "embed_dim": 8, "context_dim": 8, "hidden_dim": 8}


def tiny_spec(**kw) -> ModelSpec:
    base = {"seed": 3, "recipe": "001", "samples": ((5, 9, 12), (40, 41)), "loop": "batched"}
    return ModelSpec(model_config("layerwise", **TINY), **{**base, **kw})


def weights(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_weights(a, b) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_architectures_and_token_sets():
    assert model_config("sequential").blocks == (2,) and model_config("layerwise").blocks == (1, 1)
    assert model_config("mixed") == ModelConfig(structure=(2, 2))
    assert set(ARCHITECTURES) == {"sequential", "layerwise", "mixed"}
    with pytest.raises(ValueError, match="architecture must be one of"):
        model_config("recurrent")
    assert token_ids("spread", 10, 50_259) == spread_token_ids(10, 50_259) == list(range(100, 1001, 100))
    assert token_ids("first", 5, 64) == [0, 1, 2, 3, 4]
    r = token_ids("random", 1000, 64, seed=1)
    assert r == token_ids("random", 1000, 64, seed=1) != token_ids("random", 1000, 64, seed=2)
    assert len(set(r)) < 1000 and all(0 <= t < 64 for t in r)  # uniform, with repeats
    d = token_ids("distinct", 64, 64, seed=1)
    assert sorted(d) == list(range(64)) and d != list(range(64))
    for kind, n, msg in [
        ("first", 65, "do not fit"),
        ("zipf", 3, "token set must be one of"),
        ("random", 0, "positive"),
    ]:
        with pytest.raises(ValueError, match=msg):
            token_ids(kind, n, 64)


def test_recipes_hold_the_settings_the_experiments_trained_with():
    # the seeds' settings are Phase1Config's defaults; bench/properties ran them batched in one batch
    assert RECIPES["001"].phase1(loop="spec", seed=0) == Phase1Config()
    assert RECIPES["001"].phase1(loop="batched", seed=0, batch_samples=4) == Phase1Config(
        loop="batched", batch_samples=4, seed=0
    )
    assert RECIPES["004"].phase1(loop="batched", seed=2) == Phase1Config(
        epochs=5, max_iterations=200, warmup=10, loop="batched", seed=2
    )
    assert RECIPES["jacobian"].phase1(loop="batched", seed=0) == Phase1Config(
        loop="batched", epochs=5, learning_rate=3e-3, jacobian_weight=1.0
    )
    assert not RECIPES["untrained"].trained
    with pytest.raises(ValueError, match="does not train"):
        RECIPES["untrained"].phase1(loop="spec", seed=0)


def test_decision_rules():
    rs = rules(256)
    assert set(NOTES_RULES) | set(STABLE_RULES) | set(CONTROL_RULES.values()) | {"rel1e-4"} == set(rs)
    assert rs["mse_stable"].solver_config().confirm == 1 and rs["train001"].solver_config().train_mode
    assert rs["l2_equiv"].threshold == pytest.approx(math.sqrt(256 * 0.01))
    assert (rs["seed000"].metric, rs["seed000"].threshold, rs["seed000"].warmup) == ("l2", 0.01, 100)
    assert rs["rel1e-4"].solver_config("anderson") == SolverConfig(
        max_iterations=200, metric="rel", threshold=1e-4, method="anderson"
    )
    assert seeds(3) == (0, 1, 2) and seeds(2, start=20) == (20, 21)


def test_model_spec_validation():
    with pytest.raises(ValueError, match="recipe must be one of"):
        tiny_spec(recipe="002")
    with pytest.raises(ValueError, match="give the samples"):
        tiny_spec(samples=())
    assert tiny_spec().phase1().batch_samples == 2  # all samples in one batch


def test_cache_trains_once_and_returns_the_trained_weights_exactly(tmp_path):
    spec = tiny_spec()
    first = build(spec, tmp_path)
    assert first.history["cached"] is False and len(first.history["epochs"]) == 3
    d = MC.entry(tmp_path, spec)
    manifest = json.loads((d / MANIFEST).read_text())
    # only the embedding rows that training changed are stored: the trained ids
    assert manifest["state"]["rows"] == [5, 9, 12, 40, 41]
    again = build(spec, tmp_path)
    assert again.history["cached"] is True
    assert same_weights(first.model, again.model)
    assert again.history["epochs"] == json.loads(json.dumps(first.history["epochs"]))
    assert again.history["iterations"] == first.history["iterations"]
    fresh = build(spec, None)  # no cache: trained here, deterministic
    assert fresh.history["cached"] is False and same_weights(fresh.model, again.model)
    assert not again.model.training


def test_cache_key_covers_every_setting_and_the_code(tmp_path, monkeypatch):
    spec = tiny_spec()
    assert MC.key(spec) == MC.key(tiny_spec())
    others = [
        tiny_spec(seed=4),
        tiny_spec(recipe="004"),
        tiny_spec(samples=((5, 9, 12), (40, 42))),
        tiny_spec(loop="spec"),
        tiny_spec(compact=True),
        tiny_spec(threads=2),
        ModelSpec(model_config("sequential", **TINY), seed=3, recipe="001", samples=spec.samples),
    ]
    assert len({MC.key(s) for s in others} | {MC.key(spec)}) == len(others) + 1
    before = MC.entry(tmp_path, spec)
    monkeypatch.setattr(MC, "code_version", lambda: "0123456789abcdef")
    assert MC.entry(tmp_path, spec) != before  # other code: another entry, so the model is retrained


def test_compact_spec_maps_ids(tmp_path):
    spec = tiny_spec(compact=True, samples=((12, 5, 9),))
    built = build(spec, tmp_path)
    assert built.model.config.vocab_size == 4 and built.id_map == {5: 0, 9: 1, 12: 2}
    assert built.ids([12, 5]) == [2, 0]
    assert same_weights(build(spec, tmp_path).model, built.model)


def test_a_damaged_entry_is_retrained(tmp_path):
    spec = tiny_spec()
    trained = build(spec, tmp_path)
    d = MC.entry(tmp_path, spec)
    weights_file = next(d.glob("model-*.safetensors"))
    blob = bytearray(weights_file.read_bytes())
    blob[-1] ^= 0xFF
    weights_file.write_bytes(bytes(blob))
    again = build(spec, tmp_path)
    assert again.history["cached"] is False and same_weights(again.model, trained.model)
    # a manifest whose rows no longer rebuild the trained weights fails the SHA-256 check
    m = json.loads((d / MANIFEST).read_text())
    m["state"]["rows"] = m["state"]["rows"][:-1]
    (d / MANIFEST).write_text(json.dumps(m))
    assert build(spec, tmp_path).history["cached"] is False


def test_concurrent_callers_share_one_training(tmp_path):
    """Two callers at once (threads here; xdist workers are processes, the same fcntl file lock):
    one trains, the other waits for it and loads the stored model."""
    spec = tiny_spec(seed=7)
    with ThreadPoolExecutor(2) as pool:
        built = list(pool.map(lambda _: build(spec, tmp_path), range(2)))
    assert sorted(b.history["cached"] for b in built) == [False, True]
    assert same_weights(built[0].model, built[1].model)


def test_prune_removes_only_stale_code_versions(tmp_path):
    build(tiny_spec(), tmp_path)
    current = tmp_path / MC.code_version()
    stale, recent = tmp_path / "stale0123456789a", tmp_path / "recent0123456789"
    for d in (stale, recent):
        (d / "entry").mkdir(parents=True)
    old = time.time() - (MC.STALE_DAYS + 1) * 86400
    os.utime(stale, (old, old))
    os.utime(current, (old, old))  # touched again when used
    build(tiny_spec(seed=5), tmp_path)
    assert not stale.exists() and recent.exists() and current.exists()


def test_regression_spec_is_the_seeds_model_trained_on_the_spread_ids():
    s = R.spec("mixed", "trained")
    assert s.config == ModelConfig(structure=(2, 2)) and s.seed == 0 and s.recipe == "001"
    assert [len(x) for x in s.samples] == [1, 10, 100, 512] and s.samples[1] == tuple(range(100, 1001, 100))
    assert s.phase1() == Phase1Config(loop="batched", batch_samples=4, seed=0)
    assert not R.spec("layerwise", "untrained").trained


def test_dialogue_token_set_is_the_first_long_enough_conversation(monkeypatch):
    from types import SimpleNamespace

    import newllm.data
    from newllm.matrix import dialogue

    convs = [SimpleNamespace(input_ids=[7] * 5), SimpleNamespace(input_ids=list(range(20, 40)))]
    asked = {}

    def fake(source, split, samples, max_length):
        asked.update(source=source, split=split, max_length=max_length)
        return SimpleNamespace(conversations=convs)

    monkeypatch.setattr(newllm.data, "load_samples", fake)
    dialogue.dialogue_ids.cache_clear()
    try:
        assert token_ids("dialogue", 8, 100) == list(range(20, 28))
        assert asked == {"source": "ultrachat", "split": "train_sft", "max_length": None}
        with pytest.raises(ValueError, match="cannot hold"):
            token_ids("dialogue", 8, 25)
        with pytest.raises(ValueError, match="has 30 tokens"):
            dialogue.dialogue_ids(30)
    finally:
        dialogue.dialogue_ids.cache_clear()


def test_noclip_recipe_differs_from_001_only_in_clipping():
    a, b = RECIPES["001"].phase1(loop="spec", seed=3), RECIPES["001-noclip"].phase1(loop="spec", seed=3)
    assert a.grad_clip == 1.0 and b.grad_clip is None
    assert {k: v for k, v in a.to_dict().items() if k != "grad_clip"} == {
        k: v for k, v in b.to_dict().items() if k != "grad_clip"
    }


def test_training_history_records_the_gradient_norms_of_every_step():
    built = build(tiny_spec(), cache=None)
    g, steps = built.history["grad"], sum(e["optimizer_steps"] for e in built.history["epochs"])
    assert g["grad_steps"] == steps > 0 and 0 < g["grad_norm_mean"] <= g["grad_norm_max"]
    assert 0 <= g["grad_steps_above_clip"] <= steps
