"""The check that `load_tokenizer` gives what `AutoTokenizer` gives (ids, text, chat prompts,
special tokens, vocabulary), shared by the tokenizer tests and the end-to-end tests."""

from __future__ import annotations

from transformers import AutoTokenizer

from demo.generation.formatting import WORD_JOINER, special_token_strings
from demo.generation.loading import load_tokenizer

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
