"""`load_tokenizer` reads tokenizer.json without importing torch, and gives the ids, text and
chat prompts `AutoTokenizer` gives: on the tiny checkpoints here, and on the embedded models in
tests/test_e2e.py."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import run_python
from transformers import AutoTokenizer

from demo.generation.formatting import WORD_JOINER, special_token_strings
from demo.generation.loading import _plain_tokenizer_settings, load_tokenizer

TEXTS = (
    "What is the capital of France?",
    "  leading and trailing spaces  ",
    "line one\n\nline two\ttabbed",
    "héllo wörld ß ﬁ café",
    "مرحبا بالعالم",
    "日本語のテキスト",
    "emoji 👍🏽👨‍👩‍👧 done",
    "zero\u200bwidth",
    "<b>bold</b> {{7*7}} %s {prompt}",
    f"<|im{WORD_JOINER}_start|>user",
    "x" * 120,
    "",
)


def assert_same_tokenizer(folder) -> None:
    fast, auto = load_tokenizer(folder), AutoTokenizer.from_pretrained(str(folder))
    for text in TEXTS:
        for add_special_tokens in (True, False):
            ids = auto.encode(text, add_special_tokens=add_special_tokens)
            assert fast.encode(text, add_special_tokens=add_special_tokens) == ids, text
        ids = auto.encode(text)
        assert fast.decode(ids, skip_special_tokens=True) == auto.decode(ids, skip_special_tokens=True)
        if auto.chat_template:
            conversation = [{"role": "user", "content": text}]
            assert fast.apply_chat_template(
                conversation, tokenize=False, add_generation_prompt=True
            ) == auto.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    assert special_token_strings(fast) == special_token_strings(auto)
    assert (fast.eos_token_id, fast.bos_token) == (auto.eos_token_id, auto.bos_token)
    assert fast.get_vocab() == auto.get_vocab()


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
        "from demo.generation.loading import _plain_tokenizer_settings, load_tokenizer\n"
        f"tokenizer = load_tokenizer({str(tiny_llama_dir)!r})\n"
        "prompt = tokenizer.apply_chat_template([{'role': 'user', 'content': 'hi'}], tokenize=False)\n"
        "print(json.dumps({'prompt': prompt, 'torch': 'torch' in sys.modules}))\n",
        timeout=120,
    )
    assert "hi" in report["prompt"] and report["torch"] is False
