"""``newllm.testing`` on family 3's trained models (properties/contraction_models.py, trained once per
run and code version): the Jacobian-regularised model passes ``contraction`` and ``uniqueness`` when
it claims contraction, with the same σ_max as family 3's independent jacrev ground truth; ``newllm
verify --checkpoint`` on it passes and prints the documented JSON (docs/verify.md)."""

from __future__ import annotations

import json

import pytest
import torch

from newllm.cli.main import main
from newllm.runs.checkpoint import save_checkpoint
from newllm.testing import check_model
from properties import contraction_models as CM

CLAIMED = ["contraction", "uniqueness", "collapse"]


@pytest.fixture(scope="module")
def contractive(model_cache):
    return CM.load("contractive", model_cache)


def test_the_jacobian_regularised_model_passes_contraction_when_it_claims_it(contractive):
    t = contractive
    report = check_model(t.model, token_ids=t.ids, checks=CLAIMED, contractive=True)
    assert report.passed, "\n".join(report.table())
    assert [r.status for r in report.results] == ["passed"] * 3
    sig = torch.tensor(report["contraction"].numbers["sigma_max"], dtype=torch.float64)
    torch.testing.assert_close(sig, t.sigma, rtol=1e-6, atol=1e-9)  # the check's exact σ_max = family 3's
    assert report["contraction"].numbers["kind"] == "exact" and float(sig.max()) < 1
    unclaimed = check_model(t.model, token_ids=t.ids, checks=["contraction"])
    assert unclaimed["contraction"].status == "skipped"  # reported, not judged


def test_verify_on_the_trained_checkpoint(contractive, tmp_path, capsys):
    save_checkpoint(tmp_path, contractive.model, epoch=1)
    ids = ",".join(map(str, contractive.ids.tolist()))
    rc = main(["verify", "--checkpoint", str(tmp_path), "--token-ids", ids, "--contractive", "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    o = json.loads(out)
    assert set(o) >= {
        "source",
        "passed",
        "failed",
        "counts",
        "model",
        "token_ids",
        "solver",
        "seed",
        "contractive",
        "checks",
        "seconds",
    }
    assert o["source"] == {"source": "checkpoint", "checkpoint": str(tmp_path)} and o["contractive"] is True
    assert (
        o["passed"] is True and o["counts"]["failed"] == 0 and o["model"]["class"] == "newllm.model.CVFPModel"
    )
    status = {c["name"]: c["status"] for c in o["checks"]}
    assert status["contraction"] == status["uniqueness"] == "passed"
    assert status["device_parity"] == ("passed" if torch.cuda.is_available() else "skipped")
