import json
import math
import shutil

import pytest
import torch

import newllm
from newllm import metrics
from newllm.phase1 import Phase1Config, Phase1Divergence, train_phase1
from newllm.phase1.cache import load_cache
from newllm.runs.checkpoint import CheckpointError, load_checkpoint, load_model
from tests.helpers import tiny_model

SAMPLES = [[1, 2, 3, 4], [5, 6, 7]]


class CountingAdam(torch.optim.Adam):
    steps = 0

    def step(self, closure=None):
        type(self).steps += 1
        return super().step(closure)


@pytest.fixture
def counting(monkeypatch):
    CountingAdam.steps = 0
    monkeypatch.setattr(
        "newllm.phase1.trainer.make_optimizer",
        lambda model, cfg: CountingAdam(model.parameters(), lr=cfg.learning_rate),
    )
    return CountingAdam


def test_config_validation():
    with pytest.raises(ValueError, match="loop"):
        Phase1Config(loop="fast")
    with pytest.raises(ValueError, match="warmup"):
        Phase1Config(max_iterations=5, warmup=5)
    with pytest.raises(ValueError, match="threshold"):
        Phase1Config(threshold=0)
    with pytest.raises(ValueError, match="unknown key"):
        Phase1Config.from_dict({"lr": 1e-3})
    assert Phase1Config().to_dict()["learning_rate"] == 1e-4


@pytest.mark.parametrize("loop", ["spec", "batched"])
def test_one_optimizer_step_per_inner_iteration(counting, loop):
    m = tiny_model()
    run = train_phase1(
        m, SAMPLES, Phase1Config(epochs=2, loop=loop, max_iterations=6, threshold=1e-6), progress=False
    )
    assert counting.steps == sum(e.optimizer_steps for e in run.epochs)
    if loop == "spec":
        # one step per token per inner iteration: the sum of the per-token iteration counts
        assert counting.steps == sum(r.iterations for r in run.records)
    else:
        # one step per iteration of each sample-batch: the max iteration count in each batch
        per_batch = {}
        for r in run.records:
            per_batch[(r.epoch, r.sample)] = max(per_batch.get((r.epoch, r.sample), 0), r.iterations)
        assert counting.steps == sum(per_batch.values())


@pytest.mark.parametrize("loop", ["spec", "batched"])
def test_weights_really_change(loop):
    m = tiny_model()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    train_phase1(m, SAMPLES, Phase1Config(epochs=1, loop=loop, learning_rate=1e-2), progress=False)
    changed = [k for k, v in m.state_dict().items() if not torch.equal(v, before[k])]
    assert "blocks.0.gates.weight" in changed and "token_embedding.weight" in changed


@pytest.mark.parametrize("loop", ["spec", "batched"])
def test_training_loss_is_the_registry_mse(monkeypatch, loop):
    calls = []
    real = metrics.mse

    def spy(new, old):
        out = real(new, old)
        calls.append((new.detach().clone(), old.detach().clone(), out.detach().clone()))
        return out

    monkeypatch.setattr(metrics, "mse", spy)
    monkeypatch.setitem(metrics.METRICS, "mse", spy)
    run = train_phase1(
        tiny_model(),
        [[1, 2, 3]],
        Phase1Config(epochs=1, loop=loop, max_iterations=4, threshold=1e-9),
        progress=False,
    )
    assert calls, "Phase 1 did not call newllm.metrics.mse"
    new, old, out = calls[-1]
    torch.testing.assert_close(out, ((new - old) ** 2).mean(-1), rtol=0, atol=0)
    assert run.records[-1].final_loss == pytest.approx(float(out[-1]), rel=1e-6)


def test_convergence_rule_and_records():
    run = train_phase1(
        tiny_model(),
        SAMPLES,
        Phase1Config(epochs=1, loop="spec", threshold=0.5, max_iterations=10),
        progress=False,
    )
    recs = run.records
    assert [(r.sample, r.position, r.token) for r in recs] == [
        (0, 0, 1),
        (0, 1, 2),
        (0, 2, 3),
        (0, 3, 4),
        (1, 0, 5),
        (1, 1, 6),
        (1, 2, 7),
    ]
    for r in recs:
        assert r.converged == (r.final_loss < 0.5)
        assert r.converged or r.iterations == 10
    e = run.final
    assert e.rate == pytest.approx(sum(r.converged for r in recs) / 7)
    assert e.success == (e.rate >= 0.95)


def test_warmup_is_respected():
    run = train_phase1(
        tiny_model(),
        [[1, 2]],
        Phase1Config(epochs=1, threshold=10.0, warmup=3, max_iterations=8),
        progress=False,
    )
    assert all(r.iterations == 4 for r in run.records)


def test_batched_and_spec_agree_on_a_single_token():
    a, b = tiny_model(), tiny_model()
    cfg = dict(epochs=2, max_iterations=5, threshold=1e-3, learning_rate=1e-3)
    ra = train_phase1(a, [[3]], Phase1Config(loop="spec", **cfg), progress=False)
    rb = train_phase1(b, [[3]], Phase1Config(loop="batched", **cfg), progress=False)
    assert [r.iterations for r in ra.records] == [r.iterations for r in rb.records]
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(v, w), k


def test_nonfinite_loss_names_where_and_keeps_the_last_good_checkpoint(tmp_path):
    m = tiny_model()
    out = tmp_path / "run"

    def poison_after_epoch_1(stats):  # runs after epoch 1's checkpoint is written
        if stats.epoch == 1:
            with torch.no_grad():
                m.blocks[0].gates.weight.fill_(math.nan)

    with pytest.raises(Phase1Divergence, match=r"epoch 2, sample 0, position 0, token 1, iteration 1"):
        train_phase1(
            m, SAMPLES, Phase1Config(epochs=3), out_dir=out, progress=False, on_epoch=poison_after_epoch_1
        )
    c = load_checkpoint(out)
    assert c.epoch == 1
    assert all(bool(torch.isfinite(p).all()) for p in c.model.parameters())


def test_resume_is_bit_exact(tmp_path):
    cfg = Phase1Config(epochs=3, loop="spec", max_iterations=5, threshold=1e-3, learning_rate=1e-3)
    full = tiny_model(dropout=0.2)
    train_phase1(full, SAMPLES, cfg, out_dir=tmp_path / "full", progress=False)

    part = tiny_model(dropout=0.2)
    train_phase1(
        part,
        SAMPLES,
        Phase1Config(**{**cfg.to_dict(), "epochs": 1}),
        out_dir=tmp_path / "part",
        progress=False,
    )
    fresh = tiny_model(seed=123, dropout=0.2)  # different init: everything must come from the checkpoint
    run = train_phase1(fresh, SAMPLES, cfg, out_dir=tmp_path / "part", resume=True, progress=False)
    assert [e.epoch for e in run.epochs] == [1, 2, 3]
    for (k, v), w in zip(full.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(v, w), k
    a = json.loads((tmp_path / "full" / "checkpoint.json").read_text())["state"]["history"]
    b = json.loads((tmp_path / "part" / "checkpoint.json").read_text())["state"]["history"]
    assert [(h["rate"], h["mean_loss"]) for h in a] == [(h["rate"], h["mean_loss"]) for h in b]


def test_resume_refuses_other_settings_or_data(tmp_path):
    out = tmp_path / "r"
    train_phase1(tiny_model(), SAMPLES, Phase1Config(epochs=1), out_dir=out, progress=False)
    with pytest.raises(ValueError, match="settings differ"):
        train_phase1(
            tiny_model(),
            SAMPLES,
            Phase1Config(epochs=2, learning_rate=1e-3),
            out_dir=out,
            resume=True,
            progress=False,
        )
    with pytest.raises(ValueError, match="samples differ"):
        train_phase1(tiny_model(), [[9]], Phase1Config(epochs=2), out_dir=out, resume=True, progress=False)
    with pytest.raises(ValueError, match="already holds a checkpoint"):
        train_phase1(tiny_model(), SAMPLES, Phase1Config(epochs=2), out_dir=out, progress=False)


def test_cache_is_tagged_and_matches_the_solver(tmp_path):
    m = tiny_model()
    out = tmp_path / "c"
    run = train_phase1(m, SAMPLES, Phase1Config(epochs=1), out_dir=out, progress=False)
    cache = load_cache(out / "cache.safetensors", expect_checkpoint=run.checkpoint_tag)
    assert cache.num_samples == 2 and cache.contexts.shape == (7, 8)
    ids, ctx = cache.sample(1)
    assert ids.tolist() == [5, 6, 7]
    direct = newllm.solve(load_model(out), [5, 6, 7], newllm.SolverConfig(threshold=0.01, max_iterations=200))
    torch.testing.assert_close(ctx, direct.context, rtol=1e-5, atol=1e-6)  # batch of 7 vs 3: float-close
    with pytest.raises(ValueError, match="was made from checkpoint"):
        load_cache(out / "cache.safetensors", expect_checkpoint="other")


def _bad_copy(src, tmp_path, name):
    dst = tmp_path / name
    shutil.copytree(src, dst)
    return dst


@pytest.fixture
def saved(tmp_path):
    out = tmp_path / "ok"
    train_phase1(tiny_model(), SAMPLES, Phase1Config(epochs=1), out_dir=out, progress=False)
    return out


def test_bad_checkpoints_give_clear_errors(saved, tmp_path):
    assert load_checkpoint(saved).epoch == 1
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="no checkpoint.json"):
        load_model(tmp_path)

    d = _bad_copy(saved, tmp_path, "truncated")
    f = next(d.glob("model-*.safetensors"))
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupted or was modified"):
        load_model(d)

    d = _bad_copy(saved, tmp_path, "manifest")
    (d / "checkpoint.json").write_text("{trunc")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(d)

    d = _bad_copy(saved, tmp_path, "shapes")
    m = json.loads((d / "checkpoint.json").read_text())
    m["model_config"]["hidden_dim"] = 32
    (d / "checkpoint.json").write_text(json.dumps(m))
    with pytest.raises(CheckpointError, match="shape"):
        load_model(d)

    d = _bad_copy(saved, tmp_path, "keys")
    m = json.loads((d / "checkpoint.json").read_text())
    m["model_config"]["structure"] = [1, 1, 1]
    (d / "checkpoint.json").write_text(json.dumps(m))
    with pytest.raises(CheckpointError, match="missing"):
        load_model(d)

    d = _bad_copy(saved, tmp_path, "unknownkey")
    m = json.loads((d / "checkpoint.json").read_text())
    m["model_config"]["colour"] = "blue"
    (d / "checkpoint.json").write_text(json.dumps(m))
    with pytest.raises(CheckpointError, match="unknown key"):
        load_model(d)

    d = _bad_copy(saved, tmp_path, "pickle")
    m = json.loads((d / "checkpoint.json").read_text())
    m["files"]["model"]["name"] = "model.pt"
    (d / "checkpoint.json").write_text(json.dumps(m))
    with pytest.raises(CheckpointError, match="only .safetensors"):
        load_model(d)


def test_cli_train_then_solve_with_checkpoint(tmp_path, capsys):
    from newllm.cli.main import main

    out = tmp_path / "cli"
    code = main(
        [
            "train",
            "--arch",
            "sequential",
            "--dim",
            "8",
            "--vocab-size",
            "2000",
            "--tokens",
            "3",
            "--epochs",
            "2",
            "--loop",
            "batched",
            "--out",
            str(out),
            "--json",
            "--quiet",
        ]
    )
    assert code == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["event"] for x in lines] == ["epoch", "epoch", "done"]
    for key in ["epoch", "rate", "mean_iterations", "mean_loss", "optimizer_steps", "seconds"]:
        assert key in lines[0]
    assert lines[-1]["checkpoint"] == str(out)
    assert main(["solve", "--checkpoint", str(out), "--tokens", "3", "--json"]) == 0
    o = json.loads(capsys.readouterr().out)
    assert o["checkpoint"] == str(out) and o["structure"] == [2]
    assert (
        main(["train", "--tokens", "3", "--dim", "8", "--vocab-size", "2000", "--out", str(out), "--quiet"])
        == 2
    )
    assert "already holds a checkpoint" in capsys.readouterr().err
