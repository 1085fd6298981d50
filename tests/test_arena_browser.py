"""The blind vote in a real browser (Playwright + Debian's chromium) against the tiny-model app:
play a battle, vote, see the reveal match what the database stored, see the leaderboard count
it; and with an unwritable database, the page says voting is unavailable while Compare works.
Screenshots go to artifacts/arena-*.png.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
import yaml
from app_server import artifacts_dir, running_app
from browser_support import require_chromium

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

sync_api = require_chromium()
expect = sync_api.expect
TIMEOUT_MS = 30_000


def arena_config(tiny_config_file, folder: Path, **arena) -> Path:
    from demo.config import load_config

    data = load_config(tiny_config_file).model_dump(
        mode="json", exclude={"source_path"}, context={"absolute_paths": True}
    )
    data["arena"].update({k: str(v) if isinstance(v, Path) else v for k, v in arena.items()})
    data["generation"]["max_new_tokens"] = 24
    path = folder / "models.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def voting_app(tiny_config_file, tmp_path_factory):
    folder = tmp_path_factory.mktemp("arena-app")
    database = folder / "votes.sqlite"
    config = arena_config(tiny_config_file, folder, database=database, leaderboard_refresh_seconds=1)
    with running_app(config) as server:
        server.database = database
        yield server


def open_tab(browser, url: str, tab: str):
    page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
    page.goto(url)
    page.get_by_role("tab", name=tab).click()
    return page


def stored_votes(database: Path) -> list[dict]:
    conn = sqlite3.connect(database)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in conn.execute("SELECT * FROM votes ORDER BY id")]
    finally:
        conn.close()


def test_play_a_battle_vote_see_the_reveal_and_the_leaderboard(voting_app, browser):
    page = open_tab(browser, voting_app.url, "Blind vote")
    for element in ("arena-prompt", "arena-run", "arena-random", "vote-a", "vote-b", "vote-tie", "vote-bad"):
        expect(page.locator(f"#{element}")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.locator("#vote-a")).to_be_disabled()
    expect(page.locator("#tab-blind-vote button").filter(has_text=re.compile(r"^\s*Run\s*$"))).to_have_count(0)
    page.click("#arena-random")
    expect(page.locator("#arena-prompt textarea")).not_to_have_value("", timeout=TIMEOUT_MS)
    expect(page.locator("#vote-b")).to_be_enabled(timeout=TIMEOUT_MS)
    names = [spec.name for spec in voting_app.config.models.values()]
    shown = page.inner_text("#arena-answer-a") + page.inner_text("#arena-answer-b")
    tab_text = page.inner_text("#tab-blind-vote")  # the header's loading status lists every model, not who is A
    assert shown.strip() and not any(name in tab_text for name in names)  # still blind
    page.screenshot(path=str(artifacts_dir() / "arena-battle.png"), full_page=True)

    page.click("#vote-b")
    reveal = page.locator("#arena-reveal")
    expect(reveal).to_contain_text("B is better", timeout=TIMEOUT_MS)
    expect(page.locator("#arena-next")).to_be_visible()
    expect(page.locator("#vote-a")).to_be_disabled()
    [row] = stored_votes(voting_app.database)
    assert row["winner"] == "B" and row["prompt"] == page.input_value("#arena-prompt textarea")
    cells = [page.inner_text(f"#arena-reveal tbody tr:nth-child({i}) td:nth-child(2)") for i in (1, 2)]
    models = voting_app.config.models
    assert cells == [models[row["model_a"]].name, models[row["model_b"]].name]  # the reveal is right
    formats = [page.inner_text(f"#arena-reveal tbody tr:nth-child({i}) td:nth-child(4)") for i in (1, 2)]
    assert [f.split()[0] for f in formats] == [
        {"raw": "raw", "prompted": "few-shot", "chat": "chat"}[row[k]] for k in ("format_a", "format_b")
    ]
    expect(reveal).to_contain_text("judge")
    page.screenshot(path=str(artifacts_dir() / "arena-reveal.png"), full_page=True)

    page.click("#arena-next")
    expect(page.locator("#arena-reveal")).to_be_empty(timeout=TIMEOUT_MS)
    expect(page.locator("#vote-a")).to_be_disabled()

    board = open_tab(browser, voting_app.url, "Leaderboard")
    expect(board.locator("#leaderboard-summary")).to_contain_text(re.compile(r"\b1 vote\b"), timeout=TIMEOUT_MS)
    expect(board.locator("#leaderboard-ratings")).to_contain_text(models[row["model_a"]].name, timeout=TIMEOUT_MS)
    board.screenshot(path=str(artifacts_dir() / "arena-leaderboard.png"), full_page=True)


def test_a_replayed_click_is_refused_on_the_page(voting_app, browser):
    page = open_tab(browser, voting_app.url, "Blind vote")
    page.fill("#arena-prompt textarea", "Name three primary colours.")
    page.click("#arena-run")
    expect(page.locator("#vote-tie")).to_be_enabled(timeout=TIMEOUT_MS)
    before = len(stored_votes(voting_app.database))
    page.click("#vote-tie")
    expect(page.locator("#arena-reveal")).to_contain_text("Tie", timeout=TIMEOUT_MS)
    # Re-enable the buttons in the DOM and click again: the server refuses the second vote.
    page.evaluate("document.querySelector('#vote-a').disabled = false")
    page.click("#vote-a", force=True)
    expect(page.locator("#arena-message")).to_contain_text("already been voted", timeout=TIMEOUT_MS)
    assert len(stored_votes(voting_app.database)) == before + 1


@pytest.fixture(scope="module")
def broken_store_app(tiny_config_file, tmp_path_factory):
    folder = tmp_path_factory.mktemp("arena-broken")
    blocker = folder / "not-a-folder"
    blocker.write_text("")  # a file where the database folder should be: unwritable even for root
    config = arena_config(tiny_config_file, folder, database=blocker / "votes.sqlite")
    with running_app(config) as server:
        yield server


def test_an_unwritable_database_says_voting_is_unavailable_and_compare_works(broken_store_app, browser):
    page = open_tab(browser, broken_store_app.url, "Blind vote")
    expect(page.locator("#arena-status")).to_contain_text("Voting is unavailable", timeout=TIMEOUT_MS)
    page.fill("#arena-prompt textarea", "Name three primary colours.")
    page.click("#arena-run")
    expect(page.locator("#arena-answer-a")).not_to_be_empty(timeout=TIMEOUT_MS)
    expect(page.locator("#vote-a")).to_be_disabled()
    # Comparisons keep working: the same page's /compare endpoint answers with both sides.
    result = broken_store_app.client().predict("Explain the moon landing to a six year old.", api_name="/compare")
    assert result["base"]["text"] and result["aligned"]["text"] and result["error"] is None
    page.screenshot(path=str(artifacts_dir() / "arena-unavailable.png"), full_page=True)
