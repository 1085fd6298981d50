"""Where alignment changed an answer: the aligned answer teacher-forced through the model before
the alignment step, each token ranked under that model (Lin et al., "The Unlocking Spell on Base
LLMs", 2023).

A token the before model ranks first is *unshifted* (it would have written it too), one in its
top 3 *marginal*, any other *shifted* (a token alignment put there: a style marker, a refusal, a
transition).

A control goes with it: the same answer ranked under the model that wrote it. Sampled at a
temperature, a small model writes many tokens outside its own top 3 (Gemma 3 270M at 0.7: about
half), and those count as "shifted" under any other model too; the paper decoded greedily. The
difference between the two shares is what the alignment step changed. Tokens the before model may never emit (models.yaml `suppress_tokens`) are left out
of its ranking, as they are left out of its generation.

The answer is re-tokenized with the before model's tokenizer, so the view means something only
where both models share it (one family); `ModelRunner.token_shift` runs the pass, the functions
here are pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

ShiftKind = Literal["unshifted", "marginal", "shifted"]
SHIFT_KINDS: tuple[ShiftKind, ...] = ("unshifted", "marginal", "shifted")
MARGINAL_MAX_RANK = 3  # ranks 2..3 are marginal, as in the paper
TOP_K = 3  # the before model's choices shown for each token


def shift_kind(rank: int) -> ShiftKind:
    """The paper's three classes of a token by its rank under the before model."""
    if rank <= 1:
        return "unshifted"
    return "marginal" if rank <= MARGINAL_MAX_RANK else "shifted"


def kind_share(ranks: Sequence[int], kind: ShiftKind) -> float:
    """The share of `ranks` in one class (0 for no tokens)."""
    return sum(shift_kind(rank) == kind for rank in ranks) / len(ranks) if ranks else 0.0


@dataclass(frozen=True)
class ShiftedToken:
    """One answer token: its text, its rank under the before model (1 = its first choice), and
    the before model's top choices there as (text, probability)."""

    text: str
    rank: int
    top: tuple[tuple[str, float], ...]

    @property
    def kind(self) -> ShiftKind:
        return shift_kind(self.rank)

    def to_json(self) -> dict:
        return {"text": self.text, "rank": self.rank, "top": [[text, round(p, 4)] for text, p in self.top]}


@dataclass(frozen=True)
class TokenShift:
    """The token-shift view of one answer under one before model."""

    tokens: tuple[ShiftedToken, ...]
    before_model: str
    seconds: float
    # The control: each token's rank under the model that wrote the answer (`with_self`).
    self_ranks: tuple[int, ...] | None = None
    self_model: str | None = None

    def share(self, kind: ShiftKind) -> float:
        return kind_share([token.rank for token in self.tokens], kind)

    def self_share(self, kind: ShiftKind) -> float | None:
        return None if self.self_ranks is None else kind_share(self.self_ranks, kind)

    def with_self(self, own: TokenShift) -> TokenShift:
        """This view with the control: `own` is the same answer ranked under the model that wrote
        it. Where the two tokenizations agree (one family) ranks pair up one to one; where they
        differ (a base model reads a lead space) each token takes the rank of the first `own`
        token that ends after its start."""
        if [t.text for t in self.tokens] == [t.text for t in own.tokens]:
            ranks = [t.rank for t in own.tokens]
        else:
            ends, position = [], 0
            for token in own.tokens:
                position += len(token.text)
                ends.append(position)
            ranks, index, position = [], 0, 0
            for token in self.tokens:
                while index + 1 < len(ends) and ends[index] <= position:
                    index += 1
                ranks.append(own.tokens[index].rank if own.tokens else 1)
                position += len(token.text)
        return replace(
            self, self_ranks=tuple(ranks), self_model=own.before_model, seconds=max(self.seconds, own.seconds)
        )

    @property
    def shifted_share(self) -> float:
        return self.share("shifted")

    @property
    def marginal_share(self) -> float:
        return self.share("marginal")

    @property
    def text(self) -> str:
        return "".join(token.text for token in self.tokens)

    def summary(self) -> str:
        """The shares in one phrase (the page's summary line and the report's)."""
        unshifted = 1.0 - self.shifted_share - self.marginal_share
        text = (
            f"{self.shifted_share:.0%} shifted, {self.marginal_share:.0%} marginal, {unshifted:.0%} unshifted "
            f"of {len(self.tokens)} tokens under {self.before_model}"
        )
        own = self.self_share("shifted")
        if own is not None:
            text += (
                f"; {self.self_model} itself ranks {own:.0%} of its own tokens outside its top {MARGINAL_MAX_RANK} "
                f"(sampling alone), so the step changed about {(self.shifted_share - own) * 100:+.0f} points"
            )
        return text

    def shifted_texts(self, count: int = 8) -> list[str]:
        """The shifted tokens' texts in answer order, stripped, each once, at most `count`."""
        seen: list[str] = []
        for token in self.tokens:
            text = token.text.strip()
            if token.kind == "shifted" and text and text not in seen:
                seen.append(text)
        return seen[:count]

    def to_json(self) -> dict:
        """The `token_shift` key of /compare and `compare --token-shift --json` (with the control,
        `self_shifted_share`, `self_marginal_share` and `self_model` too)."""
        data = {
            "tokens": [token.to_json() for token in self.tokens],
            "shifted_share": round(self.shifted_share, 4),
            "marginal_share": round(self.marginal_share, 4),
            "before_model": self.before_model,
            "seconds": round(self.seconds, 4),
        }
        if self.self_ranks is not None:
            data["self_shifted_share"] = round(self.self_share("shifted") or 0.0, 4)
            data["self_marginal_share"] = round(self.self_share("marginal") or 0.0, 4)
            data["self_model"] = self.self_model
        return data


@dataclass(frozen=True)
class Unavailable:
    """Why a side has no token-shift view (two families, a failed answer, a remote model)."""

    reason: str

    def to_json(self) -> dict:
        return {"unavailable": self.reason}


ShiftResult = TokenShift | Unavailable


def ranks_and_top(
    logits: np.ndarray, targets: Sequence[int], banned: Sequence[int] = (), k: int = TOP_K
) -> tuple[list[int], np.ndarray, np.ndarray]:
    """For each position of `logits` [positions, vocab]: the rank of its target id (1 = the
    highest logit; ties rank the target first), and the `k` most probable ids with their
    probabilities (softmax over the ids not `banned`). Overwrites `logits` when it is a
    writeable float32 array."""
    values = np.asarray(logits, dtype=np.float32)  # [positions, vocab]: 262k wide for Gemma
    if values.ndim != 2 or values.shape[0] != len(targets):
        raise ValueError(f"expected logits [{len(targets)}, vocab], got {values.shape}")
    if not values.flags.writeable:
        values = values.copy()
    vocab = values.shape[1]
    banned_ids = [i for i in banned if 0 <= i < vocab]
    values[:, banned_ids] = -np.inf  # in place: the caller's logits are spent (a full copy costs 130 MB)
    rows = np.arange(len(targets))
    picked = values[rows, np.asarray(targets, dtype=np.int64)]
    ranks = (values > picked[:, None]).sum(axis=1) + 1
    peak = values.max(axis=1, keepdims=True)
    normaliser = np.exp(values - peak).sum(axis=1, dtype=np.float64)
    # The top k by repeated argmax (k is 3; a sort or partition of 262k columns costs far more).
    width = min(k, vocab)
    top_ids = np.empty((len(targets), width), dtype=np.int64)
    top_logits = np.empty((len(targets), width), dtype=np.float64)
    for column in range(width):
        best = values.argmax(axis=1)
        top_ids[:, column] = best
        top_logits[:, column] = values[rows, best]
        values[rows, best] = -np.inf
    top_probabilities = np.exp(top_logits - peak.astype(np.float64)) / normaliser[:, None]
    return [int(r) for r in ranks], top_ids, top_probabilities


def token_texts(text: str, starts: Sequence[int], skip: int = 0) -> list[str]:
    """The pieces of `text` each token covers, from the tokens' start offsets: a token runs to
    the next one's start (so whitespace a tokenizer's offsets leave out stays with a token, and
    the pieces join to the text); a token the offsets put at the same place as the next one
    (part of a character split into bytes) is empty. The first `skip` characters (a lead
    added only for the forward pass) are dropped."""
    if not starts:
        return []
    cuts = [max(0, min(start, len(text))) for start in starts]
    cuts[0] = 0
    for index in range(1, len(cuts)):
        cuts[index] = max(cuts[index], cuts[index - 1])  # offsets never go back
    ends = [*cuts[1:], len(text)]
    return [text[max(start, skip) : max(end, skip)] for start, end in zip(cuts, ends)]


def build_token_shift(
    pieces: Sequence[str],
    ranks: Sequence[int],
    top_ids: np.ndarray,
    top_probabilities: np.ndarray,
    decode,
    before_model: str,
    seconds: float,
) -> TokenShift:
    """Assemble the view; `decode(id)` gives the text of one of the before model's top ids."""
    tokens = tuple(
        ShiftedToken(
            text=piece,
            rank=rank,
            top=tuple((decode(int(i)), float(p)) for i, p in zip(ids, probabilities)),
        )
        for piece, rank, ids, probabilities in zip(pieces, ranks, top_ids, top_probabilities, strict=True)
    )
    return TokenShift(tokens=tokens, before_model=before_model, seconds=seconds)
