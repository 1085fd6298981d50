"""The hand-written preference pairs the reward head learns from, and their held-out split.

Pairs live in `data/preferences/written/part_*.jsonl`, one JSON object per line in the TRL
preference format plus metadata: {"prompt", "chosen", "rejected", "category", "aspect", "flaw"}.

The split is by prompt, never by pair: every pair that shares a prompt lands on the same side, so
a test prompt is never seen in training. It is stratified by category: within each category the
prompts are ordered by their sha256 and the first 15% go to test, so every category is held out
in proportion and the split is identical on every run (no random state). `write_split`
materialises it as `train.jsonl` / `test.jsonl` for TRL or anyone else.

`unseen.jsonl` was written separately and is only for the final measurement: it is loaded by
`load_unseen` and never enters a split. `independent/heldout.jsonl` (`load_independent`) was
written by another writer to another brief (shorter-better answers, one wrong fact, one unsafe
step, an overconfident rejected answer): the measurement the reward model card leads with.

Part D's rejected answers often wear markdown ("## Title", bold bullets) while its chosen answers
are plain, so markdown alone would predict its labels; `strip_markdown` gives the plain variant
a trainer can add so that the shortcut stops paying.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from .paths import DATA_DIR

PREFERENCES_DIR = DATA_DIR / "preferences"
WRITTEN_GLOB = "written/part_*.jsonl"
TEST_FRACTION = 0.15
_FIELDS = ("prompt", "chosen", "rejected", "category", "aspect", "flaw")
_REQUIRED_TEXT = ("chosen", "rejected", "category", "aspect", "flaw")


class PreferenceDataError(ValueError):
    """A preference file is missing, or one of its lines is not a valid pair."""


@dataclass(frozen=True)
class PreferencePair:
    """One comparison: for `prompt`, a person prefers `chosen` over `rejected`."""

    prompt: str
    chosen: str
    rejected: str
    category: str
    aspect: str
    flaw: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


@dataclass(frozen=True)
class PreferenceSplit:
    train: tuple[PreferencePair, ...]
    test: tuple[PreferencePair, ...]


def parse_pair(line: str, where: str) -> PreferencePair:
    """One JSONL line → a pair; `where` ("file:line") makes the error findable."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise PreferenceDataError(f"{where}: not valid JSON ({error.msg})") from None
    if not isinstance(row, dict):
        raise PreferenceDataError(f"{where}: expected a JSON object")
    missing = [field for field in _FIELDS if not isinstance(row.get(field), str)]
    if missing:
        raise PreferenceDataError(f"{where}: missing or non-string field(s) {missing}")
    # The prompt may be empty (a bare-text comparison); the answers and labels may not.
    empty = [field for field in _REQUIRED_TEXT if not row[field].strip()]
    if empty:
        raise PreferenceDataError(f"{where}: empty field(s) {empty}")
    if row["chosen"] == row["rejected"]:
        raise PreferenceDataError(f"{where}: chosen and rejected are the same text")
    return PreferencePair(**{field: row[field] for field in _FIELDS})


def load_pairs(path: Path) -> list[PreferencePair]:
    """All pairs of one JSONL file, in file order; blank lines are skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PreferenceDataError(f"{path}: preference file not found") from None
    return [
        parse_pair(line, f"{path}:{number}") for number, line in enumerate(text.splitlines(), start=1) if line.strip()
    ]


def written_parts(root: Path = PREFERENCES_DIR) -> list[Path]:
    """The hand-written part files, in name order (part_a, part_b, ...)."""
    parts = sorted(Path(root).glob(WRITTEN_GLOB))
    if not parts:
        raise PreferenceDataError(f"no preference data found: expected {Path(root) / WRITTEN_GLOB}")
    return parts


def load_written(root: Path = PREFERENCES_DIR) -> list[PreferencePair]:
    return [pair for part in written_parts(root) for pair in load_pairs(part)]


def load_unseen(root: Path = PREFERENCES_DIR) -> list[PreferencePair]:
    """The independently written pairs kept for the final measurement only."""
    return load_pairs(Path(root) / "unseen.jsonl")


def load_independent(root: Path = PREFERENCES_DIR) -> list[PreferencePair]:
    """The independently written held-out set. Its rows name the kind of flaw in `type`
    (shorter_better, subtle_fact, unsafe_step, overconfident, other); it is read into `flaw`."""
    path = Path(root) / "independent" / "heldout.jsonl"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise PreferenceDataError(f"{path}: preference file not found") from None
    pairs = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        if "flaw" not in row and isinstance(row.get("type"), str):
            row["flaw"] = row.pop("type")
        pairs.append(parse_pair(json.dumps(row), f"{path}:{number}"))
    return pairs


_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+", re.M)
# Numbered markers stay: a prompt may ask for a numbered list, and then they are content.
_MD_BULLET = re.compile(r"^(\s*)[-*+]\s+", re.M)
_MD_EMPHASIS = re.compile(r"(\*\*|__|(?<!\w)\*(?!\*))(?=\S)(.+?)(?<=\S)(?:\*\*|__|\*(?!\w))")
_MD_TABLE_RULE = re.compile(r"^[ \t]*\|?[ \t:|-]*-[ \t:|-]*\|?[ \t]*(?:\n|$)", re.M)


def strip_markdown(text: str) -> str:
    """The text without markdown dress: headings become plain lines, bullet markers,
    bold/italic marks and table rules go, table cells are joined by commas. The words stay."""
    text = _MD_TABLE_RULE.sub("", text)
    text = _MD_HEADING.sub("", text)
    text = _MD_BULLET.sub(r"\1", text)
    text = _MD_EMPHASIS.sub(r"\2", text)
    lines = []
    for line in text.splitlines():
        if line.strip().startswith("|") and line.strip().endswith("|"):
            line = ", ".join(cell.strip() for cell in line.strip().strip("|").split("|"))
        lines.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def has_markdown(text: str) -> bool:
    return strip_markdown(text) != text.strip()


def plain_variant(pair: PreferencePair) -> PreferencePair | None:
    """The pair with both answers markdown-stripped, or None when neither answer had markdown."""
    chosen, rejected = strip_markdown(pair.chosen), strip_markdown(pair.rejected)
    if (chosen, rejected) == (pair.chosen.strip(), pair.rejected.strip()) or chosen == rejected:
        return None
    return replace(pair, chosen=chosen, rejected=rejected)


def prompt_key(prompt: str) -> str:
    """Prompts that differ only in case, spacing or Unicode form count as the same prompt."""
    return " ".join(unicodedata.normalize("NFKC", prompt).casefold().split())


def split_position(prompt: str) -> float:
    """A stable number in [0, 1) from the prompt's sha256: the prompt's place in the split order."""
    digest = hashlib.sha256(prompt_key(prompt).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def test_prompt_keys(pairs: Iterable[PreferencePair], test_fraction: float = TEST_FRACTION) -> frozenset[str]:
    """The prompt keys held out: per category, the `test_fraction` with the lowest position."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    category_of: dict[str, str] = {}
    for pair in pairs:
        # A prompt reused under two categories is placed once, by its first category.
        category_of.setdefault(prompt_key(pair.prompt), pair.category)
    by_category: dict[str, list[str]] = {}
    for key, category in category_of.items():
        by_category.setdefault(category, []).append(key)
    held_out: set[str] = set()
    for keys in by_category.values():
        ordered = sorted(keys, key=lambda key: (split_position(key), key))
        held_out.update(ordered[: int(test_fraction * len(ordered) + 0.5)])
    return frozenset(held_out)


def split_pairs(pairs: Iterable[PreferencePair], test_fraction: float = TEST_FRACTION) -> PreferenceSplit:
    """Held-out split by prompt, stratified by category; input order is kept on both sides."""
    pairs = list(pairs)
    held_out = test_prompt_keys(pairs, test_fraction)
    train = tuple(pair for pair in pairs if prompt_key(pair.prompt) not in held_out)
    test = tuple(pair for pair in pairs if prompt_key(pair.prompt) in held_out)
    return PreferenceSplit(train=train, test=test)


def write_jsonl(pairs: Sequence[PreferencePair], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # newline="\n" so the committed file is byte-identical on every platform.
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for pair in pairs:
            handle.write(pair.to_json() + "\n")


# The first batch of parts was split together; every later part is split on its own, so adding
# a part never moves an existing pair across the split (the committed test pairs stay test pairs).
FIRST_BATCH = ("part_a", "part_b", "part_c")


def split_written(root: Path = PREFERENCES_DIR, test_fraction: float = TEST_FRACTION) -> PreferenceSplit:
    """The held-out split of the written parts: the first batch jointly, each later part alone."""
    parts = written_parts(root)
    batches = [[p for p in parts if p.stem in FIRST_BATCH]] + [[p] for p in parts if p.stem not in FIRST_BATCH]
    train: list[PreferencePair] = []
    test: list[PreferencePair] = []
    for batch in batches:
        if batch:
            split = split_pairs([pair for part in batch for pair in load_pairs(part)], test_fraction)
            train += split.train
            test += split.test
    return PreferenceSplit(train=tuple(train), test=tuple(test))


def write_split(root: Path = PREFERENCES_DIR, test_fraction: float = TEST_FRACTION) -> PreferenceSplit:
    """Regenerate `train.jsonl` and `test.jsonl` from the written parts (same bytes each run)."""
    split = split_written(root, test_fraction)
    write_jsonl(split.train, Path(root) / "train.jsonl")
    write_jsonl(split.test, Path(root) / "test.jsonl")
    return split


def counts(pairs: Iterable[PreferencePair], field: str) -> dict[str, int]:
    """How many pairs have each value of a metadata field, most common first."""
    return dict(Counter(getattr(pair, field) for pair in pairs).most_common())
