"""The one definition of the sampling settings: name, type, bounds, step, label and help.

`models.yaml`'s `generation:` section gives the defaults; the CLI flags, the page's sliders, the
`/compare` API's signature and the server-side validation and clamp are all derived from
`SETTINGS`, so a new setting is one line here (and a field of `SamplingSettings`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from .errors import UserFacingError


@dataclass(frozen=True)
class SamplingSettings:
    """Shared by both models for one comparison. temperature 0 means greedy decoding."""

    max_new_tokens: int = 128
    temperature: float = 0.7
    top_p: float = 0.95
    repetition_penalty: float = 1.1
    seed: int = 42
    ignore_eos: bool = False  # benchmark only: decode exactly max_new_tokens

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass(frozen=True)
class Setting:
    """One user-facing sampling setting. `high=None` means "the server's limit" (limits.NAME)."""

    name: str
    kind: type  # int or float
    low: float
    high: float | None
    step: float
    label: str
    help: str
    wraps: bool = False  # out-of-range integers wrap around (a seed), instead of being clamped

    def upper(self, limits: Any) -> float:
        return self.high if self.high is not None else float(getattr(limits, self.name))

    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


SEED_MAX = 2**31 - 1

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "max_new_tokens",
        int,
        1,
        None,
        1,
        "Max new tokens",
        "answer length cap in tokens (the server caps it at limits.max_new_tokens)",
    ),
    Setting(
        "temperature", float, 0.0, 2.0, 0.05, "Temperature (0 = greedy)", "sampling temperature; 0 decodes greedily"
    ),
    Setting(
        "top_p",
        float,
        0.01,
        1.0,
        0.05,
        "Top-p",
        "nucleus sampling: keep the smallest set of tokens whose probability reaches top-p",
    ),
    Setting(
        "repetition_penalty",
        float,
        1.0,
        2.0,
        0.05,
        "Repetition penalty",
        "above 1 discourages repeating tokens already in the text",
    ),
    Setting(
        "seed",
        int,
        0,
        SEED_MAX,
        1,
        "Seed (same prompt + seed ⇒ same answers)",
        "random seed; the same prompt and seed give the same answers",
        wraps=True,
    ),
)
SETTINGS_BY_NAME = {setting.name: setting for setting in SETTINGS}
assert set(SETTINGS_BY_NAME) <= {f.name for f in fields(SamplingSettings)}, "every setting is a SamplingSettings field"


class InvalidSetting(UserFacingError, ValueError):
    """A setting sent by a client has the wrong type; the message names it and what is allowed."""


def describe(setting: Setting, limits: Any) -> str:
    kind = "an integer" if setting.kind is int else "a number"
    high = setting.upper(limits)
    return f"{setting.name} must be {kind} from {_number(setting.low)} to {_number(high)}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def coerce(setting: Setting, value: Any, default: float, limits: Any) -> float | int:
    """One client value → a bounded value of the setting's type.

    None means "not given" (the configured default). A number out of range is clamped (a public
    server bounds whatever it is sent); NaN or an infinity falls back to the default. Anything
    else — text, a list, a boolean — is an error naming the setting, not a traceback.
    """
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise InvalidSetting(f"{describe(setting, limits)}; got {value!r}") from None
        else:
            raise InvalidSetting(f"{describe(setting, limits)}; got {type(value).__name__} {value!r}")
    number = float(value)
    if not math.isfinite(number):
        number = float(default)
    if setting.wraps:
        span = int(setting.upper(limits) - setting.low) + 1
        return int(setting.low) + (int(min(max(number, -(2.0**62)), 2.0**62)) - int(setting.low)) % span
    number = min(max(number, setting.low), setting.upper(limits))
    return int(number) if setting.kind is int else number


def settings_from_values(values: Mapping[str, Any], defaults: Any, limits: Any) -> SamplingSettings:
    """Settings for one request from a UI, API or CLI call: each value given (validated and
    clamped), else the configured default from models.yaml's `generation:` section."""
    unknown = set(values) - set(SETTINGS_BY_NAME)
    if unknown:
        raise InvalidSetting(f"unknown setting(s) {sorted(unknown)}; known: {sorted(SETTINGS_BY_NAME)}")
    chosen: dict[str, Any] = {
        setting.name: coerce(setting, values.get(setting.name), getattr(defaults, setting.name), limits)
        for setting in SETTINGS
    }
    return SamplingSettings(**chosen)


def clamp_settings(settings: SamplingSettings, limits: Any) -> SamplingSettings:
    """Server-side bounds on settings built in code (the benchmark, tests): each value clamped
    as a client's would be, NaN and infinities falling back to the default."""
    bounded: dict[str, Any] = {
        s.name: coerce(s, getattr(settings, s.name), getattr(SamplingSettings(), s.name), limits) for s in SETTINGS
    }
    return SamplingSettings(**bounded, ignore_eos=settings.ignore_eos)
