"""demo/views.py: pure state → HTML/Markdown; everything a model or user wrote is escaped."""

from __future__ import annotations

import html
import re
import threading
from types import SimpleNamespace

import pytest

from demo.config import load_config
from demo.generation.loading import LoadedModelInfo
from demo.paths import DEFAULT_CONFIG_PATH
from demo.session import Comparison, SideState
from demo.ui import views

HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "<script>alert('xss')</script>",
    '<a href="javascript:alert(1)">click me</a>',
    "<iframe src=https://evil.example></iframe>",
    "<svg/onload=alert(1)>",
    '"><style>body{display:none}</style>',
    "&lt;already escaped&gt; & ampersand",
]
RAW_TAGS = re.compile(r"<\s*(img|script|a|iframe|svg|style)\b", re.IGNORECASE)
TOXICITY_LABELS = {
    "toxic": 0.91,
    "insult": 0.8,
    "obscene": 0.3,
    "threat": 0.01,
    "severe_toxic": 0.02,
    "identity_hate": 0.05,
}


def side(**fields) -> SideState:
    return SideState(model=fields.pop("model", "Model"), **fields)


def scored(reward=1.25, toxicity=0.12, toxic=False, **fields) -> SideState:
    labels = fields.pop("toxicity_labels", {"toxic": toxicity, "insult": toxicity / 2})
    return side(reward=reward, toxicity=toxicity, toxic=toxic, toxicity_labels=labels, done=True, **fields)


def inner_text(markup: str, css_class: str) -> str:
    match = re.search(rf'<div class="{css_class}"[^>]*>(.*?)</div>', markup, re.DOTALL)
    assert match, markup
    return html.unescape(match.group(1))


# --- answers -----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", HOSTILE)
def test_answer_html_escapes_model_output(text):
    markup = views.answer_html(side(text=f"Sure! {text}\nBye"), streaming=False)
    assert not RAW_TAGS.search(markup)
    assert 'href="' not in markup  # no live attribute, only escaped text
    assert inner_text(markup, "demo-answer") == f"Sure! {text}\nBye"  # shown exactly as written


@pytest.mark.parametrize("text", HOSTILE)
def test_answer_html_escapes_errors(text):
    markup = views.answer_html(side(error=f"model said {text}"), streaming=True)
    assert not RAW_TAGS.search(markup)
    assert 'role="alert"' in markup
    assert text in html.unescape(markup)
    assert "demo-waiting" not in markup


def test_answer_html_states():
    assert views.answer_html(side(), streaming=True) == '<div class="demo-waiting">…</div>'
    assert views.answer_html(side(), streaming=False) == ""
    both = views.answer_html(side(text="partial", error="stopped"), streaming=False)
    assert "demo-error" in both and "demo-answer" in both


def test_answer_html_keeps_unicode_and_whitespace():
    text = "line 1\n  indented\tTAB 👍 \u202eRTL\u202c 日本"
    assert inner_text(views.answer_html(side(text=text), streaming=False), "demo-answer") == text


# --- scores ------------------------------------------------------------------------------------


def test_scores_html_flags_toxic_and_shows_the_threshold():
    markup = views.scores_html(scored(reward=-0.5, toxicity=0.91, toxic=True, toxicity_labels=TOXICITY_LABELS), 0.5)
    assert "⚠ toxic" in markup and "demo-toxic" in markup
    assert "threshold 0.50" in markup
    assert "<b>0.91</b>" in markup
    assert "<b>-0.50</b>" in markup
    # Top three labels, highest first.
    labels = re.search(r"top labels: ([^)]*)\)", markup).group(1)
    assert labels == "toxic 0.91, insult 0.80, obscene 0.30"


def test_scores_html_not_flagged():
    markup = views.scores_html(scored(reward=2.0, toxicity=0.1, toxic=False), 0.7)
    assert "not flagged" in markup and "⚠ toxic" not in markup
    assert "threshold 0.70" in markup
    assert "<b>+2.00</b>" in markup


def test_scores_html_without_reward_says_why_escaped():
    error = 'head missing" onmouseover="alert(1)'
    markup = views.scores_html(scored(reward=None, reward_error=error), 0.5)
    assert "unavailable" in markup
    assert 'onmouseover="' not in markup
    assert re.search(r'title="([^"]*)"', markup).group(1) == html.escape(error, quote=True)


def test_scores_html_escapes_label_names():
    markup = views.scores_html(scored(toxicity_labels={"<script>x</script>": 0.2}), 0.5)
    assert not RAW_TAGS.search(markup)


def test_scores_html_empty_before_scoring():
    assert views.scores_html(side(text="answer"), 0.5) == ""


# --- preference --------------------------------------------------------------------------------


def comparison(preferred, p, r_base=0.0, r_aligned=1.0, done=True) -> Comparison:
    base = scored(reward=r_base, model="B")
    aligned = scored(reward=r_aligned, model="A")
    base.done = aligned.done = done
    return Comparison(prompt="q", base=base, aligned=aligned, preferred=preferred, p_aligned_preferred=p)


@pytest.mark.parametrize(
    "preferred, p, winner, width",
    [
        ("aligned", 0.731, "the <b>aligned</b> answer", "73%"),
        ("base", 0.269, "the <b>base</b> answer", "27%"),
        ("tie", 0.5, "neither (a tie)", "50%"),
    ],
)
def test_preference_html(preferred, p, winner, width):
    markup = views.preference_html(comparison(preferred, p))
    assert winner in markup
    assert f"<b>{p:.2f}</b>" in markup
    assert f"width:{width}" in markup
    assert "P(aligned ≻ base)" in markup


def test_preference_html_hidden_until_both_rewards_exist():
    assert views.preference_html(comparison("aligned", 0.7, done=False)) == ""
    assert views.preference_html(comparison("tie", None, r_base=None)) == ""
    assert views.preference_html(comparison("tie", None, r_aligned=None)) == ""
    # both rewards known but the probability not yet computed: still nothing, no crash
    assert views.preference_html(comparison("aligned", None)) == ""


# --- stats -------------------------------------------------------------------------------------


def test_stats_text():
    text = views.stats_text(side(new_tokens=20, seconds=2.0, first_token_seconds=0.125, stop_reason="max_new_tokens"))
    assert text == "20 tokens · 2.00 s · 10 tok/s · first token 125 ms · token limit"
    assert views.stats_text(side()) == ""
    for reason, words in [("eos", "ended by the model"), ("stop_sequence", "stop rule"), ("cancelled", "stopped")]:
        assert views.stats_text(side(new_tokens=1, stop_reason=reason)).endswith(words)


# --- examples ----------------------------------------------------------------------------------


def test_load_examples():
    groups = views.load_examples()
    assert len(groups) >= 11
    assert sum(len(g.prompts) for g in groups) >= 40
    orders = [g.order for g in groups]
    assert orders == sorted(orders) and len(set(orders)) == len(orders)
    assert len({g.id for g in groups}) == len(groups)
    for group in groups:
        assert group.title.strip() and group.description.strip(), group.id
        assert group.prompts and all(p.strip() for p in group.prompts), group.id
    ids = {g.id for g in groups}
    assert {
        "generation",
        "open_qa",
        "brainstorming",
        "chat",
        "rewrite",
        "summarization",
        "classification",
        "extraction",
        "closed_qa",
        "truthfulness",
        "toxicity",
    } <= ids


def test_load_examples_from_another_folder(tmp_path):
    (tmp_path / "b.yaml").write_text("title: B\ndescription: second\norder: 2\nprompts: [two]\n", encoding="utf-8")
    (tmp_path / "a.yaml").write_text(
        "title: A\ndescription: first\norder: 9\nprompts: [one, 'x: y']\n", encoding="utf-8"
    )
    groups = views.load_examples(tmp_path)
    assert [g.id for g in groups] == ["b", "a"]
    assert groups[1].prompts == ("one", "x: y")


# --- model cards and status --------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_config():
    return load_config(DEFAULT_CONFIG_PATH)


def test_model_card_mentions_licenses_and_the_two_family_caveat(default_config):
    card = views.model_card_markdown(default_config, {}, "gemma-vs-smollm2")
    base, aligned = (default_config.pair_models("gemma-vs-smollm2")[role] for role in ("base", "aligned"))
    assert base.license in card and aligned.license in card
    assert "Gemma Terms of Use" in card and "Apache-2.0" in card
    assert f"({base.license_url})" in card and f"({aligned.license_url})" in card
    assert "Two different families" in card
    assert base.family in card and aligned.family in card
    assert "loading…" in card
    assert default_config.scoring.reward.name in card and default_config.scoring.toxicity.name in card
    assert "MIT" in card  # the toxicity classifier's license


def test_model_card_shows_how_each_model_runs(default_config):
    info = LoadedModelInfo(
        backend="transformers", precision="fp32", device="cpu", origin="x", checkpoint="/x", load_seconds=1.0
    )
    card = views.model_card_markdown(default_config, {model_id: info for model_id in default_config.models})
    assert card.count("transformers fp32 on cpu") == 2
    assert "loading…" not in card


def test_model_card_for_one_family(default_config):
    aligned = default_config.pair_models()["aligned"]
    base = default_config.pair_models()["base"].model_copy(update={"family": aligned.family})
    pair = default_config.default_pair
    config = default_config.model_copy(update={"models": {pair.base: base, pair.aligned: aligned}})
    card = views.model_card_markdown(config, {})
    assert "Two different families" not in card and "One family" in card
    # The shipped default pair is one family (Gemma before and after our SFT + RL), with its note.
    card = views.model_card_markdown(default_config, {})
    assert "Two different families" not in card
    assert (
        "**One family** (Gemma 3 (Google)): the same model at two training stages (pretrained → preference-tuned)"
        in card
    )
    assert "**Note:** One model before and after" in card


def test_model_header(default_config):
    header = views.model_header("base", default_config.pair_models()["base"])
    assert header.startswith("### Base model: Gemma 3 270M (base)")
    assert "268M parameters" in header


def test_loading_status_escapes_errors(default_config):
    info = LoadedModelInfo(
        backend="transformers", precision="fp32", device="cpu", origin="x", checkpoint="/x", load_seconds=2.5
    )
    workers = {
        "base": SimpleNamespace(
            spec=default_config.pair_models()["base"], state="failed", error="<img src=x onerror=alert(1)>", info=None
        ),
        "aligned": SimpleNamespace(spec=default_config.pair_models()["aligned"], state="ready", error=None, info=info),
    }
    ready = threading.Event()
    ready.set()
    comparator = SimpleNamespace(
        workers=workers,
        scoring_error=None,
        scorer=SimpleNamespace(reward_error="<script>no</script>"),
        scorer_ready=ready,
    )
    text, settled = views.loading_status(comparator)
    assert settled is False  # a failed side is loaded again at its next request
    assert not RAW_TAGS.search(text)
    assert "unavailable" in text and "loaded in 2.5 s" in text
    workers["base"].state = "ready"
    workers["base"].info = info
    assert views.loading_status(comparator)[1] is True
    workers["base"].state, workers["base"].loading_note = "loading", "building a model"
    text, settled = views.loading_status(comparator)
    assert settled is False and "building a model" in text


def test_scores_html_shows_both_toxicity_signals_the_rule_and_the_error_rates():
    graded = scored(reward=0.1, toxicity=0.12, toxic=True, toxicity_labels=TOXICITY_LABELS)
    graded.apply_scores({"toxicity_meaning": 0.93, "toxic_reason": "meaning: the meaning head scores 0.93 ≥ 0.50"})
    calibration = {"toxicity": {"rates": {"combined": {"fpr": 0.064, "fnr": 0.169}}}}
    markup = views.scores_html(graded, 0.5, calibration)
    assert "wording <b>0.12</b>" in markup and "meaning <b>0.93</b>" in markup
    assert "flagged when either signal reaches its threshold" in markup and "meaning head scores 0.93" in markup
    assert "6% of harmless texts" in markup and "misses 17% of toxic ones" in markup
    assert "our models' own outputs" not in markup  # no labelled figures given: none claimed
    # Rates measured at another rule than the one served are said to be so.
    elsewhere = {"toxicity": {**calibration["toxicity"], "rates_measured_at": {"wording": 0.5, "meaning": 0.5}}}
    markup = views.scores_html(graded, 0.34, elsewhere)
    assert "this flag is raised" not in markup and "not the thresholds served" in markup


def test_scores_html_gives_the_flag_rates_on_our_own_outputs_and_says_they_are_ai_feedback():
    graded = scored(reward=0.1, toxicity=0.12, toxic=False, toxicity_labels=TOXICITY_LABELS)
    graded.apply_scores({"toxicity_meaning": 0.2, "toxic_reason": "neither signal"})
    ours = {
        "false_positive_rate_continuations": 0.087,
        "false_positive_rate_answers": 0.022,
        "recall": 0.4375,
        "n_toxic": 16,
        "n_clean_continuations": 46,
        "n_clean_answers": 90,
    }
    markup = views.scores_html(graded, 0.34, {"toxicity": {"ours": ours}})
    assert "AI feedback" in markup and "152 held-out texts" in markup
    assert "flags 9% of non-toxic continuations and 2% of answers to ordinary instructions" in markup
    assert "catches 44% of toxic ones" in markup


def test_preference_html_says_how_often_the_judge_is_right_on_independent_pairs():
    markup = views.preference_html(comparison("aligned", 0.8), {"reward": {"independent_accuracy": 0.812}})
    assert "written independently of its training data" in markup and "81%" in markup
    assert "independently" not in views.preference_html(comparison("aligned", 0.8), {})


def test_legend_says_what_each_toxicity_signal_is_blind_to():
    assert "Wording is blind to" in views.LEGEND and "Meaning is blind to" in views.LEGEND


# --- the stages view ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", HOSTILE)
def test_side_html_escapes_the_answer_and_shows_stats_and_scores(text):
    markup = views.side_html(scored(text=text, new_tokens=7, seconds=0.5, stop_reason="eos"), 0.5, streaming=False)
    assert not RAW_TAGS.search(markup)
    assert inner_text(markup, "demo-answer") == text
    assert "7 tokens" in markup and "ended by the model" in markup
    assert "Reward: <b>+1.25</b>" in markup and "not flagged" in markup


def test_side_html_while_streaming_and_after_a_failure():
    assert "demo-waiting" in views.side_html(side(), 0.5, streaming=True)
    assert "demo-waiting" not in views.side_html(side(done=True), 0.5, streaming=True)
    failed = views.side_html(side(error="<b>unavailable</b>", done=True), 0.5, streaming=True)
    assert "&lt;b&gt;unavailable" in failed and "Reward" not in failed


def test_stage_header_names_the_model_and_its_stage(default_config):
    header = views.stage_header(default_config.pair_models()["base"])
    assert header.startswith("### Gemma 3 270M (base)\nStage: **pretrained**")


def test_stages_intro_escapes_the_label_and_note():
    from demo.config import StagesSpec

    intro = views.stages_intro(StagesSpec(label="A → <b>B</b>", note="<script>x</script>", models=("a", "b")))
    assert intro.startswith("### A → &lt;b&gt;B&lt;/b&gt;") and "&lt;script&gt;" in intro and "<script>" not in intro
    assert "Note" not in views.stages_intro(StagesSpec(label="L", models=("a", "b")))


def test_the_judges_card_note_reads_its_figures_from_the_head_file():
    from demo.config import load_config
    from demo.scoring.reward_head import read_head_file

    reward = load_config().scoring.reward  # the shipped head in trained/reward/
    _, metadata = read_head_file(reward.head_path)
    note = views.trained_head_note(reward)
    assert f"{float(metadata['independent_accuracy']):.1%} right" in note
    assert f"on {metadata['train_pairs']} hand-written preference pairs" in note
    assert f"{float(metadata['heldout_accuracy']):.1%} on pairs by the same writers" in note


def test_a_side_is_headed_by_its_stage_where_the_role_would_mislead(default_config):
    models = default_config.models
    assert views.model_header("base", models["gemma-3-270m"]).startswith("### Base model: ")
    assert views.model_header("aligned", models["gemma-3-270m-rlhf"]).startswith("### Aligned model: ")
    assert views.model_header("base", models["gemma-3-270m-sft"]).startswith("### Before: SFT model: ")
    assert views.model_header("aligned", models["gemma-3-270m-sft"]).startswith("### After: SFT model: ")


def test_settings_the_server_changed_are_named(default_config):
    from demo.settings import settings_from_values

    limits = default_config.limits
    values = {"seed": -5, "max_new_tokens": 9999, "temperature": 0.7}
    settings = settings_from_values(values, default_config.generation, limits)
    note = views.adjusted_settings_note(values, settings, limits)
    assert "Seed -5 is outside 0–2147483647: used" in note
    assert f"Max new tokens 9999 is outside 1–{limits.max_new_tokens}: used {limits.max_new_tokens}" in note
    assert "Temperature" not in note
    assert (
        views.adjusted_settings_note(
            {"seed": 42}, settings_from_values({"seed": 42}, default_config.generation, limits), limits
        )
        == ""
    )


def test_the_prompt_size_note_counts_and_warns_at_each_limit(default_config):
    limits = default_config.limits
    assert views.prompt_size_note("Name three fruits.", limits).startswith("18 / 4,000 characters · about 4 tokens")
    long = "word " * 500  # 2,500 characters, about 625 tokens
    assert "over the token limit" in views.prompt_size_note(long, limits)
    assert "anything pasted beyond was cut" in views.prompt_size_note("x" * limits.max_prompt_chars, limits)
