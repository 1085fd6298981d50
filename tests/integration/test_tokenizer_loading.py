"""`load_tokenizer` reads tokenizer.json without importing torch, and gives the ids, text and
chat prompts `AutoTokenizer` gives: on the tiny checkpoints here, and on the embedded models in
tests/e2e/test_e2e.py."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import run_python
from tokenizer_checks import assert_same_tokenizer

from demo.generation.loading import _plain_tokenizer_settings


@pytest.mark.parametrize("fixture", ["tiny_llama_dir", "tiny_gemma_dir"])
def test_tokenizer_matches_auto_tokenizer(fixture, request):
    assert_same_tokenizer(request.getfixturevalue(fixture))


@pytest.mark.parametrize("fixture", ["tiny_llama_dir", "tiny_gemma_dir"])
def test_a_plain_folder_takes_the_one_parse_path_and_a_folder_with_token_tables_does_not(fixture, request, tmp_path):
    folder = request.getfixturevalue(fixture)
    assert _plain_tokenizer_settings(folder) is not None  # so the comparison above covers that path
    copy = tmp_path / "with-added-tokens"
    shutil.copytree(folder, copy)
    config = json.loads((copy / "tokenizer_config.json").read_text())
    config["added_tokens_decoder"] = {"0": {"content": "<pad>", "special": True}}
    (copy / "tokenizer_config.json").write_text(json.dumps(config))
    assert _plain_tokenizer_settings(copy) is None
    (copy / "tokenizer_config.json").write_text("{not json")
    assert _plain_tokenizer_settings(copy) is None


def test_loading_a_tokenizer_does_not_import_torch(tiny_llama_dir):
    report = run_python(
        "import json, sys\n"
        "from demo.generation.loading import load_tokenizer\n"
        f"tokenizer = load_tokenizer({str(tiny_llama_dir)!r})\n"
        "prompt = tokenizer.apply_chat_template([{'role': 'user', 'content': 'hi'}], tokenize=False)\n"
        "print(json.dumps({'prompt': prompt, 'torch': 'torch' in sys.modules}))\n",
        timeout=120,
    )
    assert "hi" in report["prompt"] and report["torch"] is False
