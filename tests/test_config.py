import json

import pytest

from newllm import ModelConfig, SolverConfig


def test_defaults_match_the_seeds():
    c = ModelConfig()
    assert (c.vocab_size, c.embed_dim, c.context_dim, c.hidden_dim) == (50_259, 256, 256, 256)
    assert c.blocks == (1, 1) and c.arch_name == "layerwise"
    assert (c.dropout, c.init_std) == (0.1, 0.02)
    s = SolverConfig()
    assert (s.max_iterations, s.warmup, s.threshold, s.metric, s.context_mode) == (
        200,
        0,
        0.01,
        "mse",
        "reset",
    )


@pytest.mark.parametrize(
    "kw, blocks, name",
    [
        (dict(arch="sequential"), (2,), "sequential"),
        (dict(arch="sequential", num_layers=3), (3,), "sequential"),
        (dict(arch="layerwise", num_layers=3), (1, 1, 1), "layerwise"),
        (dict(structure=(2, 2)), (2, 2), "mixed"),
        (dict(structure=[1, 1]), (1, 1), "layerwise"),
        (dict(structure=(3,), arch="sequential"), (3,), "sequential"),
    ],
)
def test_structure_resolution(kw, blocks, name):
    c = ModelConfig(**kw)
    assert c.blocks == blocks and c.arch_name == name


@pytest.mark.parametrize(
    "kw, needle",
    [
        (dict(structure=(0, 2)), "structure[0]"),
        (dict(structure=(2, -1)), "structure[1]"),
        (dict(structure=()), "structure"),
        (dict(arch="sequential", structure=(1, 1)), "disagrees"),
        (dict(structure=(2, 2), num_layers=3), "disagrees"),
        (dict(arch="transformer"), "arch"),
        (dict(embed_dim=0), "embed_dim"),
        (dict(dropout=1.0), "dropout"),
        (dict(init_std=0.0), "init_std"),
        (dict(vocab_size=2.5), "vocab_size"),
        (dict(num_layers=True), "num_layers"),
    ],
)
def test_model_config_rejects(kw, needle):
    with pytest.raises(ValueError, match=__import__("re").escape(needle)):
        ModelConfig(**kw)


@pytest.mark.parametrize(
    "kw, needle",
    [
        (dict(threshold=0.0), "threshold"),
        (dict(threshold=-1e-3), "threshold"),
        (dict(threshold=float("nan")), "threshold"),
        (dict(max_iterations=0), "max_iterations"),
        (dict(warmup=200), "warmup"),
        (dict(warmup=-1), "warmup"),
        (dict(metric="l1"), "metric"),
        (dict(context_mode="keep"), "context_mode"),
        (dict(damping=0.0), "damping"),
        (dict(train_mode=1), "train_mode"),
    ],
)
def test_solver_config_rejects(kw, needle):
    with pytest.raises(ValueError, match=needle):
        SolverConfig(**kw)


def test_unknown_keys_are_named(tmp_path):
    with pytest.raises(ValueError, match="unknown key.*'hiden_dim'.*valid keys"):
        ModelConfig.from_dict({"hiden_dim": 3})
    p = tmp_path / "s.json"
    p.write_text(json.dumps({"threshold": 0.1, "tolerance": 1}))
    with pytest.raises(ValueError, match="'tolerance'"):
        SolverConfig.from_json(p)


def test_json_round_trip(tmp_path):
    c = ModelConfig(structure=(2, 1), hidden_dim=32, context_clamp=10.0)
    p = tmp_path / "m.json"
    p.write_text(json.dumps(c.to_dict()))
    assert ModelConfig.from_json(p) == c
    s = SolverConfig(metric="rel", threshold=1e-4, context_mode="carry")
    assert SolverConfig.from_dict(s.to_dict()) == s


def test_bad_json_file_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        ModelConfig.from_json(tmp_path / "missing.json")
    p = tmp_path / "bad.json"
    p.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        ModelConfig.from_json(p)
    p.write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        ModelConfig.from_json(p)


def test_configs_are_frozen():
    with pytest.raises(AttributeError):
        ModelConfig().embed_dim = 3  # type: ignore[misc]
