"""``newllm data info|show``."""

import json

import pytest

from tests.data_support import require_data_packages

require_data_packages()

from newllm.cli.main import main  # noqa: E402


@pytest.fixture
def cli(capsys, monkeypatch, data_cache):
    monkeypatch.setenv("NEWLLM_CACHE", str(data_cache))

    def run(*argv):
        code = main(list(argv))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_info_json(cli, small_corpus):
    code, out, _ = cli(
        "data", "info", "--source", str(small_corpus), "--split", "test_sft", "--max-length", "100", "--json"
    )
    assert code == 0
    o = json.loads(out)
    assert o["kind"] == "json" and o["split"] == "test_sft" and o["max_length"] == 100
    assert o["conversations"] == o["conversations_available"] > 0
    assert o["tokens"] <= 100 * o["conversations"] and o["tokens_per_conversation"]["max"] <= 100
    assert 0 < o["loss_tokens"] < o["tokens"] and o["tokens_before_truncation"] >= o["tokens"]


def test_info_table_and_show(cli, small_corpus):
    code, out, _ = cli(
        "data", "info", "--source", str(small_corpus), "--samples", "3", "--max-length", "none"
    )
    assert code == 0 and "conversations 3 of" in out and "max length None" in out
    code, out, _ = cli("data", "show", "--source", str(small_corpus), "--samples", "2", "--mask")
    assert code == 0 and out.count("=== ") == 2 and "<|im_start|>assistant\n«" in out and "<|im_end|>»" in out
    code, out, _ = cli(
        "data", "show", "--source", str(small_corpus), "--samples", "1", "--max-length", "20", "--json"
    )
    row = json.loads(out)["conversations"][0]
    assert len(row["input_ids"]) == len(row["loss_mask"]) == row["tokens"] == 20 and row["text"].startswith(
        "<|im_start|>user\n"
    )


@pytest.mark.parametrize(
    "argv, match",
    [
        (["data"], "required: ACTION"),
        (["data", "info", "--samples", "0"], "expected an integer in [1, 10000000] or 'none', got '0'"),
        (["data", "info", "--source", "HuggingFaceH4/ultrachat_200k"], "offline mode is on"),
        (["data", "show", "--source", "nope"], "unknown source 'nope'"),
    ],
)
def test_errors_exit_2_with_one_line(cli, monkeypatch, argv, match):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, out, err = cli(*argv)
    assert code == 2 and out == "" and match in err and err.count("\n") == 1
