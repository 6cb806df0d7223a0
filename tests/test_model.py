import pytest
import torch

from newllm import ModelConfig, build_model
from tests.helpers import tiny_config, tiny_model


@pytest.mark.parametrize("structure", [(1,), (2,), (1, 1), (2, 2), (1, 3, 1)])
def test_shapes(structure):
    m = tiny_model(structure=structure)
    e = m.embed(torch.tensor([[1, 2, 3], [4, 5, 6]]))
    assert e.shape == (2, 3, 8)
    c = m.step(e, torch.zeros(2, 3, 8))
    assert c.shape == (2, 3, 8)
    assert len(m.blocks) == len(structure)
    assert [len(b.layers) for b in m.blocks] == list(structure)


def test_step_broadcasts_a_shared_context():
    m = tiny_model().eval()
    e = m.embed([1, 2, 3])
    c0 = torch.randn(8, generator=torch.Generator().manual_seed(1))
    out = m.step(e, c0)
    assert out.shape == (3, 8)
    torch.testing.assert_close(out[1], m.step(e[1], c0), rtol=0, atol=0)


def test_initialisation_as_specified():
    m = tiny_model(init_std=0.05, vocab_size=2000, hidden_dim=64)
    for blk in m.blocks:
        for lin in [*blk.layers, blk.gates]:
            assert torch.count_nonzero(lin.bias) == 0
        assert torch.all(blk.norm.weight == 1) and torch.all(blk.norm.bias == 0)
    w = m.token_embedding.weight.detach()
    assert abs(float(w.std()) - 0.05) < 0.005 and abs(float(w.mean())) < 0.005


def test_same_seed_same_weights_different_seed_different():
    a, b, c = tiny_model(seed=3), tiny_model(seed=3), tiny_model(seed=4)
    for (n, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q), n
    assert not torch.equal(a.token_embedding.weight, c.token_embedding.weight)


def test_gated_update_by_hand():
    """The step of a 1-block, 1-layer model recomputed from its weights."""
    m = tiny_model(structure=(1,)).eval()
    e = m.embed([5])
    c = torch.randn(1, 8, generator=torch.Generator().manual_seed(0))
    blk = m.blocks[0]
    h = torch.relu(blk.layers[0](torch.cat([e, c], -1)))
    W = blk.gates.weight
    f, i, d = (h @ W[:8].T, h @ W[8:16].T, h @ W[16:].T)
    expect = torch.nn.functional.layer_norm(torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(d), (8,))
    torch.testing.assert_close(m.step(e, c), expect)


def test_dropout_uses_the_generator_and_only_in_train_mode():
    m = tiny_model(dropout=0.5)
    e, c = m.embed([1, 2]), torch.zeros(2, 8)
    m.train()
    a = m.step(e, c, generator=torch.Generator().manual_seed(7))
    b = m.step(e, c, generator=torch.Generator().manual_seed(7))
    d = m.step(e, c, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, d)
    m.eval()
    assert torch.equal(
        m.step(e, c, generator=torch.Generator().manual_seed(7)),
        m.step(e, c, generator=torch.Generator().manual_seed(8)),
    )


def test_clamp_option_bounds_the_context():
    m = tiny_model(context_clamp=0.5).eval()
    out = m.step(m.embed([1, 2, 3]), torch.zeros(3, 8))
    assert float(out.abs().max()) <= 0.5


@pytest.mark.parametrize(
    "ids, needle",
    [
        ([64], "out of range"),
        ([-1], "out of range"),
        ([], "empty"),
        ([1.5], "integers"),
        (torch.tensor([1.0]), "integers"),
        (["3"], "integers"),
    ],
)
def test_bad_token_ids(ids, needle):
    m = tiny_model()
    with pytest.raises(ValueError, match=needle):
        m.embed(ids)


def test_forward_is_one_step_from_zeros():
    m = tiny_model().eval()
    ids = torch.tensor([3, 4])
    torch.testing.assert_close(m(ids), m.step(m.embed(ids), torch.zeros(2, 8)), rtol=0, atol=0)


def test_full_size_parameter_count():
    m = build_model(ModelConfig(arch="layerwise"))
    per_block = (512 * 256 + 256) + (256 * 768 + 768) + 2 * 256
    assert sum(p.numel() for p in m.parameters()) == 50_259 * 256 + 2 * 256 + 2 * per_block
    assert tiny_config().blocks == (1, 1)
