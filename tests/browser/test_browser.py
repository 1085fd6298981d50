"""The page in a real browser (Playwright + Debian's chromium) against the tiny-model app.

Run, example click, Stop mid-stream, HTML/JS payloads in the prompt and in the answers, a
390-px phone viewport, dark mode, and the "Three stages" tab (on the tiny config with stages:). Screenshots go to artifacts/browser-*.png.
Skipped (with the reason) where Playwright or chromium is not installed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from app_server import app_fixture, artifacts_dir, running_app, scripted_answers
from browser_support import require_chromium

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

sync_api = require_chromium()
expect = sync_api.expect
DONE = re.compile(r"\d+ tokens · .*(token limit|ended by the model|stop rule|stopped)")
TIMEOUT_MS = 30_000
SLOW_MAX_TOKENS = 256

app = app_fixture(
    generation={"max_new_tokens": 128}, cache_outside_temp=True
)  # room for the payload answers; a user-like cache
# Slow enough to press Stop mid-answer: 256 tokens at >= 40 ms each is >= 10 s per model.
slow_app = app_fixture(
    limits={"max_new_tokens": SLOW_MAX_TOKENS},
    generation={"max_new_tokens": SLOW_MAX_TOKENS, "temperature": 1.0},
    seconds_per_token=0.04,
)


@pytest.fixture(scope="module")
def stages_app(tiny_stages_config_file):
    with running_app(tiny_stages_config_file) as server:
        yield server


@pytest.fixture
def open_page(browser):
    """open_page(url, width=1280, height=900) -> a page with the app loaded; every dialog it
    raises (alert/confirm/prompt) is recorded in page.dialogs and dismissed."""
    contexts = []

    def _open(url: str, width: int = 1280, height: int = 900):
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        page.dialogs = []

        def on_dialog(dialog):
            page.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.goto(url)
        page.wait_for_selector("#prompt textarea", timeout=TIMEOUT_MS)
        return page

    yield _open
    for context in contexts:
        context.close()


def run_prompt(page, text: str) -> None:
    page.fill("#prompt textarea", text)
    page.focus("#prompt textarea")
    page.keyboard.press("Control+Enter")


def wait_both_done(page) -> None:
    for role in ("base", "aligned"):
        expect(page.locator(f"#{role}-stats")).to_contain_text(DONE, timeout=TIMEOUT_MS)
        expect(page.locator(f"#{role}-answer")).not_to_be_empty(timeout=TIMEOUT_MS)


def model_inputs(page) -> dict[str, str]:
    """What each model received, from the (closed, lazily rendered) "Exact input" accordions."""
    toggles = page.get_by_text("Exact input this model received")
    for i in range(toggles.count()):
        toggles.nth(i).click()
    values = {}
    for role in ("base", "aligned"):
        box = page.locator(f"#{role}-input textarea")
        box.wait_for(state="visible", timeout=TIMEOUT_MS)
        values[role] = box.input_value()
    return values


def shot(page, name: str) -> Path:
    path = artifacts_dir() / name
    page.screenshot(path=str(path), full_page=True)
    return path


def test_ctrl_enter_runs_both_models(app, open_page):
    page = open_page(app.url)
    run_prompt(page, "Explain the moon landing to a six year old.")
    wait_both_done(page)
    for role in ("base", "aligned"):
        assert page.inner_text(f"#{role}-answer").strip()
        assert re.search(r"\d+ tokens", page.inner_text(f"#{role}-stats"))
        expect(page.locator(f"#{role}-scores")).to_contain_text("Toxicity")
    assert page.inner_text("#message").strip() == ""
    shot(page, "browser-desktop.png")


def test_example_click_fills_prompt_and_runs(app, open_page):
    from demo.ui.views import load_examples

    expected = next(g for g in load_examples() if g.id == "generation").prompts[0]
    page = open_page(app.url, width=390, height=800)  # a phone: the answers are far above
    page.locator("#examples-generation button").first.scroll_into_view_if_needed()
    page.locator("#examples-generation button").first.click()
    expect(page.locator("#prompt textarea")).to_have_value(expected, timeout=TIMEOUT_MS)
    expect(page.locator("#prompt textarea")).to_be_in_viewport(timeout=TIMEOUT_MS)  # scrolled up to it
    wait_both_done(page)
    assert model_inputs(page)["base"] == expected


def test_stop_mid_stream(slow_app, open_page):
    page = open_page(slow_app.url)
    run_prompt(page, "Tell me a long story about a lighthouse.")
    # Streaming: some tokens are on screen, the answer is not finished.
    expect(page.locator("#base-stats")).to_contain_text(re.compile(r"\d+ tokens"), timeout=TIMEOUT_MS)
    expect(page.locator("#aligned-stats")).to_contain_text(re.compile(r"\d+ tokens"), timeout=TIMEOUT_MS)
    assert not DONE.search(page.inner_text("#base-stats"))
    page.click("#stop-btn")
    for role in ("base", "aligned"):
        stats = page.locator(f"#{role}-stats")
        expect(stats).to_contain_text(DONE, timeout=TIMEOUT_MS)
        text = stats.inner_text()
        tokens = int(re.search(r"(\d+) tokens", text).group(1))
        assert "stopped" in text or tokens < SLOW_MAX_TOKENS, text
        assert tokens < SLOW_MAX_TOKENS, f"{role} was not stopped early: {text}"
    shot(page, "browser-stopped.png")
    # The page is usable again after a stop.
    page.fill("#prompt textarea", "Hi")
    page.click("#run-btn")
    expect(page.locator("#base-stats")).not_to_contain_text("stopped", timeout=TIMEOUT_MS)


XSS_PROMPT = "<img src=x onerror=alert(1)> and <script>alert(2)</script>"
XSS_ANSWER = {
    "base": "<img src=x onerror=alert(3)><script>alert(4)</script>",
    "aligned": '<iframe src="javascript:alert(5)"></iframe><a href="javascript:alert(6)">x</a>',
}


def test_html_payloads_are_shown_as_text_never_run(app, open_page):
    page = open_page(app.url)
    with scripted_answers(app.comparator, XSS_ANSWER):
        run_prompt(page, XSS_PROMPT)
        wait_both_done(page)
    for role in ("base", "aligned"):  # the whole payload was "generated", not cut at the limit
        expect(page.locator(f"#{role}-stats")).to_contain_text("ended by the model")
    page.wait_for_timeout(500)  # give any injected handler a chance to fire
    assert page.dialogs == [], f"a payload ran: {page.dialogs}"
    # The prompt and what each model received are plain text, character for character.
    assert page.input_value("#prompt textarea") == XSS_PROMPT
    inputs = model_inputs(page)
    assert inputs["base"] == XSS_PROMPT
    assert f"user\n{XSS_PROMPT}<|im_end|>" in inputs["aligned"]
    # The model answers are displayed as the literal markup text ...
    assert page.inner_text("#base-answer").strip() == XSS_ANSWER["base"]
    assert page.inner_text("#aligned-answer").strip() == XSS_ANSWER["aligned"]
    # ... and nothing from them became an element.
    for selector in ("img[src='x']", "iframe", "a[href^='javascript']"):
        assert page.locator(f"#base-answer {selector}, #aligned-answer {selector}").count() == 0
    assert page.locator("#base-answer script, #aligned-answer script").count() == 0
    shot(page, "browser-xss.png")


def test_phone_width_shows_both_answers_stacked(app, open_page):
    width = 390
    page = open_page(app.url, width=width, height=844)
    run_prompt(page, "Name three primary colours.")
    wait_both_done(page)
    boxes = {}
    for role in ("base", "aligned"):
        locator = page.locator(f"#{role}-answer")
        expect(locator).to_be_visible()
        box = locator.bounding_box()
        assert box and box["width"] > 200, f"{role} answer is squeezed: {box}"
        assert box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, f"{role} answer overflows: {box}"
        boxes[role] = box
    assert boxes["aligned"]["y"] >= boxes["base"]["y"] + boxes["base"]["height"], "not stacked"
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, f"the page scrolls sideways at {width} px ({scroll_width} px wide)"
    for button in ("#run-btn", "#stop-btn", "#regen-btn", "#clear-btn"):
        box = page.locator(button).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, f"{button} overflows: {box}"
    shot(page, "browser-phone-390.png")


CONTRAST_JS = """
(selector) => {
  const el = document.querySelector(selector);
  if (!el) return null;
  const parse = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  let bg = null;
  for (let node = el; node; node = node.parentElement) {
    const [r, g, b, a] = parse(getComputedStyle(node).backgroundColor);
    if (a === undefined || a > 0.5) { bg = [r, g, b]; break; }
  }
  bg = bg || parse(getComputedStyle(document.body).backgroundColor);
  const fg = parse(getComputedStyle(el).color);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const [l1, l2] = [lum(fg.slice(0, 3)), lum(bg)].sort((x, y) => y - x);
  return { fg, bg, ratio: (l1 + 0.05) / (l2 + 0.05), bgLum: lum(bg) };
}
"""


def test_every_tab_is_in_sight_and_reachable_on_a_phone(app, open_page):
    """Gradio hid the tabs that did not fit one line behind a "⋯" menu (2 of 5 showed at 390 px)."""
    page = open_page(app.url, width=390, height=844)
    names = [tab.inner_text().strip() for tab in page.locator(".tab-wrapper").first.get_by_role("tab").all()]
    assert {"Compare", "Evaluate", "Blind vote", "Leaderboard"} <= set(names), names
    for name in ("Blind vote", "Leaderboard", "Evaluate", "Compare"):
        tab = page.get_by_role("tab", name=name, exact=True)
        expect(tab).to_be_visible()
        box = tab.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390.5, (name, box)
        tab.click()
        expect(tab).to_have_attribute("aria-selected", "true")


def test_dark_mode_renders_readably(app, open_page):
    page = open_page(app.url + "?__theme=dark")
    run_prompt(page, "Why is the sky blue?")
    wait_both_done(page)
    is_dark = page.evaluate(
        "document.body.classList.contains('dark') || document.documentElement.classList.contains('dark')"
        " || !!document.querySelector('.dark')"
    )
    assert is_dark, "?__theme=dark did not switch the page to dark mode"
    page_bg = page.evaluate(CONTRAST_JS, "#base-answer .demo-answer")
    assert page_bg["bgLum"] < 0.2, f"answer background is not dark: {page_bg}"
    for selector in (
        "#base-answer .demo-answer",
        "#aligned-answer .demo-answer",
        "#base-stats p",
        "#base-scores .demo-scores",
        "#prompt textarea",
        ".demo-clean, .demo-toxic",
    ):
        found = page.evaluate(CONTRAST_JS, selector)
        assert found is not None, f"{selector} not on the page"
        assert found["ratio"] >= 4.5, f"{selector}: contrast {found['ratio']:.2f} < 4.5 ({found})"
    shot(page, "browser-dark.png")


def test_stages_tab_answers_with_every_model_and_scores_each(stages_app, open_page):
    config = stages_app.config
    page = open_page(stages_app.url)
    page.get_by_role("tab", name="Three stages").click()
    expect(page.locator("#stages-intro")).to_contain_text(config.stages.label, timeout=TIMEOUT_MS)
    for index, model_id in enumerate(config.stages.models):
        spec = config.models[model_id]
        expect(page.locator(f"#stages-side-{index}")).to_contain_text(spec.name)
        expect(page.locator(f"#stages-side-{index}")).to_contain_text(f"Stage: {spec.stage}")
    assert page.locator(f"#stages-side-{len(config.stages.models)}").count() == 0
    page.fill("#stages-prompt textarea", "Name three primary colours.")
    page.click("#stages-run")
    for index in range(len(config.stages.models)):
        answer = page.locator(f"#stages-answer-{index}")
        expect(answer).to_contain_text(DONE, timeout=TIMEOUT_MS)
        expect(answer).to_contain_text("Reward:", timeout=TIMEOUT_MS)
        expect(answer).to_contain_text("Toxicity:")
        expect(answer.locator(".demo-flag")).to_have_count(1)
        assert answer.locator(".demo-answer").inner_text().strip()
    assert page.inner_text("#stages-message").strip() == ""
    # Each stage after the first is ranked under the one before: the tiny SFT stage is another
    # family than the tiny base (no view, and why), the aligned stage the SFT's own family.
    expect(page.locator("#stages-answer-0 .demo-shift")).to_have_count(0)
    expect(page.locator("#stages-answer-1")).to_contain_text("Token shift not shown", timeout=TIMEOUT_MS)
    expect(page.locator("#stages-answer-2")).to_contain_text("Where alignment changed the answer", timeout=TIMEOUT_MS)
    assert page.locator("#base-stats").inner_text().strip() == ""  # the Compare tab did not run
    shot(page, "browser-stages.png")


def test_changing_the_base_format_clears_answers_the_new_format_did_not_write(app, open_page):
    page = open_page(app.url)
    run_prompt(page, "Name three fruits.")
    wait_both_done(page)
    page.locator("#base-format").get_by_text("prompted", exact=True).click()
    for role in ("base", "aligned"):
        expect(page.locator(f"#{role}-answer")).to_be_empty(timeout=TIMEOUT_MS)
        expect(page.locator(f"#{role}-stats")).to_have_text("", timeout=TIMEOUT_MS)
    run_prompt(page, "Name three fruits.")
    wait_both_done(page)
    assert model_inputs(page)["base"] != "Name three fruits."  # the few-shot prefix came first


def test_an_out_of_range_seed_is_named_never_an_error_badge(app, open_page):
    page = open_page(app.url)
    page.get_by_text("Settings", exact=True).click()
    seed = page.get_by_label("Seed (same prompt + seed ⇒ same answers)")
    seed.fill("-5")
    run_prompt(page, "Name three fruits.")
    wait_both_done(page)
    expect(page.locator("#message")).to_contain_text("Seed -5 is outside 0–2147483647", timeout=TIMEOUT_MS)
    assert page.locator(".error").count() == 0 and "Error" not in page.inner_text("#base-answer")
    page.fill("#prompt textarea", "x" * 5000)
    expect(page.locator("#prompt-size")).to_contain_text("anything pasted beyond was cut", timeout=TIMEOUT_MS)


def test_switching_the_format_mid_answer_stops_it_and_nothing_refills_the_cleared_answers(slow_app, open_page):
    page = open_page(slow_app.url)
    run_prompt(page, "Write a long story about a lighthouse.")
    expect(page.locator("#aligned-answer")).not_to_be_empty(timeout=TIMEOUT_MS)  # streaming
    page.locator("#base-format").get_by_text("prompted", exact=True).click()
    page.wait_for_timeout(3000)  # the stopped run's last snapshots would arrive in this time
    for role in ("base", "aligned"):
        assert page.inner_text(f"#{role}-answer").strip() == "", role
