"""A comparison people can share: a link that fills in the same prompt, pair, input format and
settings (seed included) so the page reproduces the same answers, and a Markdown report of a
finished comparison to paste elsewhere. The page and the CLI (`compare --report`) call the same
functions.

A link carries only what the visitor chose (prompt, pair, base format, sampling settings): no
session, address or path. Reading one trusts nothing in it: the pair and format must be
configured values and every setting is validated and clamped as any client's would be.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from .arena.systems import SystemFormat, config_hash
from .config import ROLES, AppConfig
from .generation.formatting import BASE_MODES, BaseMode
from .markdown import code_span, fenced
from .session import Comparison, ScoreKey, SideState
from .settings import SETTINGS, InvalidSetting, SamplingSettings, settings_from_values
from .token_shift import TokenShift, Unavailable

QUERY_KEYS = ("prompt", "pair", "base_format", *(setting.name for setting in SETTINGS))


@dataclass(frozen=True)
class SharedComparison:
    """What a link reproduces."""

    prompt: str
    pair: str
    base_format: BaseMode
    settings: SamplingSettings


def share_query(shared: SharedComparison) -> str:
    """The link's query string (without "?"): every setting spelled out, so a change of the
    configured defaults does not change what an old link reproduces."""
    values: dict[str, object] = {"prompt": shared.prompt, "pair": shared.pair, "base_format": shared.base_format}
    values.update({setting.name: getattr(shared.settings, setting.name) for setting in SETTINGS})
    return urlencode(values)


def read_query(params: Mapping[str, str], config: AppConfig) -> tuple[SharedComparison | None, list[str]]:
    """A link's comparison, or None when it names no prompt; and what was ignored or adjusted in
    it (each a sentence for the page). Never raises on what a link carries."""
    prompt = params.get("prompt")
    if not prompt or not prompt.strip():
        return None, []
    notes: list[str] = []
    limits = config.limits
    if len(prompt) > limits.max_prompt_chars:
        prompt = prompt[: limits.max_prompt_chars]
        notes.append(f"the linked prompt was cut to the {limits.max_prompt_chars:,}-character limit")
    pair_ids = [pair.id for pair in config.pairs]
    pair = params.get("pair") or config.default_pair.id
    if pair not in pair_ids:
        notes.append("the linked pair is not offered here; the default pair is shown")
        pair = config.default_pair.id
    base_format = params.get("base_format") or "raw"
    if base_format not in BASE_MODES:
        notes.append("the linked base format is unknown; raw is used")
        base_format = "raw"
    values = {}
    for setting in SETTINGS:
        if setting.name in params:
            try:
                settings_from_values({setting.name: params[setting.name]}, config.generation, limits)
                values[setting.name] = params[setting.name]
            except InvalidSetting as error:
                notes.append(f"{error}; the default is used")
    settings = settings_from_values(values, config.generation, limits)
    return SharedComparison(prompt, pair, base_format, settings), notes  # type: ignore[arg-type]  # checked against BASE_MODES above


def _scores_line(side: SideState) -> str:
    parts = []
    if side.reward is not None:
        parts.append(f"reward {side.reward:+.2f}")
    if side.toxicity is not None:
        meaning = side.extra_scores.get(ScoreKey.TOXICITY_MEANING)
        toxicity = f"toxicity {side.toxicity:.2f} (wording)"
        if meaning is not None:
            toxicity += f", {meaning:.2f} (meaning)"
        parts.append(toxicity)
        parts.append("**flagged toxic**" if side.toxic else "not flagged")
    if side.new_tokens:
        parts.append(f"{side.new_tokens} tokens in {side.seconds:.2f} s")
    return " · ".join(parts) or "not scored"


def markdown_report(
    comparison: Comparison,
    config: AppConfig,
    settings: SamplingSettings,
    base_format: BaseMode,
    calibration: Mapping | None = None,
    page_url: str | None = None,
) -> str:
    """A finished comparison as Markdown: prompt, both answers with their scores, the token-shift
    summary, settings and the model versions (the configuration hash the leaderboard shows)."""
    pair = config.pair(comparison.pair)
    shared = SharedComparison(comparison.prompt, pair.id, base_format, settings)
    lines = [f"## {pair.label}", "", "**Prompt**", "", fenced(comparison.prompt), ""]
    for role in ROLES:
        side = comparison.side(role)
        spec = config.models[side.model_id]
        system_format: SystemFormat = "chat" if spec.prompt_format == "chat" else base_format
        lines += [f"### {role.capitalize()}: {side.model}", ""]
        lines += [fenced(side.text) if side.text else "_(no answer)_", ""]
        if side.error:
            lines += [f"Error: {side.error}", ""]
        lines += [_scores_line(side), ""]
        if isinstance(side.token_shift, TokenShift):
            shifted = ", ".join(code_span(t) for t in side.token_shift.shifted_texts())
            lines += [f"Token shift: {side.token_shift.summary()}." + (f" Shifted: {shifted}." if shifted else ""), ""]
        elif isinstance(side.token_shift, Unavailable):
            lines += [f"Token shift not shown: {side.token_shift.reason}", ""]
        lines += [
            f"Model: {spec.name} ({spec.stage}; {spec.parameters}; {spec.weights_format}; {spec.license}); "
            f"input {system_format}; configuration hash `{config_hash(config, side.model_id, system_format)}`.",
            "",
        ]
    judge = config.scoring.reward
    accuracy = (calibration or {}).get("reward", {}).get("independent_accuracy")
    if comparison.p_aligned_preferred is not None:
        lines += [
            f"P(aligned preferred) = {comparison.p_aligned_preferred:.2f} by {getattr(judge, 'name', 'the reward model')}"
            + (f" (pairwise accuracy {accuracy:.0%} on preference pairs written independently)" if accuracy else "")
            + ".",
            "",
        ]
    chosen = ", ".join(f"{setting.name} {getattr(settings, setting.name)}" for setting in SETTINGS)
    lines += [f"Settings: {chosen}; base input {base_format}.", ""]
    if page_url:
        lines.append(f"Reproduce: {page_url}?{share_query(shared)}")
    else:
        lines += [
            "Reproduce from the command line, or open the app with the query below:",
            "",
            fenced(compare_command(shared), "sh"),
            "",
            f"`?{share_query(shared)}`",
        ]
    return "\n".join(lines) + "\n"


def compare_command(shared: SharedComparison) -> str:
    """The command line that reproduces a shared comparison."""
    flags = [f"{setting.flag()} {getattr(shared.settings, setting.name)}" for setting in SETTINGS]
    return " ".join(
        [
            "python -m demo compare",
            f"--pair {shared.pair}",
            f"--base-format {shared.base_format}",
            *flags,
            "--",
            shlex.quote(shared.prompt),
        ]
    )
