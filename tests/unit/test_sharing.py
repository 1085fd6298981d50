"""demo/sharing.py: a link that reproduces a comparison, and its Markdown report."""

from __future__ import annotations

from urllib.parse import parse_qsl

from demo.session import Comparison, SideState
from demo.settings import SamplingSettings
from demo.sharing import SharedComparison, compare_command, markdown_report, read_query, share_query
from demo.token_shift import ShiftedToken, TokenShift, Unavailable


def test_a_link_reads_back_as_the_comparison_it_was_made_from(tiny_stages_config):
    config = tiny_stages_config
    pair = config.pairs[-1].id
    settings = SamplingSettings(max_new_tokens=17, temperature=0.3, top_p=0.8, repetition_penalty=1.2, seed=99)
    shared = SharedComparison("Ünïcode & spaces? <b>yes</b> 🚀", pair, "prompted", settings)
    query = share_query(shared)
    read, notes = read_query(dict(parse_qsl(query)), config)
    assert read == shared and notes == []
    # Only what the visitor chose travels: the prompt, the pair, the format and the settings.
    assert {key for key, _ in parse_qsl(query)} == {"prompt", "pair", "base_format", *vars(settings)} - {"ignore_eos"}


def test_a_link_with_bad_values_falls_back_and_says_so(tiny_config):
    config = tiny_config
    params = {
        "prompt": "x" * (config.limits.max_prompt_chars + 50),
        "pair": "../../etc/passwd",
        "base_format": "<script>",
        "temperature": "hot",
        "max_new_tokens": "100000",
        "seed": "7",
    }
    read, notes = read_query(params, config)
    assert read is not None
    assert len(read.prompt) == config.limits.max_prompt_chars
    assert read.pair == config.default_pair.id and read.base_format == "raw"
    assert read.settings.temperature == config.generation.temperature
    assert read.settings.max_new_tokens == config.limits.max_new_tokens  # clamped as any client's value
    assert read.settings.seed == 7
    joined = " ".join(notes)
    assert "cut" in joined and "pair" in joined and "base format" in joined and "temperature" in joined


def test_a_link_without_a_prompt_is_no_comparison(tiny_config):
    assert read_query({}, tiny_config) == (None, [])
    assert read_query({"prompt": "   ", "seed": "3"}, tiny_config) == (None, [])


def finished(config, aligned_text: str, shift) -> Comparison:
    pair = config.default_pair
    base = SideState(config.models[pair.base].name, model_id=pair.base, text="base says hi", done=True)
    base.new_tokens, base.seconds, base.reward, base.toxicity, base.toxic = 3, 0.5, -1.0, 0.02, False
    aligned = SideState(config.models[pair.aligned].name, model_id=pair.aligned, text=aligned_text, done=True)
    aligned.new_tokens, aligned.seconds, aligned.reward, aligned.toxicity, aligned.toxic = 5, 0.7, 2.0, 0.9, True
    aligned.token_shift = shift
    return Comparison("Say ``` hi", base, aligned, "aligned", 0.95, pair=pair.id)


def test_the_report_has_prompt_answers_scores_shift_and_versions(tiny_config):
    tokens = (ShiftedToken("Sure", 9, ()), ShiftedToken("!", 1, ()), ShiftedToken(" ```", 2, ()))
    shift = TokenShift(tokens, "Tiny base", 0.02)
    comparison = finished(tiny_config, "Sure! ``` not a fence end", shift)
    settings = SamplingSettings(seed=5)
    report = markdown_report(comparison, tiny_config, settings, "raw", page_url="https://example.org/app")
    assert "Say ``` hi" in report and "base says hi" in report and "Sure! ``` not a fence end" in report
    # An answer's backticks cannot close its fence: the fence is longer than any run inside.
    assert "````text\nSure! ``` not a fence end\n````" in report
    assert "reward +2.00" in report and "**flagged toxic**" in report and "not flagged" in report
    assert "33% shifted, 33% marginal, 33% unshifted of 3 tokens under Tiny base" in report
    assert "Shifted: `Sure`." in report
    assert report.count("configuration hash `") == 2
    assert "P(aligned preferred) = 0.95" in report
    assert "https://example.org/app?prompt=Say" in report and "seed=5" in report


def test_without_a_page_address_the_report_gives_the_command_line(tiny_config):
    comparison = finished(tiny_config, "hello", Unavailable("two families"))
    report = markdown_report(comparison, tiny_config, SamplingSettings(), "prompted")
    assert "Token shift not shown: two families" in report
    shared = SharedComparison(comparison.prompt, comparison.pair, "prompted", SamplingSettings())
    # In a fence longer than any backtick run of the prompt: the link's prompt cannot end it.
    assert f"````sh\n{compare_command(shared)}\n````" in report
    assert "--base-format prompted" in compare_command(shared) and "-- 'Say ``` hi'" in compare_command(shared)
