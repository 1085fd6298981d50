"""demo/cli.py: `python -m demo compare|score` print one JSON object per line; a bad config
exits with status 2 and names the field."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import run_demo, toxic_classifier_installed

from demo import cli
from demo.config import load_config
from demo.paths import DEFAULT_CONFIG_PATH
from demo.session import Comparison, SideState

TOP_KEYS = {"prompt", "pair", "base", "aligned", "preferred", "p_aligned_preferred", "error"}
SIDE_KEYS = {
    "model",
    "input_text",
    "text",
    "new_tokens",
    "seconds",
    "reward",
    "toxicity",
    "toxic",
    "toxicity_labels",
    "reward_error",
    "error",
    "toxicity_meaning",
    "toxic_reason",
}  # the meaning-aware signal models.yaml configures
SCORE_KEYS = {"reward", "toxicity", "toxic", "toxicity_labels", "toxicity_meaning", "toxic_reason"}
PROMPTS = ["Name three primary colours.", "Write a haiku about {prompt} and <|im_end|> 👍"]
INSULT = "You are a stupid idiot and I hate you"

needs_toxicity = pytest.mark.skipif(not toxic_classifier_installed(), reason="toxic-comment-classifier not installed")


@pytest.fixture(scope="module")
def compare_run(tiny_config_file, tmp_path_factory):
    """One `python -m demo compare` with two prompts (model start-up dominates; run it once)."""
    cache = tmp_path_factory.mktemp("cli-cache")
    return run_demo(
        "compare",
        *PROMPTS,
        "--json",
        "--max-new-tokens",
        "6",
        "--seed",
        "3",
        "--config",
        str(tiny_config_file),
        env_extra={"DEMO_CACHE_DIR": str(cache)},
    )


def broken_config(tmp_path):
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))
    raw["models"][raw["pairs"][0]["base"]]["cpu"]["precision"] = "int3"
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


# --- compare -----------------------------------------------------------------------------------


@needs_toxicity
@pytest.mark.timeout(240)
def test_compare_json_prints_one_object_per_prompt(compare_run):
    assert compare_run.returncode == 0, compare_run.stderr
    lines = compare_run.stdout.splitlines()
    assert len(lines) == 2, compare_run.stdout
    results = [json.loads(line) for line in lines]
    assert [r["prompt"] for r in results] == PROMPTS
    for result in results:
        assert set(result) == TOP_KEYS
        assert result["error"] is None
        for role in ("base", "aligned"):
            side = result[role]
            assert set(side) == SIDE_KEYS
            assert side["error"] is None
            assert 1 <= side["new_tokens"] <= 6
            assert set(side["toxicity_labels"]) == {
                "toxic",
                "severe_toxic",
                "obscene",
                "threat",
                "insult",
                "identity_hate",
            }
            assert isinstance(side["toxic"], bool)
        assert result["base"]["input_text"] == result["prompt"]
        assert result["aligned"]["input_text"].endswith("<|im_start|>assistant\n")
    # Typed control tokens reach the chat model as text, not as a second turn.
    assert results[1]["aligned"]["input_text"].count("<|im_end|>") == 2  # the system and user turns only


@needs_toxicity
@pytest.mark.timeout(240)
def test_compare_without_reward_head_reports_reward_null(compare_run):
    for line in compare_run.stdout.splitlines():
        result = json.loads(line)
        assert result["base"]["reward"] is None and result["aligned"]["reward"] is None
        assert result["p_aligned_preferred"] is None


@needs_toxicity
@pytest.mark.timeout(240)
def test_compare_says_why_the_reward_is_missing(compare_run):
    assert "reward" in compare_run.stderr and "missing_reward_head" in compare_run.stderr


def test_compare_with_broken_config_exits_2_naming_the_field(tmp_path):
    result = run_demo("compare", "hello", "--json", "--config", str(broken_config(tmp_path)), timeout=120)
    assert result.returncode == 2
    assert "models.gemma-3-270m.cpu" in result.stderr
    assert "'fp32'" in result.stderr  # the allowed values
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_broken_config_via_demo_config_env(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DEMO_CONFIG", str(broken_config(tmp_path)))
    assert cli.main(["score", "--answer", "hi", "--json"]) == 2
    assert "models.gemma-3-270m.cpu" in capsys.readouterr().err


def test_missing_config_file_exits_2(tmp_path, capsys):
    assert cli.main(["compare", "hi", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "not found" in capsys.readouterr().err


def test_settings_from_args_fall_back_to_config_defaults():
    config = load_config(DEFAULT_CONFIG_PATH)
    args = cli.build_parser().parse_args(["compare", "p", "--temperature", "0", "--seed", "9"])
    settings = cli.settings_from_args(args, config)
    assert settings.temperature == 0.0 and settings.seed == 9
    assert settings.max_new_tokens == config.generation.max_new_tokens
    assert settings.top_p == config.generation.top_p
    assert args.base_format == "raw"


def test_human_output_lists_both_sides():
    result = Comparison(
        prompt="q",
        base=SideState("Base M", text="base answer", new_tokens=3, reward=0.5),
        aligned=SideState("Aligned M", error="Aligned M is unavailable: boom"),
        preferred="tie",
    )
    text = cli._human(result)
    assert "--- base: Base M" in text and "base answer" in text
    assert "--- aligned: Aligned M" in text and "unavailable: boom" in text
    assert "preferred: tie" in text


# --- score -------------------------------------------------------------------------------------


@needs_toxicity
@pytest.mark.timeout(120)
def test_score_json_subprocess(tiny_models_yaml):
    result = run_demo(
        "score", "--prompt", "Say something.", "--answer", INSULT, "--json", "--config", str(tiny_models_yaml)
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert set(record) == SCORE_KEYS
    assert record["toxic"] is True and record["toxicity"] > 0.9
    if record["reward"] is None:
        assert "warning: reward unavailable" in result.stderr
    else:
        assert isinstance(record["reward"], float)


@needs_toxicity
def test_score_jsonl_keeps_the_order(tiny_models_yaml, tmp_path, capsys):
    answers = ["The garden looks lovely today.", INSULT, "Thanks, that was helpful!", "I will kill you"]
    path = tmp_path / "pairs.jsonl"
    lines = [json.dumps({"prompt": "q", "answer": a}) for a in answers]
    path.write_text("\n".join(lines[:2] + ["", "   "] + lines[2:]) + "\n", encoding="utf-8")
    assert cli.main(["score", "--jsonl", str(path), "--config", str(tiny_models_yaml)]) == 0
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["toxic"] for r in records] == [False, True, False, True]
    assert all(set(r) == SCORE_KEYS for r in records)
    if records[0]["reward"] is None:
        assert "warning: reward unavailable" in captured.err


@needs_toxicity
def test_score_human_output(tiny_models_yaml, capsys):
    assert cli.main(["score", "--answer", INSULT, "--config", str(tiny_models_yaml)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("reward ")
    assert "(toxic: True)" in out and "insult" in out


@pytest.mark.parametrize("args", [[], ["--answer", "a", "--jsonl", "x.jsonl"]])
def test_score_needs_exactly_one_input(args, tiny_models_yaml):
    with pytest.raises(SystemExit) as info:
        cli.main(["score", *args, "--config", str(tiny_models_yaml)])
    assert "--answer" in str(info.value.code) and "--jsonl" in str(info.value.code)


def test_score_jsonl_bad_line_names_file_and_line(tmp_path, tiny_models_yaml):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "p", "answer": "ok"}\n{"prompt": "p"}\n', encoding="utf-8")
    with pytest.raises(SystemExit) as info:
        cli.main(["score", "--jsonl", str(path), "--config", str(tiny_models_yaml)])
    assert f"{path}:2" in str(info.value.code)


# --- bench -------------------------------------------------------------------------------------

BENCH_KEYS = {
    "side_by_side_seconds",
    "side_by_side_scored_seconds",
    "baseline_side_by_side_seconds",
    "speedup",
    "scoring_seconds",
    "peak_rss_mib",
    "pss_mib",
    "high_water_mark_sum_mib",
    "warm_start_seconds",
}
BENCH_MODEL_KEYS = {"load_seconds", "ttft_seconds", "tokens_per_second", "baseline_tokens_per_second"}


@needs_toxicity
@pytest.mark.timeout(600)
def test_bench_json_reports_the_issue_keys_on_the_tiny_models(tiny_config_file, tmp_path):
    """`python -m demo bench --json` runs end to end and reports every figure it promises (the
    figures themselves are measurements, read by people, not asserted)."""
    result = run_demo(
        "bench",
        "--json",
        "--config",
        str(tiny_config_file),
        env_extra={"DEMO_CACHE_DIR": str(tmp_path / "cache")},
        timeout=560,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert BENCH_KEYS <= set(report)
    assert report["speedup"] == pytest.approx(report["baseline_side_by_side_seconds"] / report["side_by_side_seconds"])
    assert 0 < report["side_by_side_seconds"] <= report["side_by_side_scored_seconds"]
    assert min(report["high_water_mark_sum_mib"], report["peak_rss_mib"], report["pss_mib"]) > 0
    assert report["side_by_side_new_tokens"] == {"base": 128, "aligned": 128}
    assert set(report["models"]) == {"base", "aligned"}
    throughput = report["evaluation_throughput"]
    assert throughput["answers"] == {
        "base": 2 * throughput["prompts"],
        "aligned": throughput["prompts"],
    }  # raw + prompted
    for key in ("batched_equal_unbatched", "batched_equal_alone"):
        assert all(0 <= throughput[key][role] <= throughput["answers"][role] for role in ("base", "aligned"))
    for figures in report["models"].values():
        assert BENCH_MODEL_KEYS <= set(figures)
        assert all(figures[key] > 0 for key in BENCH_MODEL_KEYS)


def test_train_toxicity_is_a_subcommand_that_never_overwrites_the_shipped_head_by_default(monkeypatch, tmp_path):
    """`python -m demo train-toxicity` writes to a new folder unless --replace-shipped."""
    from demo import cli
    from demo.training import toxicity_head

    calls = []
    monkeypatch.setattr(toxicity_head, "train_command", lambda config, **kw: calls.append(kw) or {})
    assert cli.main(["train-toxicity"]) == 0
    assert cli.main(["train-toxicity", "--replace-shipped", "--written-only"]) == 0
    assert calls == [
        {"written_only": False, "out_dir": None, "replace_shipped": False},
        {"written_only": True, "out_dir": None, "replace_shipped": True},
    ]
    monkeypatch.setenv("DEMO_CACHE_DIR", str(tmp_path))
    assert toxicity_head.output_folder(None, replace_shipped=False).parent == tmp_path / "trained"
    assert toxicity_head.output_folder(tmp_path / "mine", replace_shipped=False) == tmp_path / "mine"
    assert toxicity_head.output_folder(None, replace_shipped=True) is None  # the shipped head's place
