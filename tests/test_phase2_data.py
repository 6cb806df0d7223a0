"""Phase 2 end to end on a few real conversations: train --data, phase2 --assistant-only, generate."""

import json

import pytest

from tests.data_support import require_data_packages

require_data_packages()

from newllm.cli.main import main  # noqa: E402
from newllm.data import IM_END_ID, load_samples  # noqa: E402


@pytest.fixture
def cli(capsys, monkeypatch, data_cache):
    monkeypatch.setenv("NEWLLM_CACHE", str(data_cache))

    def run(*argv):
        code = main([str(a) for a in argv])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_phase2_on_real_conversations_end_to_end(cli, small_corpus, tmp_path, data_cache):
    run_dir = tmp_path / "p1"
    code, _, err = cli(
        "train",
        "--data",
        small_corpus,
        "--samples",
        6,
        "--max-length",
        48,
        "--dim",
        8,
        "--loop",
        "batched",
        "--epochs",
        1,
        "--out",
        run_dir,
        "--quiet",
        "--json",
    )
    assert code == 0, err
    code, out, err = cli(
        "phase2",
        "--checkpoint",
        run_dir,
        "--epochs",
        2,
        "--val-fraction",
        0.34,
        "--assistant-only",
        "--out",
        tmp_path / "p2",
        "--quiet",
        "--json",
    )
    assert code == 0, err
    done = json.loads(out.splitlines()[-1])
    s = load_samples(str(small_corpus), "train_sft", 6, 48, cache=data_cache)
    data = json.loads((run_dir / "data.json").read_text())
    val = set(json.loads((tmp_path / "p2" / "checkpoint.json").read_text())["state"]["split"]["val_keys"])
    assert val and val < set(data["conversation_ids"]) and done["val_conversations"] == len(val) == 2
    masked = {i: sum(m[1:]) for i, m in zip(s.ids, s.loss_masks, strict=True)}  # assistant targets only
    assert done["val_positions"] == sum(n for i, n in masked.items() if i in val)
    assert done["train_positions"] == sum(n for i, n in masked.items() if i not in val)
    assert done["model"]["positions"] == done["baselines"]["bigram"]["positions"] == done["val_positions"]

    gen = ["generate", "--checkpoint", tmp_path / "p2", "--prompt", "Hi, how are you?", "--chat", "--json"]
    code, out, err = cli(*gen, "--greedy", "--max-new-tokens", 5)
    assert code == 0, err
    a = json.loads(out)
    ids = a["prompt_ids"]  # <|im_start|>user\n ... <|im_end|>\n<|im_start|>assistant\n
    assert ids[:3] == [50257, 7220, 198] and ids[-6:] == [50258, 198, 50257, 562, 10167, 198]
    assert 1 <= len(a["new_ids"]) <= 5 and (len(a["new_ids"]) == 5 or a["new_ids"][-1] == IM_END_ID)
    assert cli(*gen, "--greedy", "--max-new-tokens", 5)[1] == out
    code, s1, _ = cli(*gen, "--seed", 3, "--max-new-tokens", 8)
    assert code == 0 and cli(*gen, "--seed", 3, "--max-new-tokens", 8)[1] == s1
    code, _, err = cli(*gen, "--temperature", 0)
    assert code == 2 and "argument --temperature: expected a finite number in (0, 1000], got 0" in err
