"""Where `python -m demo align` writes: never over the shipped artefacts unless told to, and each
step reads an earlier step's artefact from its own run when that step ran there."""

from __future__ import annotations

from pathlib import Path

from demo.paths import ALIGN_ARTEFACTS_DIR


def test_align_writes_to_the_cache_or_out_dir_and_replaces_the_shipped_only_when_asked(tmp_path, monkeypatch):
    from demo.training.align.pipeline import SHIPPED, output_folders

    monkeypatch.setenv("DEMO_CACHE_DIR", str(tmp_path / "cache"))
    default = output_folders(None, replace_shipped=False)
    assert default.root == tmp_path / "cache" / "trained" / "align"
    assert output_folders(tmp_path / "mine", replace_shipped=False).rlhf == tmp_path / "mine" / "rlhf"
    assert output_folders(None, replace_shipped=True) == SHIPPED
    assert SHIPPED.sft == ALIGN_ARTEFACTS_DIR / "sft" and (SHIPPED.sft / "adapter_model.safetensors").is_file()


def test_a_step_reads_its_own_runs_earlier_step_else_the_shipped_one(tmp_path):
    from demo.training.align.pipeline import SHIPPED, AlignFolders
    from demo.training.align.reward_model import HEAD_FILE

    folders = AlignFolders(tmp_path)
    assert folders.sft_input() == SHIPPED.sft and folders.reward_input() == SHIPPED.reward
    Path(folders.sft).mkdir()
    (folders.sft / "adapter_model.safetensors").write_bytes(b"")
    Path(folders.reward).mkdir()
    (folders.reward / HEAD_FILE).write_bytes(b"")
    assert folders.sft_input() == tmp_path / "sft" and folders.reward_input() == tmp_path / "reward"
