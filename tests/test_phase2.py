"""Phase 2: pairs, split, baselines, scores, the head, training, resume and generation (tiny models)."""

import json
import math

import pytest
import torch
import torch.nn.functional as Fn

import newllm
from newllm.phase1.cache import build_cache
from newllm.phase2 import (
    Phase2Config,
    baseline_scores,
    bigram_predict,
    build_head,
    evaluate,
    generate_ids,
    load_phase2,
    next_token_pairs,
    scores,
    split_samples,
    train_phase2,
    unigram_predict,
    unigram_probs,
)
from newllm.runs.checkpoint import CheckpointError, load_checkpoint
from tests.helpers import tiny_model

V = 64


def random_samples(n=12, seed=0, lo=3, hi=12):
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randint(0, V, (int(torch.randint(lo, hi, (1,), generator=g)),), generator=g).tolist()
        for _ in range(n)
    ]


def flat(samples):
    ids = torch.tensor([t for s in samples for t in s])
    offsets = torch.tensor([0, *torch.tensor([len(s) for s in samples]).cumsum(0).tolist()])
    return ids, offsets


@pytest.fixture(scope="module")
def phase1():
    """A tiny model and its reset-mode cache of 12 random samples."""
    model = tiny_model().eval()
    cache = build_cache(model, random_samples(), newllm.SolverConfig(), checkpoint="tiny")
    return model, cache


# --- pairs and split --------------------------------------------------------------------------------


def test_targets_never_cross_conversations():
    samples = random_samples(20, seed=3, lo=1, hi=9)
    ids, offsets = flat(samples)
    p = next_token_pairs(ids, offsets, range(len(samples)))
    assert len(p) == sum(len(s) - 1 for s in samples)
    s = p.sample
    assert bool((offsets[s] <= p.rows).all()) and bool((p.rows + 1 < offsets[s + 1]).all())
    expect = [(a, b) for smp in samples for a, b in zip(smp[:-1], smp[1:], strict=True)]
    assert list(zip(p.prev.tolist(), p.target.tolist(), strict=True)) == expect


def test_loss_mask_selects_targets():
    samples = [[1, 2, 3, 4], [5, 6, 7]]
    ids, offsets = flat(samples)
    masks = [[1, 0, 1, 1], [0, 1, 0]]  # a mask on the first token never matters: it is never a target
    p = next_token_pairs(ids, offsets, [0, 1], masks)
    assert p.target.tolist() == [3, 4, 6] and p.prev.tolist() == [2, 3, 5]
    with pytest.raises(ValueError, match="loss mask of sample 1 has 2 entries, the sample 3 tokens"):
        next_token_pairs(ids, offsets, [1], [[1, 1, 1, 1], [1, 1]])
    with pytest.raises(ValueError, match="sample index 2 is out of range"):
        next_token_pairs(ids, offsets, [2])


def test_split_keeps_conversations_whole_and_is_seeded():
    keys = [f"conv-{i % 7}" for i in range(30)]  # 7 conversations, several samples each
    train, val = split_samples(keys, 0.3, seed=4)
    assert sorted(train + val) == list(range(30))
    assert {keys[s] for s in train}.isdisjoint({keys[s] for s in val})
    assert split_samples(keys, 0.3, seed=4) == (train, val)
    assert split_samples(keys, 0.3, seed=5) != (train, val)


def test_no_validation_conversation_leaks_into_training(phase1):
    model, cache = phase1
    ids = [f"c{s % 5}" for s in range(cache.num_samples)]  # repeated ids: shared conversations
    r = train_phase2(
        model, cache, Phase2Config(epochs=1, val_fraction=0.4), conversation_ids=ids, progress=False
    )
    tr = {ids[s] for s in r.train_pairs.sample.tolist()}
    va = {ids[s] for s in r.val_pairs.sample.tolist()}
    assert tr and va and tr.isdisjoint(va) and va == set(r.split["val_keys"])
    with pytest.raises(ValueError, match="names 3 conversations but the cache holds 12 samples"):
        train_phase2(model, cache, Phase2Config(epochs=1), conversation_ids=["a", "b", "c"], progress=False)


# --- baselines and scores ---------------------------------------------------------------------------


def toy():
    """Train [0,1,2], [0,1,3]; validation [0,1,3,2]; vocabulary 5."""
    ids, offsets = flat([[0, 1, 2], [0, 1, 3], [0, 1, 3, 2]])
    return next_token_pairs(ids, offsets, [0, 1]), next_token_pairs(ids, offsets, [2])


def test_baselines_on_a_hand_made_corpus():
    train, val = toy()
    # unigram: targets 1,2,1,3 -> N=4, T=3, l=4/7: p1 = 4/7 c/4 + 3/7 /5
    p1 = unigram_probs(train.target, 5)
    torch.testing.assert_close(p1, torch.tensor([3, 13, 8, 8, 3], dtype=torch.float64) / 35)
    logp, pred = unigram_predict(train, val, 5)
    torch.testing.assert_close(logp.exp(), torch.tensor([13 / 35, 8 / 35, 8 / 35], dtype=torch.float64))
    assert pred.tolist() == [1, 1, 1]
    # bigram: p(1|0) = 2/3 + 1/3 p1(1); p(3|1) = 1/2 * 1/2 + 1/2 p1(3); prev 3 unseen -> p1(2)
    logp, pred = bigram_predict(train, val, 5)
    torch.testing.assert_close(logp.exp(), torch.tensor([83 / 105, 51 / 140, 8 / 35], dtype=torch.float64))
    assert pred.tolist() == [1, 2, 1]  # after 1: 2 and 3 tie, the lowest id wins
    b = baseline_scores(train, val, 5)
    assert b["unigram"].acc == pytest.approx(1 / 3) and b["bigram"].acc == pytest.approx(1 / 3)
    assert b["bigram"].ce == pytest.approx(-(math.log(83 / 105) + math.log(51 / 140) + math.log(8 / 35)) / 3)
    assert b["unigram"].ppl == pytest.approx(math.exp(b["unigram"].ce))


def test_bigram_rows_are_distributions():
    samples = random_samples(30, seed=2)
    ids, offsets = flat(samples)
    train = next_token_pairs(ids, offsets, range(25))
    prev = torch.tensor([0, 5, 63]).repeat_interleave(V)  # some seen, maybe unseen
    val = next_token_pairs(ids, offsets, [0])
    val = type(val)(rows=prev, prev=prev, target=torch.arange(V).repeat(3), sample=prev)
    logp, pred = bigram_predict(train, val, V, chunk=2)
    sums = logp.exp().reshape(3, V).sum(1)
    torch.testing.assert_close(sums, torch.ones(3, dtype=torch.float64))
    assert pred.reshape(3, V).T.eq(pred.reshape(3, V)[:, :1].T).all()  # one prediction per prev
    assert pred.reshape(3, V)[:, 0].tolist() == logp.reshape(3, V).argmax(1).tolist()


def test_scores_ppl_is_exp_ce():
    s = scores(torch.tensor([-1.0, -2.0, -3.0]), torch.tensor([True, False, False]))
    assert (
        s.ce == pytest.approx(2.0) and s.ppl == pytest.approx(math.exp(2.0)) and s.acc == pytest.approx(1 / 3)
    )
    with pytest.raises(ValueError, match="non-zero number"):
        scores(torch.zeros(0), torch.zeros(0, dtype=torch.bool))


def test_evaluate_matches_cross_entropy(phase1):
    model, cache = phase1
    head = build_head(model, tie=False, seed=1, std=0.5)
    p = next_token_pairs(cache.token_ids, cache.offsets, range(cache.num_samples))
    s = evaluate(head, cache.contexts, p, batch_size=7)
    with torch.no_grad():
        logits = head(cache.contexts[p.rows])
    assert s.ce == pytest.approx(float(Fn.cross_entropy(logits.double(), p.target)), rel=1e-9)
    assert s.acc == pytest.approx(float((logits.argmax(1) == p.target).double().mean()))
    assert s.ppl == pytest.approx(math.exp(s.ce)) and s.positions == len(p)


# --- head and training ------------------------------------------------------------------------------


def test_tied_head_uses_the_frozen_phase1_embedding(phase1):
    model, cache = phase1
    head = build_head(model, tie=True, seed=0)
    assert set(head.state_dict()) == {"proj.weight", "bias", "mean", "scale"}
    assert sorted(tuple(p.shape) for p in head.parameters()) == [(8, 8), (V,)]
    c = cache.contexts[:5]
    with torch.no_grad():
        head.bias.normal_()
        head.set_standardization(cache.contexts)
        x = (c - cache.contexts.mean(0)) / cache.contexts.std(0)
        want = head.proj(x) @ model.token_embedding.weight.T + head.bias
    torch.testing.assert_close(head(c), want)
    untied = build_head(model, tie=False)
    assert untied(c).shape == (5, V) and set(untied.state_dict()) == {
        "proj.weight",
        "proj.bias",
        "mean",
        "scale",
    }
    torch.testing.assert_close(untied(c), untied.proj(c))  # no standardization set: identity


def test_standardization_comes_from_the_training_contexts_only(phase1):
    model, cache = phase1
    r = train_phase2(model, cache, Phase2Config(epochs=1, val_fraction=0.4), progress=False)
    x = cache.contexts[r.train_pairs.rows].double()
    torch.testing.assert_close(r.head.mean, x.mean(0).float())
    torch.testing.assert_close(r.head.scale, x.std(0).float())
    assert not torch.allclose(r.head.mean, cache.contexts[r.val_pairs.rows].mean(0))
    raw = train_phase2(model, cache, Phase2Config(epochs=1, standardize=False), progress=False)
    assert torch.equal(raw.head.mean, torch.zeros(8)) and torch.equal(raw.head.scale, torch.ones(8))


@pytest.mark.parametrize("tie", [False, True])
def test_training_learns_and_leaves_phase1_alone(tie):
    """Next token = (token + 1) mod 16: reset contexts identify the token, so the head can beat the unigram."""
    model = tiny_model().eval()
    g = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(40):
        start = int(torch.randint(0, 16, (1,), generator=g))
        samples.append([(start + i) % 16 for i in range(8)])
    cache = build_cache(model, samples, newllm.SolverConfig(), checkpoint="tiny")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    r = train_phase2(
        model, cache, Phase2Config(epochs=30, learning_rate=0.05, batch_size=32, tie=tie), progress=False
    )
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert r.epochs[-1].train_loss < r.epochs[0].train_loss
    assert r.final.val["ce"] < r.baselines["unigram"].ce
    assert r.baselines["bigram"].acc == 1.0
    if not tie:  # tied, the logits are limited to the span of the random 8-dim embeddings
        assert r.final.val["acc"] > 0.9


def test_unigram_bias_starts_the_head_at_the_unigram_baseline(phase1):
    model, cache = phase1
    cfg = Phase2Config(epochs=1, learning_rate=1e-12, init_std=1e-9, standardize=False, val_fraction=0.3)
    r = train_phase2(model, cache, cfg, progress=False)
    u = r.baselines["unigram"]
    assert r.final.val["ce"] == pytest.approx(u.ce, abs=1e-5) and r.final.val["acc"] == u.acc
    z = train_phase2(model, cache, Phase2Config(**{**cfg.to_dict(), "unigram_bias": False}), progress=False)
    assert z.final.val["ce"] == pytest.approx(math.log(V), abs=1e-5)  # zero bias: uniform over V


def test_resume_is_bit_exact(phase1, tmp_path):
    model, cache = phase1
    cfg = Phase2Config(epochs=3, batch_size=5, learning_rate=1e-2)
    full = train_phase2(model, cache, cfg, out_dir=tmp_path / "full", progress=False)
    train_phase2(
        model,
        cache,
        Phase2Config(**{**cfg.to_dict(), "epochs": 1}),
        out_dir=tmp_path / "part",
        progress=False,
    )
    part = train_phase2(model, cache, cfg, out_dir=tmp_path / "part", resume=True, progress=False)
    assert [e.epoch for e in part.epochs] == [1, 2, 3]
    for (k, a), b in zip(full.head.state_dict().items(), part.head.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    a = json.loads((tmp_path / "full" / "checkpoint.json").read_text())["state"]["history"]
    b = json.loads((tmp_path / "part" / "checkpoint.json").read_text())["state"]["history"]
    assert [(h["train_loss"], h["val"]) for h in a] == [(h["train_loss"], h["val"]) for h in b]
    _, head, _ = load_phase2(tmp_path / "part")
    assert all(
        torch.equal(x, y)
        for x, y in zip(head.state_dict().values(), full.head.state_dict().values(), strict=True)
    )


def test_resume_refuses_other_settings_or_data(phase1, tmp_path):
    model, cache = phase1
    out = tmp_path / "r"
    train_phase2(model, cache, Phase2Config(epochs=1), out_dir=out, progress=False)
    with pytest.raises(ValueError, match="settings differ"):
        train_phase2(model, cache, Phase2Config(epochs=2, tie=True), out_dir=out, resume=True, progress=False)
    with pytest.raises(ValueError, match="split differ"):
        ids = [f"x{i % 4}" for i in range(12)]  # another split
        train_phase2(
            model,
            cache,
            Phase2Config(epochs=2),
            conversation_ids=ids,
            out_dir=out,
            resume=True,
            progress=False,
        )
    carry = build_cache(model, random_samples(), newllm.SolverConfig(context_mode="carry"), checkpoint="tiny")
    with pytest.raises(ValueError, match="contexts or the split differ"):
        train_phase2(model, carry, Phase2Config(epochs=2), out_dir=out, resume=True, progress=False)
    with pytest.raises(ValueError, match="already holds a checkpoint"):
        train_phase2(model, cache, Phase2Config(epochs=2), out_dir=out, progress=False)


def test_checkpoint_is_verified(phase1, tmp_path):
    model, cache = phase1
    out = tmp_path / "v"
    train_phase2(model, cache, Phase2Config(epochs=1), out_dir=out, progress=False)
    ck = load_checkpoint(out)  # a Phase 2 run directory is a newllm checkpoint of the Phase 1 model
    assert all(
        torch.equal(a, b)
        for a, b in zip(ck.model.state_dict().values(), model.state_dict().values(), strict=True)
    )
    head_file = next(out.glob("head-*.safetensors"))
    head_file.write_bytes(head_file.read_bytes()[:-1] + b"\0")
    with pytest.raises(CheckpointError, match="corrupted or was modified"):
        load_phase2(out)


def test_load_phase2_refuses_a_phase1_checkpoint(tmp_path):
    from newllm.phase1 import Phase1Config, train_phase1

    train_phase1(tiny_model(), [[1, 2, 3]], Phase1Config(epochs=1), out_dir=tmp_path / "p1", progress=False)
    with pytest.raises(CheckpointError, match="is a phase1 run directory, not a Phase 2 one"):
        load_phase2(tmp_path / "p1")


# --- generation -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["reset", "carry"])
def test_greedy_is_the_argmax_of_independently_solved_contexts(phase1, mode):
    model, _ = phase1
    head = build_head(model, tie=False, seed=3, std=1.0)
    solver = newllm.SolverConfig(context_mode=mode)
    prompt = [5, 9, 2]
    new = generate_ids(model, head, prompt, solver, max_new_tokens=6, greedy=True)
    assert len(new) == 6
    seq = prompt + new
    ctx = newllm.solve(model, seq, solver).context  # all positions at once (carry: in order from zeros)
    with torch.no_grad():
        want = head(ctx[len(prompt) - 1 : -1]).argmax(-1).tolist()
    assert new == want


def test_sampling_is_deterministic_under_a_seed(phase1):
    model, _ = phase1
    head = build_head(model, tie=False, seed=3, std=0.05)  # a flat distribution: draws vary
    solver = newllm.SolverConfig(context_mode="carry")

    def draw(seed, temperature=1.0):
        g = torch.Generator().manual_seed(seed)
        return generate_ids(
            model, head, [1, 2], solver, max_new_tokens=12, temperature=temperature, generator=g
        )

    assert draw(0) == draw(0) and draw(0) != draw(1)
    greedy = generate_ids(model, head, [1, 2], solver, max_new_tokens=12, greedy=True)
    assert draw(0, temperature=1e-6) == greedy  # temperature -> 0 is greedy
    stop = greedy[2]
    assert (
        generate_ids(model, head, [1, 2], solver, max_new_tokens=12, greedy=True, stop_ids=[stop])
        == greedy[: greedy.index(stop) + 1]
    )
    with pytest.raises(ValueError, match="temperature must be > 0"):
        generate_ids(model, head, [1], solver, max_new_tokens=1, temperature=0.0)
    with pytest.raises(ValueError, match="max_new_tokens must be a non-negative integer"):
        generate_ids(model, head, [1], solver, max_new_tokens=-1)


def test_config_validation():
    with pytest.raises(ValueError, match="val_fraction must be in"):
        Phase2Config(val_fraction=1.0)
    with pytest.raises(ValueError, match="unknown key"):
        Phase2Config.from_dict({"lr": 1})
    assert Phase2Config().to_dict()["assistant_only"] is False
