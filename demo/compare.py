"""One prompt through several models at once, each answer scored: the product's single path.

`Comparator.stream` validates the prompt, clamps the settings to the server's limits, runs the
base and aligned workers concurrently, scores each answer as it finishes, and yields a
`Comparison` snapshot after every change. The UI renders snapshots; the CLI, the API and the
benchmark take the last one (`Comparator.run`) and its `to_json()`. `Comparator.stream_stages`
does the same for the 2–4 models of the stages view, through the same N-side core.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar, cast

from .config import ROLES, AppConfig, Limits
from .errors import UserFacingError, public_message
from .generation.formatting import BaseMode, clean_user_text
from .generation.runner import Failed, Finished, GenerationRequest, Started, TextDelta
from .scoring.scorer import AnswerScorer, preference
from .session import Comparison, SideState, StagesRun
from .settings import SamplingSettings, clamp_settings
from .token_shift import ShiftResult, TokenShift, Unavailable

if TYPE_CHECKING:
    from .generation.prompt_length import PromptLength


class InvalidPrompt(UserFacingError, ValueError):
    """The prompt cannot be run as typed; the message says why and what the limit is."""


def validate_prompt(prompt: str | None, limits: Limits) -> str:
    """The prompt as it will be sent, or InvalidPrompt naming the problem."""
    if prompt is None or not clean_user_text(prompt).strip():
        raise InvalidPrompt("Please type a prompt (it is empty).")
    if len(prompt) > limits.max_prompt_chars:
        raise InvalidPrompt(f"The prompt is {len(prompt):,} characters; the limit is {limits.max_prompt_chars:,}.")
    return prompt


class _Snapshot(Protocol):
    """What the N-side core fills in and `paced` reads: a `Comparison` or a `StagesRun`."""

    prompt: str
    error: str | None

    @property
    def sides(self) -> Sequence[SideState]: ...


Snapshot = TypeVar("Snapshot", bound=_Snapshot)
SHIFT_GRACE_SECONDS = 30.0  # how long after the request's deadline a token-shift ranking may take


@dataclass(frozen=True)
class ShiftFrom:
    """A side's token-shift view: its answer teacher-forced through `model_id` (the model before
    its alignment step) in that model's input format `base_mode`; or, with `unavailable`, why
    the view does not apply."""

    model_id: str
    base_mode: BaseMode = "raw"
    unavailable: str | None = None


def token_shift_unavailable(config: AppConfig, before_id: str, after_id: str) -> str | None:
    """Why the token-shift view of `after_id`'s answers under `before_id` would be noise, or
    None when it applies: the answer is re-tokenized and ranked by the before model, which
    means something only for one family (one tokenizer). (A model that cannot be teacher-forced,
    one served over an API, says so when asked: ModelRunner.token_shift.)"""
    before, after = config.models[before_id], config.models[after_id]
    if before.family != after.family:
        return (
            f"{after.name} and {before.name} are different families ({after.family}; {before.family}) with "
            "different tokenizers, so ranking one's tokens under the other would show tokenization, not alignment."
        )
    return None


class Comparator:
    """Runs a pair's two models on a prompt and scores their answers.

    `workers` are keyed by model id (every model some configured pair uses); a comparison names
    its pair, the default pair when none is given.
    """

    def __init__(self, config: AppConfig, workers: dict, scorer: AnswerScorer | None, scoring_error: str | None = None):
        self.config = config
        self.workers = workers
        self.scorer = scorer
        self.scoring_error = scoring_error
        self.scorer_ready = threading.Event()
        self.scorer_ready.set()
        self._prompt_length: PromptLength | None = None  # made on first use: loads tokenizers here

    def load_scorer_in_background(self) -> None:
        """Load the scorers on a thread (the page is served meanwhile); an answer that finishes
        first waits for them (`_score`)."""
        self.scorer_ready.clear()

        def load() -> None:
            self.scorer, self.scoring_error = load_scorer(self.config)
            self.scorer_ready.set()

        threading.Thread(target=load, name="load-scorers", daemon=True).start()

    def calibration(self) -> dict:
        """What the page says beside the scores (empty until the scorers have loaded)."""
        return self.scorer.calibration() if self.scorer is not None else {}

    def wait_ready(self, timeout: float | None = None, pair: str | None = None) -> dict[str, bool]:
        """Block until every worker (or only `pair`'s two) has loaded or failed, `timeout` seconds
        at most in all; which of them are ready."""
        spec = self.config.pair(pair)
        workers = (
            self.workers if pair is None else {getattr(spec, role): self.workers[getattr(spec, role)] for role in ROLES}
        )
        deadline = None if timeout is None else time.monotonic() + timeout
        ready = {}
        for key, worker in workers.items():
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready[key] = worker.wait_ready(left)
        return ready

    def prompt_tokens(self, prompt: str, systems: Sequence[tuple[str, BaseMode]]) -> int:
        """The prompt's length in tokens as the longest of `systems` (model id, base mode) reads
        it, counted here without running a model; systems not yet loaded, or served over an API
        without a local tokenizer, are not counted (their worker still checks)."""
        if self._prompt_length is None:
            from .generation.prompt_length import PromptLength

            self._prompt_length = PromptLength(self.config.base_prompted)
        length = self._prompt_length
        counts = [0]
        for model_id, mode in systems:
            info = getattr(self.workers.get(model_id), "info", None)
            checkpoint = getattr(info, "checkpoint", None)
            if checkpoint and Path(checkpoint, "tokenizer.json").is_file():
                spec = self.config.models[model_id]
                counts.append(length.tokens(spec, checkpoint, prompt, mode))
        return max(counts)

    def pair_workers(self, pair_id: str | None = None) -> dict:
        """{"base": worker, "aligned": worker} for a pair."""
        pair = self.config.pair(pair_id)
        return {role: self.workers[getattr(pair, role)] for role in ROLES}

    def close(self) -> None:
        for worker in self.workers.values():
            worker.close()

    def new_comparison(self, prompt: str, pair_id: str | None = None) -> Comparison:
        pair = self.config.pair(pair_id)
        sides = {role: self._new_side(getattr(pair, role)) for role in ROLES}
        return Comparison(prompt=prompt, base=sides["base"], aligned=sides["aligned"], pair=pair.id)

    def _new_side(self, model_id: str) -> SideState:
        return SideState(self.config.models[model_id].name, model_id=model_id)

    def stream(
        self,
        prompt: str,
        settings: SamplingSettings,
        base_mode: BaseMode = "raw",
        should_stop: Callable[[], bool] = lambda: False,
        pair: str | None = None,
        token_shift: bool = False,
    ) -> Iterator[Comparison]:
        """With `token_shift`, the aligned answer, once complete, is ranked token by token under
        the pair's base side (`SideState.token_shift`)."""
        spec = self.config.pair(pair)
        sides: dict[str, tuple[str, BaseMode]] = {role: (getattr(spec, role), base_mode) for role in ROLES}
        shift = None
        if token_shift:
            why = token_shift_unavailable(self.config, spec.base, spec.aligned)
            shift = ShiftFrom(spec.base, base_mode, why)
        yield from self.stream_models(prompt, settings, sides, should_stop, pair=spec.id, shift=shift)

    def stream_models(
        self,
        prompt: str,
        settings: SamplingSettings | dict[str, SamplingSettings],
        sides: dict[str, tuple[str, BaseMode]],
        should_stop: Callable[[], bool] = lambda: False,
        pair: str | None = None,
        shift: ShiftFrom | None = None,
    ) -> Iterator[Comparison]:
        """`stream` for any two served models, each with its own base-model input format:
        `sides` maps "base" and "aligned" to (model id, base mode). The blind vote uses it to
        run two systems that no configured pair names (e.g. one base model raw vs prompted),
        each with its own settings (`settings` by role: a seed per side)."""
        states = {role: self._new_side(sides[role][0]) for role in ROLES}
        comparison = Comparison(prompt=prompt, base=states["base"], aligned=states["aligned"], pair=pair)
        modes = [sides[role][1] for role in ROLES]
        per_side = [settings[role] for role in ROLES] if isinstance(settings, dict) else settings
        # closing(): a reader that leaves stops the workers now, not when the core is collected.
        shifts = [None, shift]  # role order: only the aligned side is ranked under the other
        with contextlib.closing(self._stream_sides(comparison, modes, per_side, should_stop, shifts)) as snapshots:
            for _ in snapshots:
                if comparison.done and comparison.error is None:  # both answers are in and scored
                    comparison.preferred, comparison.p_aligned_preferred = preference(
                        comparison.base.reward,
                        comparison.aligned.reward,
                        self.config.scoring.tie_tolerance,
                    )
                yield comparison

    def stream_stages(
        self,
        prompt: str,
        settings: SamplingSettings,
        should_stop: Callable[[], bool] = lambda: False,
        token_shift: bool = False,
    ) -> Iterator[StagesRun]:
        """The models of `stages:` on one prompt at once, a side each in stage order, each answer
        scored; a `StagesRun` snapshot after every change. A base model gets the prompt raw, as a
        document to continue (the model as pretraining left it); a chat model applies its own
        chat template, whatever the base mode says. With `token_shift`, each stage after the
        first is ranked token by token under the stage before it."""
        stages = self.config.stages
        if stages is None:
            raise ValueError("this config has no `stages:` section (the stages view is off)")
        run = StagesRun(prompt=prompt, sides=[self._new_side(model_id) for model_id in stages.models])
        modes: list[BaseMode] = ["raw"] * len(run.sides)
        shifts: list[ShiftFrom | None] = [None] * len(run.sides)
        if token_shift:
            for index in range(1, len(run.sides)):
                before, after = stages.models[index - 1], stages.models[index]
                shifts[index] = ShiftFrom(before, "raw", token_shift_unavailable(self.config, before, after))
        yield from self._stream_sides(run, modes, settings, should_stop, shifts)

    def _stream_sides(
        self,
        snapshot: Snapshot,
        modes: Sequence[BaseMode],
        settings: SamplingSettings | Sequence[SamplingSettings],
        should_stop: Callable[[], bool],
        shifts: Sequence[ShiftFrom | None] = (),
    ) -> Generator[Snapshot, None, None]:
        """The core of every view: each of `snapshot.sides` (the model its `model_id` names) runs
        with the base mode (and the settings, when given per side) at its index, all at once, one
        thread each, under the server's limits; each answer is scored as it finishes and, where
        `shifts` names a before model at its index, ranked under that model on another thread
        (the before model's worker takes it once its own answer is done). Yields `snapshot` after
        every change. An invalid prompt becomes the snapshot's error, every side done, and
        nothing runs."""
        limits = self.config.limits
        sides = snapshot.sides
        try:
            validate_prompt(snapshot.prompt, limits)
        except InvalidPrompt as error:
            snapshot.error = str(error)
            for side in sides:
                side.done = True
            yield snapshot
            return
        deadline = time.monotonic() + limits.request_timeout_seconds
        timed_out = threading.Event()
        abandoned = threading.Event()  # the caller stopped reading (e.g. the browser left)

        def stop() -> bool:
            if time.monotonic() > deadline:
                timed_out.set()
                return True
            return abandoned.is_set() or should_stop()

        per_side = [settings] * len(sides) if isinstance(settings, SamplingSettings) else list(settings)
        events: queue.Queue = queue.Queue()
        # Sides are keyed by index, not model: the blind vote may run one model twice (raw, prompted).
        for index, (side, mode, side_settings) in enumerate(zip(sides, modes, per_side, strict=True)):
            request = GenerationRequest(
                prompt=snapshot.prompt,
                sampling=clamp_settings(side_settings, limits),
                base_mode=mode,
                max_prompt_tokens=limits.max_prompt_tokens,
            )
            threading.Thread(
                target=self._pump,
                args=(index, self.workers[side.model_id], request, stop, events),
                name=f"gen-{index}-{side.model_id}",
                daemon=True,
            ).start()
        pending: set[int | tuple[str, int]] = set(range(len(sides)))
        try:
            while pending:
                try:
                    # Answers end by the deadline (their workers poll it); a ranking still out
                    # SHIFT_GRACE_SECONDS after it is given up, so a run never hangs on one.
                    wait = None if any(isinstance(key, int) for key in pending) else deadline + SHIFT_GRACE_SECONDS
                    index, event = events.get(timeout=None if wait is None else max(0.01, wait - time.monotonic()))
                except queue.Empty:
                    for key in [key for key in pending if isinstance(key, tuple)]:
                        sides[key[1]].token_shift = Unavailable("ranking the answer took longer than the time limit")
                        pending.discard(key)
                    yield snapshot
                    continue
                side = sides[index]
                if isinstance(event, _ShiftDone):
                    pending.discard(("shift", index))
                    side.token_shift = event.result
                elif event is None:
                    pending.discard(index)
                    side.done = True
                    if side.error is None and side.stop_reason is None:
                        side.error = "generation ended without an answer"
                    if timed_out.is_set() and side.stop_reason == "cancelled":
                        side.error = f"stopped after the {limits.request_timeout_seconds:.0f} s time limit"
                    self._score(snapshot.prompt, side)
                    shift = shifts[index] if index < len(shifts) else None
                    if shift is not None:
                        pending.add(("shift", index))
                        self._start_shift(snapshot.prompt, index, side, modes[index], shift, abandoned, events)
                else:
                    _apply(side, event)
                yield snapshot
        finally:
            abandoned.set()

    def run(
        self,
        prompt: str,
        settings: SamplingSettings,
        base_mode: BaseMode = "raw",
        pair: str | None = None,
        token_shift: bool = False,
    ) -> Comparison:
        last = None
        for last in self.stream(prompt, settings, base_mode, pair=pair, token_shift=token_shift):
            pass
        assert last is not None  # stream always yields at least one snapshot
        return last

    def _pump(self, index: int, worker, request: GenerationRequest, stop, events: queue.Queue) -> None:
        try:
            for event in worker.stream(request, stop):
                events.put((index, event))
        except Exception as error:  # a broken worker must not hang the comparison
            events.put((index, Failed(public_message(error, "generating an answer"))))
        finally:
            events.put((index, None))

    def _start_shift(
        self,
        prompt: str,
        index: int,
        side: SideState,
        own_mode: BaseMode,
        shift: ShiftFrom,
        abandoned: threading.Event,
        events,
    ) -> None:
        """Rank a finished side's answer under its before model and, as the control, under its
        own model (two workers at once), on threads; the result comes back through `events` as
        a `_ShiftDone`, whatever happens."""
        if shift.unavailable is not None:
            events.put((index, _ShiftDone(Unavailable(shift.unavailable))))
            return
        if side.error is not None or side.stop_reason == "cancelled" or not side.text.strip():
            events.put((index, _ShiftDone(Unavailable("there is no complete answer to rank"))))
            return
        text = side.text
        jobs = {
            "before": (self.workers[shift.model_id], shift.base_mode),
            "own": (self.workers[side.model_id], own_mode),
        }
        found: dict[str, object] = {}

        def rank(which: str) -> None:
            worker, mode = jobs[which]
            if abandoned.is_set():
                found[which] = Unavailable("the run was left before the answer could be ranked")
                return
            try:
                found[which] = worker.call("token_shift", prompt, text, mode)
            except Exception as error:  # the view is an extra: a failure leaves the answer shown
                found[which] = Unavailable(public_message(error, "ranking the answer"))

        def both() -> None:
            result: ShiftResult = Unavailable("ranking the answer failed")
            try:
                helper = threading.Thread(target=rank, args=("own",), name=f"shift-own-{index}", daemon=True)
                helper.start()
                rank("before")
                helper.join()
                before, own = found.get("before"), found.get("own")
                if isinstance(before, TokenShift):
                    result = before.with_self(own) if isinstance(own, TokenShift) else before
                elif isinstance(before, Unavailable):
                    result = before
            finally:
                events.put((index, _ShiftDone(result)))

        threading.Thread(target=both, name=f"shift-{index}", daemon=True).start()

    def _score(self, prompt: str, side: SideState) -> None:
        self.scorer_ready.wait(self.config.limits.request_timeout_seconds)
        if self.scorer is None or side.error is not None:
            return
        side.apply_scores(self.scorer.score([(prompt, side.text)])[0].as_fields())


@dataclass(frozen=True)
class _ShiftDone:
    result: ShiftResult


def paced(
    snapshots: Iterator[Snapshot], min_interval: float, clock: Callable[[], float] = time.monotonic
) -> Iterator[Snapshot]:
    """At most one snapshot per `min_interval` seconds for a screen: the page re-renders every
    side for every snapshot, and a snapshot per token (~170 a second for two models) costs the
    server — on the cores the models decode on — far more than a reader can see.

    A snapshot where a side has just finished, failed or been scored, or the last one, is never
    held back; skipped ones are folded into the next (a snapshot is the run so far). A
    comparison's preference needs no key of its own: it is set in the snapshot where the last
    side is done.
    """
    last_shown, shown_state, pending = None, None, None
    try:
        for snapshot in snapshots:
            state = tuple(
                (side.done, side.error, side.reward, side.stop_reason, side.token_shift is None)
                for side in snapshot.sides
            ) + (snapshot.error,)
            now = clock()
            if state != shown_state or last_shown is None or now - last_shown >= min_interval:
                last_shown, shown_state, pending = now, state, None
                yield snapshot
            else:
                pending = snapshot
        if pending is not None:
            yield pending
    finally:
        # A reader that leaves (the browser tab closed) stops the generation now, not at GC.
        close = getattr(snapshots, "close", None)
        if close is not None:
            close()


def _apply(side: SideState, event) -> None:
    if isinstance(event, Started):
        side.input_text = event.input_text
    elif isinstance(event, TextDelta):
        side.text += event.text
        side.new_tokens = event.new_tokens
    elif isinstance(event, Finished):
        side.text = event.text
        side.new_tokens = event.new_tokens
        side.seconds = event.seconds
        side.first_token_seconds = event.first_token_seconds
        side.stop_reason = event.stop_reason
    elif isinstance(event, Failed):
        side.error = event.message


def start_comparator(
    config: AppConfig,
    *,
    worker_mode: str = "auto",
    with_scorer: bool = True,
    background_scorer: bool = False,
    model_ids: Sequence[str] | None = None,
) -> Comparator:
    """Start a worker for every model a pair uses (loading in the background), load the scorers.
    `model_ids` limits it to those models (the command line's one pair: no other model loads).

    `background_scorer` serves before the scorers have loaded (the app); `auto` runs each model in its own process on a CPU host (true parallelism, one thread each)
    and on threads of this process on a GPU host (one process owns the device).
    """
    from .generation.loading import detect_device
    from .generation.workers import start_worker

    device = detect_device()
    mode = cast(
        Literal["process", "thread"],
        worker_mode if worker_mode != "auto" else ("thread" if device == "cuda" else "process"),
    )
    wanted = config.served_model_ids() if model_ids is None else list(dict.fromkeys(model_ids))
    # The default pair loads first; the other models start once it has (on a first start each
    # model's build takes most of a core, and the default pair is what a visitor meets first).
    default_pair = config.pair(None)
    first = [m for m in (default_pair.base, default_pair.aligned) if m in wanted] or wanted[:2]
    workers: dict = {}
    for model_id in [*first, *(m for m in wanted if m not in first)]:
        after = [] if model_id in first else [workers[m] for m in first]
        workers[model_id] = start_worker(
            model_id, config.models[model_id], config.base_prompted, mode=mode, device=device, after=after
        )
    workers = {model_id: workers[model_id] for model_id in wanted}  # config order, for the page
    scorer, error = load_scorer(config) if with_scorer and not background_scorer else (None, None)
    comparator = Comparator(config, workers, scorer, error)
    if with_scorer and background_scorer:
        comparator.load_scorer_in_background()
    return comparator


def load_scorer(config: AppConfig) -> tuple[AnswerScorer | None, str | None]:
    """The configured scorers, or None and why not (answers still stream; the page says why)."""
    try:
        return AnswerScorer.from_config(config), None
    except Exception as exc:
        return None, public_message(exc, "loading the scorers")
