"""The Evaluate tab in a real browser (Playwright + Debian's chromium), against the tiny-model app:
it opens on the shipped default run's report; a visitor picks a shipped suite, sees what the
server's cap lets the run make, clicks "Run evaluation", and gets the run's own tables and a zip
of its results. Skipped (with the reason) where Playwright or chromium is not installed.
"""

from __future__ import annotations

import json
import tempfile
import zipfile

import pytest
from app_server import app_fixture, artifacts_dir
from browser_support import require_chromium

from demo.cache import cache_dir as app_cache_dir

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

sync_api = require_chromium()
expect = sync_api.expect

TIMEOUT_MS = 30_000
CAP = 4  # comparisons a run may make: 2 instruction prompts × (raw + prompted base)

# The cache where a user's lives (not under the temp folder Gradio allows by itself): the run's
# zip must still download, as on a real machine or a Space's /data.
app = app_fixture(limits={"max_evaluation_items": CAP}, generation={"max_new_tokens": 8}, cache_outside_temp=True)


def test_run_evaluation_from_the_page(app, browser, tmp_path):
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.goto(app.url)
    page.get_by_role("tab", name="Evaluate").click()

    # Opens on the shipped default run, before anything is run.
    expect(page.locator("#eval-report")).to_contain_text("Shipped default run", timeout=TIMEOUT_MS)
    # Its charts are drawn by the Vega-Lite version their specs were written for (altair pinned
    # to Gradio's renderer): a mismatch makes vega-embed warn and mis-draw labels.
    chart = page.locator("#eval-win .vega-embed canvas, #eval-win .vega-embed svg.marks").first
    expect(chart).to_be_visible(timeout=TIMEOUT_MS)
    page.wait_for_timeout(500)
    assert not [m for m in console if "Vega-Lite" in m], console
    box = chart.bounding_box()
    assert box is not None and box["width"] > 400  # drawn at its own width, not squeezed
    expect(page.locator("#eval-plan")).to_contain_text(f"{CAP} comparisons")
    expect(page.locator("#eval-plan")).to_contain_text("capped")

    page.click("#eval-run")
    expect(page.locator("#eval-status")).to_contain_text("Done in", timeout=240_000)
    expect(page.locator("#eval-status")).to_contain_text(f"{CAP} items run")
    report = page.locator("#eval-report")
    expect(report).to_contain_text("Your run")
    pair = app.config.pairs[0].id
    expect(report).to_contain_text(pair)  # the tiny pair's own rows, not the shipped report's
    expect(report).to_contain_text(f"{CAP} comparisons are left out of these figures")  # no head: no rewards
    page.screenshot(path=str(artifacts_dir() / "evaluate-run.png"), full_page=True)

    assert not str(app_cache_dir()).startswith(tempfile.gettempdir())
    with page.expect_download(timeout=TIMEOUT_MS) as download:
        page.click("#eval-download")
    archive = tmp_path / "results.zip"
    download.value.save_as(archive)
    with zipfile.ZipFile(archive) as files:
        rows = [json.loads(line) for line in files.read("results.jsonl").decode().splitlines() if line.strip()]
        summary = json.loads(files.read("summary.json"))
    assert len(rows) == CAP
    assert {row["base_format"] for row in rows} == {"raw", "prompted"}
    assert all(row["pair"] == pair and row["base"]["text"] and row["aligned"]["text"] for row in rows)
    overall = [r for r in summary["preference"] if r["category"] == "all"]
    assert {r["base_format"] for r in overall} == {"raw", "prompted"}
    # The tiny config's reward head is missing on purpose: the scorer says so, and the summary
    # excludes those comparisons instead of inventing a win rate.
    assert [(r["n"], r["n_excluded"]) for r in overall] == [(0, 2), (0, 2)], overall
    assert all(row["aligned"]["reward"] is None and row["aligned"]["reward_error"] for row in rows)
    context.close()
