"""demo/compare.py (+ demo/scoring.py): one prompt through both models, each answer scored."""

from __future__ import annotations

import json
import math

import pytest
from conftest import toxic_classifier_installed

from demo.compare import Comparator, InvalidPrompt, paced, validate_prompt
from demo.config import Limits
from demo.generation.workers import InProcessWorker
from demo.scoring.scorer import AnswerScorer, preference
from demo.session import Comparison, SideState, StagesRun
from demo.settings import SamplingSettings, clamp_settings

SETTINGS = SamplingSettings(max_new_tokens=16, temperature=0.7, top_p=0.95, repetition_penalty=1.1, seed=42)
PROMPT = "Explain the moon landing to a six year old in a few sentences."
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
TOXICITY_LABELS = {"toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"}

needs_toxicity = pytest.mark.skipif(not toxic_classifier_installed(), reason="toxic-comment-classifier not installed")


class LengthRewardTestDouble:
    """Test double for the reward-model interface only: reward = len(answer)."""

    def __init__(self):
        self.calls: list[list[tuple[str, str]]] = []

    def score(self, pairs):
        self.calls.append(list(pairs))
        return [float(len(answer)) for _, answer in pairs]


class FailingRewardTestDouble:
    def score(self, pairs):
        raise RuntimeError("out of memory")


class SpyWorker:
    """Wraps a worker and counts requests, to prove that nothing was generated."""

    def __init__(self, inner):
        self.inner = inner
        self.requests = []

    def wait_ready(self, timeout=None):
        return self.inner.wait_ready(timeout)

    def stream(self, request, should_stop=lambda: False):
        self.requests.append(request)
        yield from self.inner.stream(request, should_stop)

    def close(self):
        pass


class ExplodingWorker:
    def wait_ready(self, timeout=None):
        return True

    def stream(self, request, should_stop=lambda: False):
        raise RuntimeError("boom")
        yield  # pragma: no cover

    def close(self):
        pass


@pytest.fixture(scope="module")
def toxicity():
    if not toxic_classifier_installed():
        pytest.skip("toxic-comment-classifier not installed")
    from demo.scoring.toxicity_bilstm import BiLSTMToxicityClassifier

    return BiLSTMToxicityClassifier.from_package("toxic_classifier")


def with_limits(config, **limits):
    return config.model_copy(update={"limits": config.limits.model_copy(update=limits)})


def by_model_id(config, workers_by_role):
    """Workers keyed by the default pair's model ids, as the Comparator keeps them."""
    pair = config.default_pair
    return {getattr(pair, role): worker for role, worker in workers_by_role.items()}


def make_comparator(config, workers, toxicity, reward=None):
    scorer = AnswerScorer(config.scoring, toxicity, reward if reward is not None else LengthRewardTestDouble())
    return Comparator(config, by_model_id(config, workers), scorer)


@pytest.fixture
def comparator(tiny_config, tiny_workers, toxicity):
    return make_comparator(tiny_config, tiny_workers, toxicity)


# --- a full comparison -------------------------------------------------------------------------


def test_both_sides_are_filled_and_scored(comparator, tiny_config):
    result = comparator.run(PROMPT, SETTINGS)
    assert result.done and result.error is None
    threshold = tiny_config.scoring.toxicity_threshold
    for role in ("base", "aligned"):
        side = result.side(role)
        assert side.error is None, side.error
        assert side.model == tiny_config.pair_models()[role].name
        assert 1 <= side.new_tokens <= SETTINGS.max_new_tokens
        assert side.stop_reason in {"eos", "max_new_tokens"}
        assert side.seconds > 0
        assert side.reward == float(len(side.text))
        assert 0.0 <= side.toxicity <= 1.0
        assert side.toxic == (side.toxicity >= threshold)
        assert set(side.toxicity_labels) == TOXICITY_LABELS
        assert side.toxicity == max(side.toxicity_labels.values())
    assert result.base.input_text == PROMPT  # raw mode: the prompt verbatim
    assert result.aligned.input_text.endswith("<|im_start|>assistant\n")
    assert PROMPT in result.aligned.input_text
    assert result.base.text or result.aligned.text


def test_prompted_base_mode_reaches_the_base_model(comparator, tiny_config):
    result = comparator.run(PROMPT, SETTINGS, base_mode="prompted")
    assert result.base.input_text.startswith(tiny_config.base_prompted.prefix)
    assert result.base.input_text.endswith(f"Instruction: {PROMPT}\nAnswer:")
    assert result.aligned.input_text.endswith("<|im_start|>assistant\n")


def test_json_has_exactly_the_contract_keys(comparator):
    data = comparator.run(PROMPT, SETTINGS).to_json()
    assert set(data) == TOP_KEYS
    assert set(data["base"]) == SIDE_KEYS
    assert set(data["aligned"]) == SIDE_KEYS
    assert data["prompt"] == PROMPT
    assert data["preferred"] in {"base", "aligned", "tie"}
    assert json.loads(json.dumps(data)) == data  # plain JSON types only


def test_preference_is_the_bradley_terry_probability(comparator, tiny_config):
    result = comparator.run(PROMPT, SETTINGS)
    r_base, r_aligned = result.base.reward, result.aligned.reward
    assert result.p_aligned_preferred == pytest.approx(1 / (1 + math.exp(-(r_aligned - r_base))))
    margin = r_aligned - r_base
    expected = "tie" if abs(margin) <= tiny_config.scoring.tie_tolerance else ("aligned" if margin > 0 else "base")
    assert result.preferred == expected


def test_stream_yields_growing_snapshots(comparator):
    snapshots = []
    for snapshot in comparator.stream(PROMPT, SETTINGS):
        assert isinstance(snapshot, Comparison)
        snapshots.append((snapshot.done, snapshot.base.text, snapshot.aligned.text))
    assert len(snapshots) > 3
    assert snapshots[0][0] is False and snapshots[-1][0] is True


def test_same_seed_gives_identical_json(comparator):
    def stable(data):
        for role in ("base", "aligned"):
            data[role].pop("seconds")
        return data

    first = stable(comparator.run(PROMPT, SETTINGS).to_json())
    second = stable(comparator.run(PROMPT, SETTINGS).to_json())
    assert first == second


def test_reward_scores_each_answer_with_its_prompt(tiny_config, tiny_workers, toxicity):
    reward = LengthRewardTestDouble()
    result = make_comparator(tiny_config, tiny_workers, toxicity, reward).run(PROMPT, SETTINGS)
    scored = sorted(pair for call in reward.calls for pair in call)
    assert scored == sorted([(PROMPT, result.base.text), (PROMPT, result.aligned.text)])


# --- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t ", "\x00\x07", None])
def test_empty_prompt_is_refused_without_generating(tiny_config, tiny_workers, toxicity, prompt):
    spies = {role: SpyWorker(worker) for role, worker in tiny_workers.items()}
    result = make_comparator(tiny_config, spies, toxicity).run(prompt, SETTINGS)
    assert result.error and "empty" in result.error
    assert result.done
    assert all(spy.requests == [] for spy in spies.values())
    assert result.base.text == result.aligned.text == ""


def test_prompt_over_the_character_limit_is_refused(tiny_config, tiny_workers, toxicity):
    config = with_limits(tiny_config, max_prompt_chars=50)
    spies = {role: SpyWorker(worker) for role, worker in tiny_workers.items()}
    result = make_comparator(config, spies, toxicity).run("x" * 51, SETTINGS)
    assert result.error and "50" in result.error and "51" in result.error
    assert all(spy.requests == [] for spy in spies.values())


def test_prompt_over_the_token_limit_fails_both_sides_naming_the_limit(tiny_config, tiny_workers, toxicity):
    config = with_limits(tiny_config, max_prompt_tokens=8)
    result = make_comparator(config, tiny_workers, toxicity).run("word " * 30, SETTINGS)
    for role in ("base", "aligned"):
        side = result.side(role)
        assert side.error and "8 tokens" in side.error
        assert side.reward is None and side.toxicity is None
    assert result.preferred == "tie" and result.p_aligned_preferred is None


@pytest.mark.parametrize(
    "prompt, ok",
    [("hi", True), ("x" * 4000, True), ("x" * 4001, False), ("  a  ", True), ("\u200b", True)],
)
def test_validate_prompt_table(prompt, ok):
    limits = Limits(max_prompt_chars=4000)
    if ok:
        assert validate_prompt(prompt, limits) == prompt
    else:
        with pytest.raises(InvalidPrompt, match="4,000"):
            validate_prompt(prompt, limits)


# --- server-side limits ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given, expected",
    [
        (dict(max_new_tokens=10_000), dict(max_new_tokens=256)),
        (dict(max_new_tokens=0), dict(max_new_tokens=1)),
        (dict(max_new_tokens=-5), dict(max_new_tokens=1)),
        (dict(temperature=9.0), dict(temperature=2.0)),
        (dict(temperature=-1.0), dict(temperature=0.0)),
        (dict(top_p=0.0), dict(top_p=0.01)),
        (dict(top_p=3.0), dict(top_p=1.0)),
        (dict(repetition_penalty=0.2), dict(repetition_penalty=1.0)),
        (dict(repetition_penalty=7.0), dict(repetition_penalty=2.0)),
        (dict(seed=-1), dict(seed=2**31 - 1)),
        (dict(seed=2**40 + 5), dict(seed=5)),
        (
            dict(max_new_tokens=100, temperature=0.5, top_p=0.9, repetition_penalty=1.2, seed=7),
            dict(max_new_tokens=100, temperature=0.5, top_p=0.9, repetition_penalty=1.2, seed=7),
        ),
    ],
)
def test_clamp_settings_table(given, expected):
    clamped = clamp_settings(SamplingSettings(**given), Limits(max_new_tokens=256))
    for name, value in expected.items():
        assert getattr(clamped, name) == value, name


@pytest.mark.parametrize("field", ["temperature", "top_p", "repetition_penalty"])
def test_clamp_settings_rejects_nan(field):
    clamped = clamp_settings(SamplingSettings(**{field: float("nan")}), Limits())
    assert math.isfinite(getattr(clamped, field))


def test_max_new_tokens_above_the_cap_is_clamped_end_to_end(tiny_config, tiny_workers, toxicity):
    config = with_limits(tiny_config, max_new_tokens=3)
    spies = {role: SpyWorker(worker) for role, worker in tiny_workers.items()}
    result = make_comparator(config, spies, toxicity).run(PROMPT, SamplingSettings(max_new_tokens=10_000, seed=1))
    for role, spy in spies.items():
        assert spy.requests[0].sampling.max_new_tokens == 3
        assert result.side(role).new_tokens <= 3
    assert spies["base"].requests[0].max_prompt_tokens == config.limits.max_prompt_tokens


# --- failures on one side ----------------------------------------------------------------------


def test_failed_worker_leaves_the_other_side_answering(tiny_config, tiny_workers, toxicity, tmp_path):
    from demo.config import LocalSource

    broken = tiny_config.pair_models()["base"].model_copy(
        update={"source": LocalSource(type="local", path=tmp_path / "missing-base")}
    )
    failed = InProcessWorker("base", broken, tiny_config.base_prompted, None).start()
    assert failed.wait_ready(30) is False
    workers = {"base": failed, "aligned": tiny_workers["aligned"]}
    result = make_comparator(tiny_config, workers, toxicity).run(PROMPT, SETTINGS)
    assert result.base.error and broken.name in result.base.error
    assert result.base.reward is None and result.base.toxicity is None
    assert result.aligned.error is None
    assert result.aligned.new_tokens >= 1 and result.aligned.reward is not None
    assert result.preferred == "tie" and result.p_aligned_preferred is None
    assert result.to_json()["base"]["error"] == result.base.error


def test_a_worker_that_raises_does_not_hang_the_comparison(tiny_config, tiny_workers, toxicity, caplog):
    workers = {"base": ExplodingWorker(), "aligned": tiny_workers["aligned"]}
    result = make_comparator(tiny_config, workers, toxicity).run(PROMPT, SETTINGS)
    assert result.done
    # The visitor reads that it failed and an id; the exception's text goes to the server log only.
    assert result.base.error and "internal error" in result.base.error and "boom" not in result.base.error
    error_id = result.base.error.split("error id ")[1].split(";")[0]
    assert any(error_id in r.getMessage() and "boom" in r.getMessage() for r in caplog.records)
    assert result.aligned.error is None


def test_stop_cancels_both_sides(comparator):
    last = None
    for last in comparator.stream(PROMPT, SamplingSettings(max_new_tokens=200), should_stop=lambda: True):
        pass
    for role in ("base", "aligned"):
        assert last.side(role).stop_reason == "cancelled"
        assert last.side(role).new_tokens == 1


def test_request_timeout_stops_both_sides(tiny_config, tiny_workers, toxicity):
    config = with_limits(tiny_config, request_timeout_seconds=0.001)
    result = make_comparator(config, tiny_workers, toxicity).run(PROMPT, SamplingSettings(max_new_tokens=200))
    for role in ("base", "aligned"):
        side = result.side(role)
        assert side.stop_reason == "cancelled"
        assert side.error and "time limit" in side.error


def test_without_a_scorer_answers_still_stream(tiny_config, tiny_workers):
    result = Comparator(tiny_config, by_model_id(tiny_config, tiny_workers), None, "scores unavailable").run(
        PROMPT, SETTINGS
    )
    assert result.base.new_tokens >= 1 and result.aligned.new_tokens >= 1
    assert result.base.reward is None and result.base.toxicity is None
    assert result.preferred == "tie" and result.p_aligned_preferred is None


# --- the stages view: N models at once ---------------------------------------------------------


def stages_comparator(config, workers, toxicity, reward=None):
    scorer = AnswerScorer(config.scoring, toxicity, reward if reward is not None else LengthRewardTestDouble())
    return Comparator(config, workers, scorer)


def last_of(stream):
    last = None
    for last in stream:
        pass
    return last


def test_stages_fill_and_score_every_side_in_stage_order(tiny_stages_config, stage_workers, toxicity):
    reward = LengthRewardTestDouble()
    comparator = stages_comparator(tiny_stages_config, stage_workers, toxicity, reward)
    snapshots = [(s.done, [side.text for side in s.sides]) for s in comparator.stream_stages(PROMPT, SETTINGS)]
    assert len(snapshots) > 3 and snapshots[0][0] is False and snapshots[-1][0] is True
    run = last_of(comparator.stream_stages(PROMPT, SETTINGS))
    assert isinstance(run, StagesRun) and run.done and run.error is None
    models = tiny_stages_config.stages.models
    assert [side.model_id for side in run.sides] == list(models)
    assert [side.model for side in run.sides] == [tiny_stages_config.models[m].name for m in models]
    threshold = tiny_stages_config.scoring.toxicity_threshold
    for side in run.sides:
        assert side.error is None, side.error
        assert side.text and 1 <= side.new_tokens <= SETTINGS.max_new_tokens
        assert side.stop_reason in {"eos", "max_new_tokens"}
        assert side.reward == float(len(side.text))
        assert 0.0 <= side.toxicity <= 1.0 and side.toxic == (side.toxicity >= threshold)
    # Each answer was scored once, with its own prompt.
    assert sorted(pair for call in reward.calls[-3:] for pair in call) == sorted((PROMPT, s.text) for s in run.sides)
    # The pretrained model gets the prompt raw; the chat models their own template.
    base, sft, aligned = run.sides
    assert tiny_stages_config.models[base.model_id].stage == "pretrained"
    assert base.input_text == PROMPT
    for side in (sft, aligned):
        assert side.input_text.endswith("<|im_start|>assistant\n") and PROMPT in side.input_text


@pytest.mark.parametrize("prompt", ["", "  \n", None])
def test_stages_refuse_an_empty_prompt_without_generating(tiny_stages_config, stage_workers, toxicity, prompt):
    spies = {model_id: SpyWorker(worker) for model_id, worker in stage_workers.items()}
    snapshots = list(stages_comparator(tiny_stages_config, spies, toxicity).stream_stages(prompt, SETTINGS))
    assert len(snapshots) == 1
    (run,) = snapshots
    assert run.error and "empty" in run.error
    assert run.done and all(side.text == "" and side.reward is None for side in run.sides)
    assert all(spy.requests == [] for spy in spies.values())


def test_stages_stop_flag_cancels_every_side(tiny_stages_config, stage_workers, toxicity):
    comparator = stages_comparator(tiny_stages_config, stage_workers, toxicity)
    run = last_of(comparator.stream_stages(PROMPT, SamplingSettings(max_new_tokens=200), should_stop=lambda: True))
    assert run.done and len(run.sides) == 3
    for side in run.sides:
        assert side.stop_reason == "cancelled" and side.new_tokens == 1


def test_stages_apply_the_token_cap_and_the_time_limit(tiny_stages_config, stage_workers, toxicity):
    config = with_limits(tiny_stages_config, max_new_tokens=3)
    spies = {model_id: SpyWorker(worker) for model_id, worker in stage_workers.items()}
    run = last_of(
        stages_comparator(config, spies, toxicity).stream_stages(PROMPT, SamplingSettings(max_new_tokens=999))
    )
    for side in run.sides:
        assert spies[side.model_id].requests[0].sampling.max_new_tokens == 3
        assert spies[side.model_id].requests[0].base_mode == "raw"
        assert side.new_tokens <= 3
    config = with_limits(tiny_stages_config, request_timeout_seconds=0.001)
    run = last_of(stages_comparator(config, stage_workers, toxicity).stream_stages(PROMPT, SamplingSettings()))
    for side in run.sides:
        assert side.stop_reason == "cancelled" and side.error and "time limit" in side.error


def test_stages_without_a_stages_section_is_an_error(tiny_config, tiny_workers, toxicity):
    with pytest.raises(ValueError, match="stages"):
        next(make_comparator(tiny_config, tiny_workers, toxicity).stream_stages(PROMPT, SETTINGS))


# --- AnswerScorer and preference ---------------------------------------------------------------


@needs_toxicity
def test_answer_scorer_flags_toxic_text(tiny_config, toxicity):
    scorer = AnswerScorer(tiny_config.scoring, toxicity, LengthRewardTestDouble())
    clean, toxic = scorer.score(
        [("q", "The garden looks lovely today."), ("q", "You are a stupid idiot and I hate you")]
    )
    assert clean.toxic is False and toxic.toxic is True
    assert toxic.toxicity > 0.9 > clean.toxicity
    assert clean.reward == len("The garden looks lovely today.")
    assert scorer.score([]) == []


@needs_toxicity
def test_answer_scorer_reports_a_failing_reward_model(tiny_config, toxicity):
    scorer = AnswerScorer(tiny_config.scoring, toxicity, FailingRewardTestDouble())
    (scores,) = scorer.score([("q", "an answer")])
    assert scores.reward is None
    # The visitor reads that the reward model failed, with an id; the cause goes to the log only.
    assert "reward model" in scores.reward_error and "error id" in scores.reward_error
    assert "out of memory" not in scores.reward_error
    assert set(scores.toxicity_labels) == TOXICITY_LABELS


@needs_toxicity
def test_answer_scorer_from_config_without_a_trained_head(tiny_config):
    scorer = AnswerScorer.from_config(tiny_config)
    assert scorer.reward is None
    assert scorer.reward_error
    (scores,) = scorer.score([("q", "hello")])
    assert scores.reward is None and scores.reward_error == scorer.reward_error
    assert 0.0 <= scores.toxicity <= 1.0


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@pytest.mark.parametrize(
    "r_base, r_aligned, tolerance, preferred, p",
    [
        (0.0, 0.0, 0.05, "tie", 0.5),
        (0.0, 1.0, 0.05, "aligned", sigmoid(1.0)),
        (1.0, 0.0, 0.05, "base", sigmoid(-1.0)),
        (2.0, 2.04, 0.05, "tie", sigmoid(0.04)),
        (2.0, 1.96, 0.05, "tie", sigmoid(-0.04)),
        (0.0, 0.06, 0.05, "aligned", sigmoid(0.06)),
        (0.0, -0.06, 0.05, "base", sigmoid(-0.06)),
        (0.0, 0.5, 0.0, "aligned", sigmoid(0.5)),
        (-3.0, 3.0, 0.05, "aligned", sigmoid(6.0)),
        (0.0, 1.0, 2.0, "tie", sigmoid(1.0)),
        (None, 1.0, 0.05, "tie", None),
        (1.0, None, 0.05, "tie", None),
        (None, None, 0.05, "tie", None),
    ],
)
def test_preference_table(r_base, r_aligned, tolerance, preferred, p):
    got, probability = preference(r_base, r_aligned, tolerance)
    assert got == preferred
    assert probability == (None if p is None else pytest.approx(p))


def test_preference_with_a_huge_margin_does_not_overflow():
    assert preference(1000.0, 0.0, 0.05) == ("base", pytest.approx(0.0))
    assert preference(0.0, 1000.0, 0.05) == ("aligned", pytest.approx(1.0))


class FinalEventSpy(SpyWorker):
    """Remembers how the inner stream ended, even when nobody reads the comparison any more."""

    def __init__(self, inner):
        super().__init__(inner)
        import threading

        self.ended = threading.Event()
        self.final = None

    def stream(self, request, should_stop=lambda: False):
        try:
            for event in self.inner.stream(request, should_stop):
                self.final = event
                yield event
        finally:
            self.ended.set()


def test_closing_the_comparison_stream_cancels_generation(tiny_config, tiny_workers, toxicity):
    spies = {role: FinalEventSpy(worker) for role, worker in tiny_workers.items()}
    stream = make_comparator(tiny_config, spies, toxicity).stream(PROMPT, SamplingSettings(max_new_tokens=250, seed=1))
    next(stream)
    stream.close()
    for spy in spies.values():
        assert spy.ended.wait(60)
    assert {spy.final.stop_reason for spy in spies.values()} == {"cancelled"}, [spy.final for spy in spies.values()]


def test_every_snapshot_renders_and_the_first_complete_one_has_the_preference(comparator):
    # Regression: the snapshot that first said "both done" carried rewards but no probability
    # yet, and the page's preference view crashed on it.
    from demo.ui import views

    for snapshot in comparator.stream(PROMPT, SETTINGS):
        views.preference_html(snapshot)  # must not raise on any intermediate state
        if snapshot.done:
            assert snapshot.p_aligned_preferred is not None
            assert "P(aligned ≻ base)" in views.preference_html(snapshot)


# --- pacing snapshots for the screen -------------------------------------------------------------


def _snapshots(steps):
    """(clock time, base text, aligned done) per step → (the comparison, clock times)."""
    comparison = Comparison(prompt="p", base=SideState("b"), aligned=SideState("a"))
    times = []

    def generate():
        for at, text, aligned_done in steps:
            comparison.base.text, comparison.aligned.done = text, aligned_done
            times.append(at)
            yield comparison

    return generate(), times


def test_paced_shows_at_most_one_snapshot_per_interval_and_always_the_last():
    steps = [
        (0.00, "a", False),
        (0.01, "ab", False),
        (0.02, "abc", False),
        (0.06, "abcd", False),
        (0.07, "abcde", False),
    ]
    snapshots, times = _snapshots(steps)
    shown = [(times[-1], s.base.text) for s in paced(snapshots, 0.05, clock=lambda: times[-1])]
    assert shown == [(0.00, "a"), (0.06, "abcd"), (0.07, "abcde")]


def test_paced_never_holds_back_a_finished_side():
    steps = [(0.00, "a", False), (0.01, "ab", True), (0.02, "abc", True)]
    snapshots, times = _snapshots(steps)
    shown = [(s.base.text, s.aligned.done) for s in paced(snapshots, 10.0, clock=lambda: times[-1])]
    assert shown == [("a", False), ("ab", True), ("abc", True)]


def test_paced_closes_the_stream_it_reads_when_the_reader_leaves():
    closed = []

    def stream():
        try:
            while True:
                yield Comparison(prompt="p", base=SideState("b"), aligned=SideState("a"))
        finally:
            closed.append(True)

    reader = paced(stream(), 0.05)
    next(reader)
    reader.close()
    assert closed == [True]


# --- the meaning-aware toxicity signal and the combined flag -----------------------------------


class _Meaning:
    """A meaning head test double: reads a fixed probability per answer from `by_answer`."""

    feature = "answer_mean"
    threshold = 0.5
    heldout_rates = {"combined": {"fpr": 0.06, "fnr": 0.17}}

    def __init__(self, by_answer):
        self.by_answer = by_answer
        outer = self

        class Backbone:
            def features(self, pairs, kind):
                import numpy as np

                return np.array([[outer.by_answer[answer]] for _, answer in pairs])

        self.backbone = Backbone()

    def score_features(self, features):
        return features[:, 0]


def test_the_flag_is_raised_when_either_signal_passes(tiny_config, toxicity):
    from demo.scoring.scorer import ToxicityScorer

    polite_prejudice = "People from there are just not suited to office work."
    insult = "You absolute idiot, shut up."
    # The rule under test, at round thresholds (models.yaml's are chosen on labelled outputs).
    spec = tiny_config.scoring.model_copy(update={"toxicity_threshold": 0.5, "toxicity_meaning_threshold": 0.5})
    scorer = ToxicityScorer(toxicity, spec, _Meaning({polite_prejudice: 0.9, insult: 0.1, "Hi!": 0.0}))
    rows = scorer.score([("q", polite_prejudice), ("q", insult), ("q", "Hi!")])
    assert rows[0]["toxic"] and rows[0]["toxic_reason"].startswith("meaning") and rows[0]["toxicity"] < 0.5
    assert rows[1]["toxic"] and rows[1]["toxic_reason"].startswith("wording")
    assert not rows[2]["toxic"] and rows[2]["toxic_reason"].startswith("neither")
    assert scorer.calibration() == {"rates": {"combined": {"fpr": 0.06, "fnr": 0.17}}}


def test_a_missing_meaning_head_leaves_the_word_flag_and_says_why(tiny_config, toxicity):
    from demo.scoring.scorer import ToxicityScorer

    scorer = ToxicityScorer(toxicity, tiny_config.scoring, None, "meaning-aware toxicity unavailable: no head")
    row = scorer.score([("q", "You absolute idiot, shut up.")])[0]
    assert row["toxic"] is True and row["toxicity_meaning"] is None
    assert "wording only" in row["toxic_reason"] and "no head" in row["toxic_reason"]


def test_start_comparator_can_load_only_one_pairs_models(tiny_stages_config):
    """The command line runs one pair: only its two models load (a model of another pair that
    cannot load, e.g. an adapter not trained yet, does not stop `compare` or `evaluate`)."""
    from demo.compare import start_comparator

    pair = tiny_stages_config.default_pair
    assert len(tiny_stages_config.served_model_ids()) == 3
    comparator = start_comparator(
        tiny_stages_config, worker_mode="thread", with_scorer=False, model_ids=(pair.base, pair.aligned)
    )
    try:
        assert set(comparator.workers) == {pair.base, pair.aligned}
        assert comparator.wait_ready(120) == {pair.base: True, pair.aligned: True}
    finally:
        comparator.close()
