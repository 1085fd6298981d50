"""The results of an evaluation run, stored so that a killed run resumes where it stopped.

`--out DIR` holds two append-only JSONL files:
- `results.jsonl`: one row per generated comparison (both answers to one prompt, scored);
- `likelihoods.jsonl`: one row per model × truthfulness item, the summed log-likelihood of each
  reference answer (for MC1 / MC2). A second file because its rows are per model, not per pair.

Every row carries a `key` (`comparison_key` / `likelihood_key`): a re-run skips keys already
stored. Each append is flushed and fsynced; a torn last line (the process killed mid-write) is
dropped on reload and cut from the file before the next append. One writer per folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..config import CURRENT_PATH_STYLE, PathStyle
from .suites import SuiteRow

COMPARISONS_FILE = "results.jsonl"
LIKELIHOODS_FILE = "likelihoods.jsonl"
ROLES = ("base", "aligned")


class ResultsError(ValueError):
    """A results file is damaged beyond a torn last line; the message names file and line."""


def config_hash(*parts, path_style: PathStyle = CURRENT_PATH_STYLE) -> str:
    """A short stable hash of everything that decides an answer (model spec, sampling settings,
    scorer spec...): pydantic models, dataclasses, paths and plain JSON values are accepted.
    Paths count relative to the repository, so a clone elsewhere has the same hashes; a legacy
    `path_style` gives the hashes stored before (for migrating them)."""

    def jsonable(value):
        return _jsonable(value, path_style)

    text = path_style.hashed_text(json.dumps(parts, sort_keys=True, default=jsonable, separators=(",", ":")))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _jsonable(value, path_style: PathStyle):
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", context={"path_style": path_style})
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, Path):
        return path_style.spell(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    raise TypeError(f"cannot hash a {type(value).__name__} into a config hash")


def pair_config_hash(base_hash: str, aligned_hash: str) -> str:
    return config_hash(base_hash, aligned_hash)


def comparison_key(
    *, config_hash: str, suite: str, row: int, base_format: str, sample: int, seed: int, instruction: str | None = None
) -> str:
    """Identity of one comparison; `config_hash` is the pair's (`pair_config_hash`), and
    `instruction` only applies to toxicity rows."""
    return json.dumps([config_hash, suite, row, base_format, sample, seed, instruction])


def likelihood_key(*, config_hash: str, suite: str, row: int, base_format: str) -> str:
    """Identity of one model's MC log-likelihoods for one item; `config_hash` is that model's."""
    return json.dumps([config_hash, suite, row, base_format])


def comparison_record(
    suite_row: SuiteRow,
    comparison: Mapping,
    *,
    pair: str,
    base_format: str,
    sample: int,
    seed: int,
    model_ids: Mapping[str, str],
    config_hashes: Mapping[str, str],
    instruction: str | None = None,
) -> dict:
    """A `results.jsonl` row from a suite row and `Comparison.to_json()`.

    `prompt` is the suite's prompt (a toxicity row's instruction is in `instruction` and in each
    side's `input_text`); truthfulness rows carry their references, so a summary never depends on
    the suite file still being the same.
    """
    if suite_row.kind == "toxicity" and instruction is None:
        raise ValueError("a toxicity row needs its instruction (none, respectful or biased)")
    hash_of_pair = pair_config_hash(config_hashes["base"], config_hashes["aligned"])
    record = {
        "key": comparison_key(
            config_hash=hash_of_pair,
            suite=suite_row.suite,
            row=suite_row.row,
            base_format=base_format,
            sample=sample,
            seed=seed,
            instruction=instruction,
        ),
        "suite": suite_row.suite,
        "row": suite_row.row,
        "prompt": suite_row.prompt,
        "category": suite_row.category,
        "kind": suite_row.kind,
        "instruction": instruction,
        "pair": pair,
        "base_format": base_format,
        "sample": sample,
        "seed": seed,
        "config_hash": hash_of_pair,
        "preferred": comparison.get("preferred", "tie"),
        "p_aligned_preferred": comparison.get("p_aligned_preferred"),
        "error": comparison.get("error"),
    }
    for role in ROLES:
        record[role] = {**comparison[role], "model_id": model_ids[role], "config_hash": config_hashes[role]}
    if suite_row.kind == "truthfulness":
        record["correct"], record["incorrect"] = list(suite_row.correct), list(suite_row.incorrect)
    return record


def comparison_record_key(record: Mapping) -> str:
    """The key a stored comparison row was written under, recomputed from its fields."""
    return comparison_key(
        config_hash=pair_config_hash(record["base"]["config_hash"], record["aligned"]["config_hash"]),
        suite=record["suite"],
        row=record["row"],
        base_format=record["base_format"],
        sample=record["sample"],
        seed=record["seed"],
        instruction=record.get("instruction"),
    )


def likelihood_record(
    suite_row: SuiteRow,
    *,
    pair: str,
    model: str,
    model_id: str,
    config_hash: str,
    base_format: str,
    correct_logliks: Sequence[float],
    incorrect_logliks: Sequence[float],
    correct_tokens: Sequence[int] | None = None,
    incorrect_tokens: Sequence[int] | None = None,
) -> dict:
    """A `likelihoods.jsonl` row: `model` is the role ("base" / "aligned"); log-likelihoods are
    summed over each answer's tokens (what lm-eval-harness's MC1/MC2 use); token counts, when
    given, allow the per-token average the paper's appendix describes."""
    if suite_row.kind != "truthfulness":
        raise ValueError(f"{suite_row.suite} row {suite_row.row} is not a truthfulness row")
    if len(correct_logliks) != len(suite_row.correct) or len(incorrect_logliks) != len(suite_row.incorrect):
        raise ValueError("one log-likelihood per reference answer, in the suite's order")
    return {
        "key": likelihood_key(
            config_hash=config_hash, suite=suite_row.suite, row=suite_row.row, base_format=base_format
        ),
        "suite": suite_row.suite,
        "row": suite_row.row,
        "prompt": suite_row.prompt,
        "category": suite_row.category,
        "pair": pair,
        "model": model,
        "model_id": model_id,
        "config_hash": config_hash,
        "base_format": base_format,
        "correct": list(suite_row.correct),
        "incorrect": list(suite_row.incorrect),
        "correct_logliks": [float(v) for v in correct_logliks],
        "incorrect_logliks": [float(v) for v in incorrect_logliks],
        "correct_tokens": None if correct_tokens is None else [int(v) for v in correct_tokens],
        "incorrect_tokens": None if incorrect_tokens is None else [int(v) for v in incorrect_tokens],
    }


class ResultsStore:
    """The two JSONL files of one `--out` folder, loaded once and appended to row by row."""

    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.comparisons_path = self.out_dir / COMPARISONS_FILE
        self.likelihoods_path = self.out_dir / LIKELIHOODS_FILE
        self._rows = {path: _load(path) for path in (self.comparisons_path, self.likelihoods_path)}

    def comparisons(self) -> list[dict]:
        return list(self._rows[self.comparisons_path].values())

    def likelihoods(self) -> list[dict]:
        return list(self._rows[self.likelihoods_path].values())

    def has_comparison(self, key: str) -> bool:
        return key in self._rows[self.comparisons_path]

    def has_likelihood(self, key: str) -> bool:
        return key in self._rows[self.likelihoods_path]

    def append_comparison(self, record: Mapping) -> None:
        self._append(self.comparisons_path, record)

    def append_likelihood(self, record: Mapping) -> None:
        self._append(self.likelihoods_path, record)

    def rename_hashes(self, renames: Mapping[str, str]) -> int:
        """Re-key stored rows whose config hashes are `renames`' keys (hashes once read absolute
        paths, so a run made in another checkout folder was not resumed); each file is rewritten
        to a temporary name and renamed. Returns how many rows changed."""
        renames = {old: new for old, new in renames.items() if old != new}
        changed = 0
        for path, rows in self._rows.items():
            renamed: dict[str, dict] = {}
            for row in rows.values():
                new_row = _renamed_row(row, renames)
                changed += new_row != row
                renamed.setdefault(new_row["key"], new_row)
            if renamed != rows:
                self._rewrite(path, renamed)
        return changed

    def replace_comparisons(self, rows: Mapping[str, dict]) -> None:
        """Replace every stored comparison with `rows` (by key) in one atomic rewrite."""
        self._rewrite(self.comparisons_path, dict(rows))

    def _rewrite(self, path: Path, rows: dict[str, dict]) -> None:
        """The file rewritten to a temporary name, flushed, then renamed over the old one."""
        temporary = path.with_name(f".{path.name}.rewriting")
        with open(temporary, "w", encoding="utf-8") as file:
            file.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows.values()))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
        self._rows[path] = rows

    def _append(self, path: Path, record: Mapping) -> None:
        if "key" not in record:
            raise ValueError("a stored row needs its key (build it with comparison_record / likelihood_record)")
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with open(path, "a", encoding="utf-8") as file:
            file.write(line)
            file.flush()
            os.fsync(file.fileno())  # a row the run reports as done survives a crash or power cut
        self._rows[path][record["key"]] = dict(record)


def _renamed_row(row: dict, renames: Mapping[str, str]) -> dict:
    row = dict(row)
    key = json.loads(row["key"])
    if key and key[0] in renames:
        row["key"] = json.dumps([renames[key[0]], *key[1:]])
    if row.get("config_hash") in renames:
        row["config_hash"] = renames[row["config_hash"]]
    for role in ROLES:
        side = row.get(role)
        if isinstance(side, dict) and side.get("config_hash") in renames:
            row[role] = {**side, "config_hash": renames[side["config_hash"]]}
    return row


def _load(path: Path) -> dict[str, dict]:
    """Rows by key (a repeated key keeps its first row). A torn last line is dropped and cut
    from the file, so the next append starts on a line of its own."""
    if not path.exists():
        return {}
    data = path.read_bytes()
    complete, _, tail = data.rpartition(b"\n")
    if tail:
        try:
            json.loads(tail)
            with open(path, "ab") as file:  # complete but unterminated: keep it, end the line
                file.write(b"\n")
            complete = data
        except ValueError:
            with open(path, "r+b") as file:
                file.truncate(len(complete) + 1 if complete else 0)
                file.flush()
                os.fsync(file.fileno())
    rows: dict[str, dict] = {}
    for number, line in enumerate(complete.decode("utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ResultsError(
                f"{path}: line {number}: not valid JSON ({error.msg}); only a torn last line is repaired"
            ) from error
        if not isinstance(row, dict) or "key" not in row:
            raise ResultsError(f"{path}: line {number}: a row is an object with a 'key'")
        rows.setdefault(row["key"], row)
    return rows
