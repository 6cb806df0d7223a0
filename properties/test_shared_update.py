"""Family 2: one update. The forward pass, the solver's iterations and Phase 1's training forward
produce bitwise-identical contexts on one device, for any structure (Sequential, Layer-wise, mixed),
dims, seed and token ids: in eval mode, and in train mode when dropout masks come from generators in
the same state. The forward pass itself is the documented formula (docs/model.md "The update").

Each reference replays the same batches as the path under test (the same rows together, in the
same order), so the kernels see the same shapes and bitwise equality is a fair demand.
"""

from __future__ import annotations

import torch
import torch.nn.functional as Fn
from hypothesis import given
from hypothesis import strategies as st

from newllm import SolverConfig, build_model, solve
from properties import strategies as S
from properties.spies import spied_phase1


def _forward(model, ids, context, generator):
    """The forward pass: ``model(ids, c)`` in eval mode; in train mode the same with explicit masks."""
    if not model.training:
        return model(ids, context)
    return model.step(model.embed(ids), context, generator=generator)


@given(
    case=S.model_cases(max_tokens=10),
    cfg=S.solver_configs(max_iterations=12),
    dropout=st.booleans(),
    seed=S.seeds,
)
def test_solver_iterates_are_forward_pass_iterates(case, cfg, dropout, seed):
    model = case.build()
    cfg = SolverConfig(**{**cfg.to_dict(), "train_mode": dropout})
    res = solve(model, case.ids, cfg, generator=S.generator(seed))
    assert not model.training  # the solver restores the mode

    model.train(dropout)
    g = S.generator(seed)
    n = case.ids.numel()
    c = model.initial_context((n,))
    last_finite = c.clone()
    with torch.no_grad():
        for k in range(1, cfg.max_iterations + 1):
            rows = (res.evaluations >= k).nonzero().flatten()
            if rows.numel() == 0:
                break
            rows = rows if rows.numel() < n else slice(None)
            c[rows] = _forward(model, case.ids[rows], c[rows], g)
            ok = torch.isfinite(c).all(-1)
            last_finite[ok] = c[ok]
    expect = last_finite  # a non-finite image leaves the last finite iterate as the context
    gap = (res.context - expect).abs().max()
    assert torch.equal(res.context, expect), (
        f"the solver's contexts differ from the forward pass's by {gap:.3e}"
    )


@given(
    case=S.model_cases(max_tokens=6, max_dim=10, dropout=st.sampled_from([0.0, 0.1, 0.5])),
    loop=st.sampled_from(["spec", "batched"]),
    batch_samples=st.integers(1, 3),
    split=st.integers(1, 5),
    threshold=S.log_uniform(1e-4, 1e-1),
    warmup=st.integers(0, 2),
)
def test_phase1_training_forward_is_the_forward_pass(case, loop, batch_samples, split, threshold, warmup):
    """Phase 1 is watched at its loss, ``metrics.mse(new, c)``: every ``new`` must equal the forward pass
    replayed on the same rows with the weights of that moment and a dropout generator seeded like
    Phase 1's (``Phase1Config.seed``; jacobian_weight 0, so the masks are its only draws)."""
    ids = case.ids.tolist()
    samples = [ids[i : i + split] for i in range(0, len(ids), split)]
    settings = dict(epochs=1, loop=loop, batch_samples=batch_samples, threshold=threshold, warmup=warmup)
    spy, run, cfg = spied_phase1(case, samples, watch=True, learning_rate=1e-2, **settings)
    losses = [c for c in spy.calls if c.name == "mse"]

    # the schedule: groups of rows and, per group, how many iterations each row ran
    iters = [r.iterations for r in run.records]
    if loop == "spec":
        groups = [[i] for i in range(len(ids))]
    else:
        offsets = [0]
        for s in samples:
            offsets.append(offsets[-1] + len(s))
        groups = [
            list(range(offsets[b], offsets[min(b + batch_samples, len(samples))]))
            for b in range(0, len(samples), batch_samples)
        ]
    ref = build_model(case.config, seed=case.seed).train()
    g = S.generator(cfg.seed)
    tok = torch.tensor(ids)
    i = 0
    for rows in groups:
        c = ref.initial_context((len(rows),))
        for k in range(1, max(iters[r] for r in rows) + 1):
            active = [j for j, r in enumerate(rows) if iters[r] >= k]
            assert i < len(losses), "Phase 1 ran fewer loss evaluations than its records say"
            call = losses[i]
            ref.load_state_dict(call.params)
            with torch.no_grad():
                new = _forward(ref, tok[[rows[j] for j in active]], c[active], g)
            assert torch.equal(call.old, c[active]), f"iteration {k} of rows {rows}: input context differs"
            assert torch.equal(call.new, new), (
                f"iteration {k} of rows {rows}: Phase 1's forward differs from the forward pass by "
                f"{(call.new - new).abs().max():.3e}"
            )
            c[active] = new
            i += 1
    assert i == len(losses), f"{len(losses) - i} loss evaluations left unexplained"


def _documented_step(model, e, c):
    """docs/model.md: per block ``h = FNN([e ; c])`` (Linear+ReLU), ``c' = LayerNorm(sigmoid(W_f h) * c +
    sigmoid(W_i h) * tanh(W_d h))``, then the optional clamp; written here from scratch (eval mode)."""
    cdim = model.config.context_dim
    for block in model.blocks:
        h = torch.cat([e, c], dim=-1)
        for layer in block.layers:
            h = torch.relu(h @ layer.weight.T + layer.bias)
        w, b = block.gates.weight, block.gates.bias
        f = torch.sigmoid(h @ w[:cdim].T + b[:cdim])
        i = torch.sigmoid(h @ w[cdim : 2 * cdim].T + b[cdim : 2 * cdim])
        d = torch.tanh(h @ w[2 * cdim :].T + b[2 * cdim :])
        c = Fn.layer_norm(f * c + i * d, (cdim,), block.norm.weight, block.norm.bias, block.norm.eps)
        if model.config.context_clamp is not None:
            c = c.clamp(-model.config.context_clamp, model.config.context_clamp)
    return c


@given(case=S.model_cases(max_tokens=8), seed=S.seeds, scale=S.log_uniform(1e-3, 1e2))
def test_the_forward_pass_is_the_documented_update(case, seed, scale):
    """float64, from an arbitrary context: equal within 1e-12 (the reference fuses nothing)."""
    model = case.build(dtype=torch.float64)
    n = case.ids.numel()
    c = torch.randn(n, model.config.context_dim, generator=S.generator(seed), dtype=torch.float64) * scale
    with torch.no_grad():
        got = model(case.ids, c)
        e = model.token_embedding.weight[case.ids]
        e = Fn.layer_norm(
            e, (e.shape[-1],), model.embed_norm.weight, model.embed_norm.bias, model.embed_norm.eps
        )
        want = _documented_step(model, e, c)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
