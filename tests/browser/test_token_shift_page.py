"""The token-shift view and shared links through the served app: the `/compare` API's
`token_shift` argument, `compare --token-shift --json`, and in a real browser the view's hover
and a shared link that reproduces the answers (tiny stages config: it has a one-family pair)."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl, urlsplit

import pytest
from app_server import running_app
from browser_support import require_chromium
from conftest import run_demo
from tiny_models import TINY_SAME_FAMILY_PAIR

pytestmark = pytest.mark.timeout(300)

PROMPT = "Name three primary colours."
DONE = re.compile(r"\d+ tokens · ")
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def stages_app(tiny_stages_config_file):
    with running_app(tiny_stages_config_file) as server:
        yield server


def test_the_api_adds_the_view_to_the_aligned_side_only_when_asked(stages_app):
    client = stages_app.client()
    result = client.predict(prompt=PROMPT, pair=TINY_SAME_FAMILY_PAIR, seed=4, token_shift=True, api_name="/compare")
    view = result["aligned"]["token_shift"]
    assert set(view) == {"tokens", "shifted_share", "marginal_share", "before_model", "seconds"} | {
        "self_shifted_share",
        "self_marginal_share",
        "self_model",
    }
    assert view["self_model"] == result["aligned"]["model"]
    assert "".join(token["text"] for token in view["tokens"]) == result["aligned"]["text"]
    assert view["before_model"] == result["base"]["model"]
    for token in view["tokens"]:
        assert set(token) == {"text", "rank", "top"} and token["rank"] >= 1 and len(token["top"]) == 3
    shares = [token["rank"] for token in view["tokens"]]
    assert view["shifted_share"] == pytest.approx(sum(r > 3 for r in shares) / len(shares), abs=1e-4)
    assert "token_shift" not in result["base"]
    plain = client.predict(prompt=PROMPT, pair=TINY_SAME_FAMILY_PAIR, seed=4, api_name="/compare")
    assert "token_shift" not in plain["aligned"] and plain["aligned"]["text"] == result["aligned"]["text"]
    # The default pair is two families: the key says why there is no view.
    cross = client.predict(prompt=PROMPT, token_shift=True, api_name="/compare")
    assert "families" in cross["aligned"]["token_shift"]["unavailable"]


def test_the_cli_prints_the_view_in_its_json(tiny_stages_config_file, tmp_path):
    run = run_demo(
        "compare",
        PROMPT,
        "--token-shift",
        "--json",
        "--pair",
        TINY_SAME_FAMILY_PAIR,
        "--max-new-tokens",
        "8",
        "--config",
        str(tiny_stages_config_file),
        env_extra={"DEMO_CACHE_DIR": str(tmp_path)},
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    view = result["aligned"]["token_shift"]
    assert "".join(token["text"] for token in view["tokens"]) == result["aligned"]["text"]
    assert 0.0 <= view["shifted_share"] + view["marginal_share"] <= 1.0 and view["seconds"] > 0


# --- in a browser --------------------------------------------------------------------------------


@pytest.mark.browser
def test_hovering_a_token_shows_the_before_models_choices_and_a_shared_link_reproduces_the_answers(stages_app, browser):
    require_chromium()
    context = browser.new_context(viewport={"width": 390, "height": 900})
    try:
        page = context.new_page()
        page.goto(stages_app.url)
        page.wait_for_selector("#prompt textarea", timeout=TIMEOUT_MS)
        page.get_by_label("Compare").first.click()
        page.get_by_role("option", name=re.compile("one family")).click()
        page.fill("#prompt textarea", PROMPT)
        page.click("#run-btn")
        tokens = page.locator("#aligned-token-shift .demo-shift-text .ts")
        tokens.first.wait_for(state="attached", timeout=TIMEOUT_MS)
        summary = page.inner_text("#aligned-token-shift")
        assert re.search(
            r"\d+% shifted, \d+% marginal, \d+% unshifted of \d+ tokens under Tiny Llama \(test, SFT\)", summary
        )
        visible = tokens.filter(has_text=re.compile(r"[A-Za-z]")).first
        visible.scroll_into_view_if_needed()
        visible.hover()
        tip = visible.evaluate("element => getComputedStyle(element, '::after').content")
        assert "under Tiny Llama (test, SFT)" in tip and "its top 3" in tip and "%" in tip
        rank = int(visible.get_attribute("data-rank"))
        marked = visible.get_attribute("class")
        assert ("ts-shifted" in marked) == (rank > 3) and ("ts-marginal" in marked) == (rank in (2, 3))
        answers = {role: page.inner_text(f"#{role}-answer") for role in ("base", "aligned")}

        page.get_by_text("Share this comparison").click()
        href = page.locator("#share-anchor").get_attribute("href")
        report = page.locator("#share-report textarea").input_value()
        assert answers["aligned"].strip() in report and "Token shift:" in report
        shared = dict(parse_qsl(urlsplit(href).query))
        assert shared["prompt"] == PROMPT and shared["pair"] == TINY_SAME_FAMILY_PAIR
        assert set(shared) == {
            "prompt",
            "pair",
            "base_format",
            "max_new_tokens",
            "temperature",
            "top_p",
            "repetition_penalty",
            "seed",
        }

        other = context.new_page()
        other.goto(stages_app.url + href)
        for role in ("base", "aligned"):
            other.wait_for_function(
                "([id, text]) => document.querySelector(id)?.innerText.includes(text)",
                arg=[f"#{role}-answer", answers[role].strip()[:40]],
                timeout=TIMEOUT_MS,
            )
        other.wait_for_selector("#aligned-stats", timeout=TIMEOUT_MS)
        other.wait_for_function(
            "() => /\\d+ tokens · /.test(document.querySelector('#aligned-stats').innerText)", timeout=TIMEOUT_MS
        )
        assert {role: other.inner_text(f"#{role}-answer") for role in ("base", "aligned")} == answers
        assert other.locator("#prompt textarea").input_value() == PROMPT
    finally:
        context.close()
