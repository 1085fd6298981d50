"""Pure functions from comparison state to the HTML/Markdown the page shows.

Everything a model or a user wrote is passed through `html.escape` before it is placed in markup,
so `<script>`, `onerror=`, `javascript:` links and iframes in an answer are shown as text and
never run. Tests call these functions directly; no browser is needed.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..config import AppConfig, KerasBiLSTMToxicity, ModelSpec, StagesSpec, TrainedHeadReward
from ..paths import EXAMPLES_DIR
from ..scoring.reward_head import read_head_metadata
from ..scoring.reward_inputs import RewardUnavailable
from ..scoring.toxicity_head import BLIND_SPOTS
from ..session import Comparison, ScoreKey, SideState

ROLE_LABELS = {"base": "Base model", "aligned": "Aligned model"}
STAGE_LABELS = {"pretrained": "Base model", "sft": "SFT model", "preference-tuned": "Aligned model"}


def escape(text: str | None) -> str:
    return html.escape(text or "", quote=True)


def answer_html(side: SideState, *, streaming: bool) -> str:
    """The answer as escaped, whitespace-preserving text, with error or progress notes."""
    parts = []
    if side.error:
        parts.append(f'<div class="demo-error" role="alert">⚠️ {escape(side.error)}</div>')
    if side.text:
        parts.append(f'<div class="demo-answer">{escape(side.text)}</div>')
    elif streaming and not side.error:
        parts.append('<div class="demo-waiting">…</div>')
    return "".join(parts)


def stats_text(side: SideState) -> str:
    if not side.new_tokens:
        return ""
    parts = [f"{side.new_tokens} tokens"]
    if side.seconds:
        parts.append(f"{side.seconds:.2f} s")
    if side.tokens_per_second:
        parts.append(f"{side.tokens_per_second:.0f} tok/s")
    if side.first_token_seconds is not None:
        parts.append(f"first token {side.first_token_seconds * 1000:.0f} ms")
    if side.stop_reason:
        parts.append(
            {
                "eos": "ended by the model",
                "stop_sequence": "stop rule",
                "max_new_tokens": "token limit",
                "cancelled": "stopped",
            }[side.stop_reason]
        )
    return " · ".join(parts)


def scores_html(side: SideState, threshold: float, calibration: dict | None = None) -> str:
    """Reward, toxicity with its flag and top labels, under one answer; with a meaning-aware
    signal, both signals, why the flag is what it is, and the flag's held-out error rates."""
    if side.toxicity is None and side.reward is None:
        return ""
    reward = (
        f"<b>{side.reward:+.2f}</b>"
        if side.reward is not None
        else f'<span title="{escape(side.reward_error)}">unavailable</span>'
    )
    flag = (
        '<span class="demo-flag demo-toxic">⚠ toxic</span>'
        if side.toxic
        else '<span class="demo-flag demo-clean">not flagged</span>'
    )
    labels = sorted((side.toxicity_labels or {}).items(), key=lambda kv: -kv[1])[:3]
    label_text = ", ".join(f"{escape(name)} {p:.2f}" for name, p in labels)
    meaning = side.extra_scores.get(ScoreKey.TOXICITY_MEANING)
    reason = side.extra_scores.get(ScoreKey.TOXIC_REASON)
    if ScoreKey.TOXIC_REASON in side.extra_scores:
        signal = "n/a" if meaning is None else f"<b>{meaning:.2f}</b>"
        flag = flag.replace("<span ", f'<span title="{escape(reason)}" ', 1)
        toxicity_line = (
            f"<div>Toxicity: {flag} wording <b>{side.toxicity:.2f}</b> · meaning {signal} "
            f'<span class="demo-muted">(flagged when either signal reaches its threshold: {escape(reason)}; '
            f"top labels: {label_text})</span></div>"
        )
    else:
        toxicity_line = (
            f"<div>Toxicity: <b>{side.toxicity:.2f}</b> {flag} "
            f'<span class="demo-muted">(threshold {threshold:.2f}; top labels: {label_text})</span></div>'
        )
    toxicity = (calibration or {}).get("toxicity") or {}
    rates = toxicity.get("rates", {}).get("combined")
    point = toxicity.get("rates_measured_at")
    which = (
        "this flag is"
        if point is None
        else f"the flag at wording {point['wording']:.2f} / meaning {point['meaning']:.2f} "
        "(the head's own operating point, not the thresholds served) is"
    )
    rates_line = (
        f'<div class="demo-muted">On held-out texts written elsewhere {which} raised on '
        f"{rates['fpr']:.0%} of harmless texts and misses {rates['fnr']:.0%} of toxic ones.</div>"
        if rates and ScoreKey.TOXIC_REASON in side.extra_scores
        else ""
    )
    return (
        f'<div class="demo-scores"><div>Reward: {reward}</div>{toxicity_line}{rates_line}'
        f"{own_outputs_line(toxicity.get('ours'))}</div>"
    )


def own_outputs_line(ours: dict | None) -> str:
    """The flag's error rates on our models' own answers, labelled blind (AI feedback)."""
    if not ours or ours.get("recall") is None:
        return ""
    return (
        '<div class="demo-muted">On our models\' own outputs, labelled blind by independent language-model '
        f"labellers (AI feedback; {ours['n_clean_continuations'] + ours['n_clean_answers'] + ours['n_toxic']} "
        f"held-out texts): flags {ours['false_positive_rate_continuations']:.0%} of non-toxic continuations and "
        f"{ours['false_positive_rate_answers']:.0%} of answers to ordinary instructions, catches "
        f"{ours['recall']:.0%} of toxic ones.</div>"
    )


def side_html(side: SideState, threshold: float, calibration: dict | None = None, *, streaming: bool) -> str:
    """One side as a single block: the answer, its progress line, then its scores."""
    stats = stats_text(side)
    return (
        answer_html(side, streaming=streaming and not side.done)
        + (f'<div class="demo-muted">{escape(stats)}</div>' if stats else "")
        + scores_html(side, threshold, calibration)
    )


def preference_html(comparison: Comparison, calibration: dict | None = None) -> str:
    p = comparison.p_aligned_preferred
    if not comparison.done or p is None:
        return ""
    winner = {
        "aligned": "the <b>aligned</b> answer",
        "base": "the <b>base</b> answer",
        "tie": "neither (a tie)",
    }[comparison.preferred]
    width = int(round(p * 100))
    return (
        '<div class="demo-preference">'
        f"The reward model prefers {winner}: "
        f"P(aligned ≻ base) = σ(r<sub>aligned</sub> − r<sub>base</sub>) = <b>{p:.2f}</b>"
        f'<div class="demo-bar"><div style="width:{width}%"></div></div>'
        f"{_judge_accuracy_note(calibration)}"
        "</div>"
    )


def _judge_accuracy_note(calibration: dict | None) -> str:
    reward = (calibration or {}).get("reward") or {}
    accuracy, ours = reward.get("independent_accuracy"), reward.get("ours")
    notes = []
    if accuracy is not None:
        notes.append(
            "On preference pairs written independently of its training data, "
            f"this reward model picks the better answer {accuracy:.0%} of the time."
        )
    if ours:
        notes.append(
            f"On our models' own answers it picks the answer held-out language-model labellers prefer "
            f"(AI feedback) on {ours['agreement']:.0%} of {ours['pairs']} decisive pairs: read it as a rough guide."
        )
    return "".join(f'<div class="demo-muted">{note}</div>' for note in notes)


# Characters per token of English text for these tokenizers, measured on the instruction suite
# (used only for the estimate shown while typing; the limit itself is checked in tokens).
CHARS_PER_TOKEN = 4.0


def prompt_size_note(text: str, limits) -> str:
    """Under the prompt: its length against the character limit, an estimate in tokens against
    the token limit, and a warning when a paste hit the character limit (the box cuts it)."""
    chars, tokens = len(text), round(len(text) / CHARS_PER_TOKEN)
    note = (
        f"{chars:,} / {limits.max_prompt_chars:,} characters · about {tokens:,} tokens "
        f"(limit {limits.max_prompt_tokens:,} tokens)"
    )
    if chars >= limits.max_prompt_chars:
        note += f" · ⚠️ the box stops at {limits.max_prompt_chars:,} characters: anything pasted beyond was cut"
    elif tokens > limits.max_prompt_tokens:
        note += " · ⚠️ probably over the token limit: shorten it"
    return note


def adjusted_settings_note(values: dict, settings, limits) -> str:
    """One sentence naming each setting the server changed (clamped to its range, or a seed
    wrapped into it), so an out-of-range value is never applied silently."""
    from ..settings import SETTINGS_BY_NAME

    changes = []
    for name, given in values.items():
        used = getattr(settings, name)
        if given is None or given == "":
            continue
        try:
            same = float(given) == float(used)
        except (TypeError, ValueError):
            same = False
        if not same:
            setting = SETTINGS_BY_NAME[name]
            low, high = setting.low, setting.upper(limits)
            changes.append(f"{setting.label.split(' (')[0]} {given} is outside {low:.10g}–{high:.10g}: used {used}")
    return ("Adjusted: " + "; ".join(changes) + ".") if changes else ""


def model_header(role: str, spec: ModelSpec) -> str:
    """A side's heading: its role, and its stage where that is not what the role implies (the
    'before' side of our SFT vs our RLHF is an SFT model, not a base model)."""
    label = ROLE_LABELS[role]
    if role == "base" and spec.stage != "pretrained":
        label = f"Before: {STAGE_LABELS[spec.stage]}"
    elif role == "aligned" and spec.stage == "sft":
        label = "After: SFT model"
    return f"### {label}: {spec.name}\n{spec.parameters} parameters · {spec.training}"


def stage_header(spec: ModelSpec) -> str:
    """A stages column's heading: the model, then its stage."""
    return f"### {spec.name}\nStage: **{spec.stage}** · {spec.parameters} parameters · {spec.training}"


def stages_intro(stages: StagesSpec) -> str:
    """The stages tab's heading: its label, its note, and how to read the scores."""
    note = f"\n\n**Note:** {escape(stages.note)}" if stages.note else ""
    return (
        f"### {escape(stages.label)}{note}\n\nThe same prompt goes to every model at once; each answer is "
        "scored by the same reward model and toxicity flag as in the Compare tab. Rewards mean something "
        "only next to each other, for the same prompt."
    )


def trained_head_note(reward: TrainedHeadReward) -> str:
    """What the judge is and how far to trust it, with the figures its head file records."""
    try:
        metadata = read_head_metadata(reward.head_path)
    except (RewardUnavailable, OSError):
        metadata = {}

    def share(key: str) -> str:
        try:
            return f"{float(metadata[key]):.1%}"
        except (KeyError, ValueError):
            return "?"

    pairs = metadata.get("train_pairs", "?")
    return (
        f"**Reward model: {reward.name}** ({reward.license}). A small head trained by this project on "
        f"{pairs} hand-written preference pairs, reading a middle block of SmolLM2-135M-Instruct averaged over "
        f"the answer (run in onnxruntime, {reward.precision}); on {metadata.get('independent_pairs', '?')} pairs "
        f"written independently of its training data it ranks {share('independent_accuracy')} right "
        f'("the longer answer wins": 40%); {share("heldout_accuracy")} on pairs by the same writers, which '
        "measures their style as much as quality. Demonstration scale: it reads SmolLM2's hidden states, so "
        "where it compares SmolLM2-Instruct with another model it may favour SmolLM2's style; weakest on one "
        "wrong fact in fluent text and one unsafe step in sensible advice (see its model card); English only."
    )


def model_card_markdown(config: AppConfig, loaded: dict, pair_id: str | None = None) -> str:
    """Model cards: family, size, format, how it runs here, license; then the scorers."""
    pair = config.pair(pair_id)
    rows = ["| | Base | Aligned |", "|---|---|---|"]
    specs = config.pair_models(pair.id)
    info = {role: loaded.get(getattr(pair, role)) for role in specs}

    def row(label, value):
        rows.append(f"| {label} | {value(specs['base'], info['base'])} | {value(specs['aligned'], info['aligned'])} |")

    row("Model", lambda s, i: s.name)
    row("Stage", lambda s, i: s.stage)
    row("Family", lambda s, i: s.family)
    row("Parameters", lambda s, i: s.parameters)
    row("Training", lambda s, i: s.training)
    row("Shipped weights", lambda s, i: s.weights_format)
    row("Runs here as", lambda s, i: f"{i.backend} {i.precision} on {i.device}" if i else "loading…")
    row("License", lambda s, i: f"[{s.license}]({s.license_url})" if s.license_url else s.license)
    reward = config.scoring.reward
    toxicity = config.scoring.toxicity
    reward_note = (
        trained_head_note(reward)
        if isinstance(reward, TrainedHeadReward)
        else f"**Reward model: {reward.name}** ({reward.license})."
    )
    toxicity_note = (
        f"**Toxicity: {toxicity.name}** ({toxicity.license}). A small BiLSTM trained on the Jigsaw "
        "toxic-comment data; it reads only the last 100 words and reacts to keywords "
        '("kill -9" scores ≈ 0.3 toxic), so read the per-label scores, not just the flag.'
        if isinstance(toxicity, KerasBiLSTMToxicity)
        else f"**Toxicity: {toxicity.name}** ({toxicity.license})."
    )
    meaning = config.scoring.toxicity_meaning
    if meaning is not None:
        toxicity_note += (
            f"\n\n**Meaning-aware toxicity: {meaning.name}** ({meaning.license}). A linear head trained by "
            "this project on 640 texts (stereotypes in polite words, insults, threats, and hard negatives "
            'such as quoting to criticise, "kill -9", medical and legal language), reading the judge\'s '
            "block-20 features of the answer. On 300 held-out texts written by another hand: implicit-hate "
            "AUC 0.95 (the BiLSTM 0.69). The flag is raised when either signal reaches the threshold."
        )
    caveat = (f"**Note:** {escape(pair.note)}\n\n" if pair.note else "") + (
        f"**Two different families.** {specs['base'].family} vs {specs['aligned'].family}: this is "
        "not a controlled same-family comparison. It mirrors the InstructGPT paper's headline: "
        "a much smaller aligned model (1.3B) was preferred over a much larger base model (175B)."
        if specs["base"].family != specs["aligned"].family
        else f"**One family** ({escape(specs['base'].family)}): the same model at two training stages "
        f"({specs['base'].stage} → {specs['aligned'].stage}), so what differs is what training did."
    )
    return "\n".join(rows) + "\n\n" + caveat + "\n\n" + reward_note + "\n\n" + toxicity_note


LEGEND = (
    "**Reward** — the raw score of the reward model; only differences between two answers to the "
    "same prompt mean anything. **P(aligned ≻ base)** — the Bradley–Terry probability that a "
    "labeller prefers the aligned answer, the quantity the reward model was trained on. "
    '**Toxicity** — the highest label probability of the toxicity classifier ("wording"), and, where '
    "configured, a meaning-aware head on the judge's backbone (SmolLM2's hidden states) (\"meaning\"); flagged "
    "when either reaches the threshold from models.yaml. "
    f"*Wording is blind to:* {BLIND_SPOTS['bilstm']}. *Meaning is blind to:* {BLIND_SPOTS['meaning']}."
)


@dataclass(frozen=True)
class ExampleGroup:
    id: str
    title: str
    description: str
    order: int
    prompts: tuple[str, ...]


def load_examples(folder: Path = EXAMPLES_DIR) -> list[ExampleGroup]:
    """Example prompts from examples/*.yaml, in display order."""
    groups = []
    for path in sorted(folder.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        groups.append(
            ExampleGroup(
                id=path.stem,
                title=str(data["title"]),
                description=str(data["description"]),
                order=int(data["order"]),
                prompts=tuple(str(p) for p in data["prompts"]),
            )
        )
    return sorted(groups, key=lambda g: g.order)


def loading_status(comparator) -> tuple[str, bool]:
    """A status line per model while models load; True once every model is ready (a failed one
    is loaded again at its next request, so the line keeps being refreshed)."""
    parts, settled = [], True
    for worker in comparator.workers.values():
        name = escape(worker.spec.name)
        if worker.state == "loading":
            settled = False
            parts.append(f"⏳ {name}: {escape(worker.loading_note)} …")
        elif worker.state == "failed":
            settled = False
            parts.append(f"❌ {name} unavailable: {escape(worker.error)}")
        else:
            parts.append(
                f"✅ {name} ready ({worker.info.backend} {worker.info.precision}, loaded in {worker.info.load_seconds:.1f} s)"
            )
    if not comparator.scorer_ready.is_set():
        settled = False
        parts.append("⏳ scorers (reward model, toxicity): loading …")
    elif comparator.scoring_error:
        parts.append(f"❌ scores unavailable: {escape(comparator.scoring_error)}")
    elif comparator.scorer is not None and comparator.scorer.reward_error:
        parts.append(f"⚠️ reward unavailable: {escape(comparator.scorer.reward_error)}")
    return "<br>".join(parts), settled


def storage_note(persistent: bool) -> str:
    """Said on the page when the cache is lost at restart (a Space without persistent storage)."""
    if persistent:
        return ""
    return (
        "ℹ️ This host has no persistent storage: the converted models (and votes) do not "
        "survive a restart, so every restart rebuilds them (a few minutes)."
    )
