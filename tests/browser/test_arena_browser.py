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
from app_server import artifacts_dir, running_app, user_like_cache_dir
from browser_support import require_chromium

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

sync_api = require_chromium()
expect = sync_api.expect
TIMEOUT_MS = 30_000


def arena_config(tiny_config_file, folder: Path, **arena) -> Path:
    from demo.config import PathStyle, load_config

    data = load_config(tiny_config_file).model_dump(
        mode="json", exclude={"source_path"}, context={"path_style": PathStyle(absolute=True)}
    )
    data["arena"].update({k: str(v) if isinstance(v, Path) else v for k, v in arena.items()})
    data["generation"]["max_new_tokens"] = 24
    path = folder / "models.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def voting_app(tiny_config_file, tmp_path_factory):
    folder = tmp_path_factory.mktemp("arena-app")
    # The cache, and the vote database at its default place in it, where a user's are (outside
    # the temp folder). Votes here come right after the answers: no reading time, so they count
    # in the ratings (tests/integration/test_arena_limits.py checks that a vote faster than
    # reading is kept out).
    with user_like_cache_dir() as cache:
        database = cache / "arena" / "votes.sqlite"
        config = arena_config(
            tiny_config_file,
            folder,
            database=database,
            leaderboard_refresh_seconds=1,
            reading_words_per_second=0,
            min_reading_seconds=0,
        )
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
    status = page.inner_text("#arena-status")
    assert "not-a-folder" not in status and "votes.sqlite" not in status and "/tmp" not in status
    assert re.search(r"error id \w+", status)  # the server log has the detail under this id
    page.fill("#arena-prompt textarea", "Name three primary colours.")
    page.click("#arena-run")
    expect(page.locator("#arena-answer-a")).not_to_be_empty(timeout=TIMEOUT_MS)
    expect(page.locator("#vote-a")).to_be_disabled()
    # Comparisons keep working: the same page's /compare endpoint answers with both sides.
    result = broken_store_app.client().predict("Explain the moon landing to a six year old.", api_name="/compare")
    assert result["base"]["text"] and result["aligned"]["text"] and result["error"] is None
    page.screenshot(path=str(artifacts_dir() / "arena-unavailable.png"), full_page=True)


def battle_answers(page, prompt: str) -> list[str]:
    page.fill("#arena-prompt textarea", prompt)
    page.click("#arena-run")
    try:
        expect(page.locator("#vote-a")).to_be_enabled(timeout=TIMEOUT_MS)
    except AssertionError:
        raise AssertionError(f"no battle to vote on: {page.inner_text('#tab-blind-vote')[:600]!r}") from None
    return [page.inner_text(f"#arena-answer-{p}").strip() for p in "ab"]


def test_the_same_prompt_never_gives_an_answer_compare_or_another_battle_gave(voting_app, browser):
    """Compare is reproducible by seed; a battle samples with secret seeds, so running the prompt
    on the Compare tab first tells nothing about which system wrote A."""
    prompt = "Tell me about the sea."
    client = voting_app.client()
    compared = set()
    for pair in voting_app.config.pairs:
        for base_format in ("raw", "prompted"):
            result = client.predict(prompt, base_format=base_format, pair=pair.id, api_name="/compare")
            compared |= {result["base"]["text"].strip(), result["aligned"]["text"].strip()}
    page = open_tab(browser, voting_app.url, "Blind vote")
    seen: list[str] = []
    for _ in range(3):
        answers = battle_answers(page, prompt)
        assert all(answers) and not set(answers) & compared
        assert not set(answers) & set(seen)
        seen += answers
        page.click("#vote-tie")
        expect(page.locator("#arena-next")).to_be_visible(timeout=TIMEOUT_MS)
        page.click("#arena-next")
        # Next clears the prompt when its answer arrives: wait for it, or it clears the next one.
        expect(page.locator("#arena-next")).to_be_hidden(timeout=TIMEOUT_MS)


def test_an_over_long_prompt_gets_the_token_limit_and_starts_no_model(voting_app, browser):
    limit = voting_app.config.limits.max_prompt_tokens
    prompt = " ".join(str(n % 10) for n in range(limit + 20))  # under the character limit, over the tokens
    assert len(prompt) < voting_app.config.limits.max_prompt_chars
    page = open_tab(browser, voting_app.url, "Blind vote")
    page.fill("#arena-prompt textarea", prompt)
    page.click("#arena-run")
    message = page.locator("#arena-message")
    expect(message).to_contain_text(f"the limit is {limit:,} tokens", timeout=TIMEOUT_MS)
    assert re.search(r"The prompt is [\d,]+ tokens", message.inner_text())
    page.wait_for_timeout(1000)
    assert page.inner_text("#arena-answer-a").strip() == page.inner_text("#arena-answer-b").strip() == ""
    expect(page.locator("#vote-a")).to_be_disabled()


@pytest.fixture(scope="module")
def limited_app(tiny_config_file, tmp_path_factory, request):
    """Two votes a minute per address; `request.param`: the trusted proxies."""
    folder = tmp_path_factory.mktemp("arena-limited")
    config = arena_config(
        tiny_config_file,
        folder,
        database=folder / "votes.sqlite",
        max_votes_per_minute_per_address=2,
        trusted_proxies=request.param,
        reading_words_per_second=0,
        min_reading_seconds=0,
    )
    with running_app(config) as server:
        yield server


def vote_in_a_fresh_session(browser, url: str, forwarded_for: str) -> str:
    """A new browser context (a new session, as a script would open), one battle, one vote:
    the message shown after voting ("" when the vote was taken)."""
    context = browser.new_context(extra_http_headers={"X-Forwarded-For": forwarded_for})
    try:
        page = context.new_page()
        page.goto(url)
        page.get_by_role("tab", name="Blind vote").click()
        battle_answers(page, "Name a colour.")
        page.click("#vote-a")
        refused = page.locator("#arena-message .demo-error")
        expect(page.locator("#arena-reveal .arena-reveal").or_(refused)).to_be_visible(timeout=TIMEOUT_MS)
        return refused.inner_text().strip() if refused.count() else ""
    finally:
        context.close()


@pytest.mark.parametrize("limited_app", [["192.0.2.1"]], indirect=True)
def test_fresh_sessions_from_one_address_are_limited_and_a_forged_header_changes_nothing(limited_app, browser):
    """The page is reached directly (no trusted proxy in front): every session comes from
    127.0.0.1, whatever X-Forwarded-For it sends."""
    messages = [vote_in_a_fresh_session(browser, limited_app.url, f"198.51.100.{n}") for n in range(3)]
    assert messages[:2] == ["", ""]
    assert re.search(r"Too many votes: at most 2 a minute from one address\. Try again in \d+ s", messages[2])


@pytest.mark.parametrize("limited_app", [["127.0.0.1"]], indirect=True)
def test_two_addresses_behind_a_trusted_proxy_are_counted_apart(limited_app, browser):
    messages = [vote_in_a_fresh_session(browser, limited_app.url, address) for address in ["198.51.100.1"] * 3]
    assert messages[:2] == ["", ""] and "Too many votes" in messages[2]
    assert vote_in_a_fresh_session(browser, limited_app.url, "198.51.100.2") == ""
