"""Many answers decoded together over the ONNX graph onnxruntime-genai built (continuous batching).

onnxruntime-genai 0.18 batches only prompts of one token length: left-padded batches changed
answers. This decoder runs the same `model.onnx` through plain onnxruntime instead, with its own
key/value buffers, one row per answer:

- A new answer's prompt is prefilled alone, straight into its row of the shared buffers, so its
  first token is the one-at-a-time first token.
- Each later step decodes one token for every active row in one forward pass. The rows have
  their own lengths: the graph's GroupQueryAttention reads each row's length from its attention
  mask (ones for the row's tokens, zeros after) and attends to that row's own positions only,
  so no row waits for or sees another's padding.
- A finished row is refilled at once with the next waiting prompt; when none is left, the last
  row moves into the hole so the batch shrinks and no forward pass is spent on empty rows.
- A prefix every prompt of a format shares (the few-shot examples of the prompted base format, a
  chat template's system turn) is prefilled once and its keys and values copied into each new
  row, which then prefills only its own suffix. The caller names the prefix (its length per
  prompt, a property of the format), so an answer still does not depend on its batch.
- Every decode step runs at least two rows (a parked dummy row when one answer is left): the
  CPU's int4 kernel takes another code path for a single row, whose rounding differs, so with
  the floor every answer goes through the same kernels whatever batch it ran in.

Multiple-choice likelihoods teacher-force each reference answer in one pass over a variant of the
graph whose LM head reads every position (`write_all_logits_graph`; the build prunes it to the
last position for generation).

Token choice (repetition penalty, banned ids, greedy or top-p sampling) is demo/generation/
sampling.py, with one random stream per answer seeded by its request: an answer depends on its
prompt and seed, not on its batch.
"""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...cache import cached_file
from ...settings import SamplingSettings
from ..sampling import next_token, row_generator

# Rows decoded together. On a 2-core CPU an int4 270M model gives ~30 tokens/s alone and ~47 at
# 8 rows (one thread); past 8 the gain is under 2 % and the buffers grow.
MAX_BATCH = 8
BATCH_THREADS_ENV_VAR = "DEMO_BATCH_THREADS"
_MIN_ROWS = 2  # see the module docstring: one kernel path for every answer
MIN_PREFIX = 16  # shorter shared prefixes are prefilled with their prompt
_PREFIXES_KEPT = 4

# on_token(job index, token id) -> True once that answer has ended (end of sequence, stop
# sequence, budget): the caller's stop rules decide, the decoder frees the row.
OnToken = Callable[[int, int], bool]


def batch_threads_from_env() -> int:
    """Intra-op threads of a batch session: every core by default, because an evaluation runs one
    model's batch at a time (DEMO_BATCH_THREADS overrides)."""
    raw = os.environ.get(BATCH_THREADS_ENV_VAR, "")
    if not raw:
        return max(1, os.cpu_count() or 1)
    try:
        threads = int(raw)
    except ValueError:
        threads = 0
    if threads < 1:
        raise ValueError(f"{BATCH_THREADS_ENV_VAR}={raw!r}: expected a whole number of CPU threads, 1 or more")
    return threads


@dataclass
class _Row:
    job: int
    length: int  # positions of this row's cache in use
    last: int  # the token to feed next
    seen: set[int]
    rng: np.random.Generator
    sampling: SamplingSettings


@dataclass
class _Buffers:
    """Key/value buffers [rows, kv heads, capacity, head size] per past input name."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def move(self, source: int, target: int) -> None:
        for array in self.arrays.values():
            array[target] = array[source]


class BatchDecoder:
    """Continuous-batching decoder over an onnxruntime-genai model folder (CPU)."""

    def __init__(self, model_dir: Path, threads: int | None = None, max_batch: int = MAX_BATCH):
        import onnxruntime as ort

        self.model_dir = Path(model_dir)
        genai = json.loads((self.model_dir / "genai_config.json").read_text())
        decoder = genai["model"]["decoder"]
        self.layers = int(decoder["num_hidden_layers"])
        self.kv_heads = int(decoder["num_key_value_heads"])
        self.head_size = int(decoder["head_size"])
        self.capacity = int(genai["search"]["max_length"])
        window = decoder.get("sliding_window") or {}
        self.min_capacity = int(window.get("window_size", 0))  # sliding layers need one window
        names = decoder["inputs"]
        outputs = decoder["outputs"]
        self.past_to_present = {
            names[f"past_{kind}_names"] % layer: outputs[f"present_{kind}_names"] % layer
            for layer in range(self.layers)
            for kind in ("key", "value")
        }
        self.input_ids_name = names["input_ids"]
        self.mask_name = names["attention_mask"]
        self.logits_name = outputs["logits"]
        self.max_batch = max(1, max_batch)
        self._ort = ort
        self._threads = threads or batch_threads_from_env()
        self._graph = self.model_dir / decoder.get("filename", "model.onnx")
        self.session = self._open(self._graph)
        # Prefix ids -> their keys and values per past name, [kv heads, length, head size].
        self._prefixes: dict[tuple[int, ...], dict[str, np.ndarray]] = {}
        self._scoring_session = None  # every position's logits, for teacher forcing (made on first use)

    def _open(self, graph: Path):
        options = self._ort.SessionOptions()
        options.intra_op_num_threads = self._threads
        options.log_severity_level = 3
        return self._ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])

    # --- the forward pass ------------------------------------------------------------------

    def _buffers(self, rows: int, capacity: int) -> _Buffers:
        shape = (rows, self.kv_heads, capacity, self.head_size)
        return _Buffers({name: np.zeros(shape, dtype=np.float32) for name in self.past_to_present})

    def _forward(self, buffers: _Buffers, rows: slice, input_ids: np.ndarray, lengths: Sequence[int]) -> np.ndarray:
        """One pass over `rows` of the buffers: `input_ids` [rows, new tokens] follow each row's
        `lengths` cached positions; the keys and values are written in place. Last-position
        logits [rows, vocab]."""
        count, new = input_ids.shape
        mask = np.zeros((count, max(lengths) + new), dtype=np.int64)
        for index, length in enumerate(lengths):
            mask[index, : length + new] = 1
        logits = self._run(self.session, buffers, rows, input_ids, mask)
        return logits.reshape(count, -1, logits.shape[-1])[:, -1]

    def _run(self, session, buffers: _Buffers, rows: slice, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Run `session` on `rows` of the buffers, which are bound as both the past and the present
        (shared buffer: the new keys and values are written in place); its logits."""
        binding = session.io_binding()
        binding.bind_cpu_input(self.input_ids_name, np.ascontiguousarray(input_ids, dtype=np.int64))
        binding.bind_cpu_input(self.mask_name, mask)
        binding.bind_output(self.logits_name)
        for past, present in self.past_to_present.items():
            value = self._ort.OrtValue.ortvalue_from_numpy(buffers.arrays[past][rows])
            binding.bind_ortvalue_input(past, value)
            binding.bind_ortvalue_output(present, value)
        session.run_with_iobinding(binding)
        return binding.get_outputs()[0].numpy()

    def _prefix_cache(self, ids: tuple[int, ...]) -> dict[str, np.ndarray]:
        """The keys and values of a shared prefix, computed once and kept (a few formats)."""
        if ids not in self._prefixes:
            buffers = self._buffers(1, self._capacity(len(ids) + 1))
            self._forward(buffers, slice(0, 1), np.asarray([list(ids)]), [0])
            if len(self._prefixes) >= _PREFIXES_KEPT:
                self._prefixes.pop(next(iter(self._prefixes)))
            self._prefixes[ids] = {name: array[0, :, : len(ids)].copy() for name, array in buffers.arrays.items()}
        return self._prefixes[ids]

    def _prefill(self, buffers: _Buffers, slot: int, prompt: list[int], prefix: int) -> np.ndarray:
        """Prefill `prompt` into row `slot`: the first `prefix` positions copied from the prefix
        cache when that is worth it, the rest computed. The prompt's last logits."""
        if prefix >= MIN_PREFIX and prefix < len(prompt):
            for name, cached in self._prefix_cache(tuple(prompt[:prefix])).items():
                buffers.arrays[name][slot, :, :prefix] = cached
            return self._forward(buffers, slice(slot, slot + 1), np.asarray([prompt[prefix:]]), [prefix])[0]
        return self._forward(buffers, slice(slot, slot + 1), np.asarray([prompt]), [0])[0]

    def _all_logits_session(self):
        """A session of the same graph whose LM head reads every position, not just the last
        (the build prunes it for generation): a continuation is then scored in one pass. The
        variant graph is written once beside the model and shares its weights file."""
        if self._scoring_session is None:
            variant = self._graph.with_name(f"{self._graph.stem}.all-logits.onnx")
            cached_file(
                variant,
                lambda temporary: write_all_logits_graph(self._graph, temporary),
                recipe={"all_logits_graph": 1, "source": self._graph.name},
                label=f"the all-positions graph of {self.model_dir.name}",
            )
            self._scoring_session = self._open(variant)
        return self._scoring_session

    def _capacity(self, needed: int) -> int:
        if needed > self.capacity:
            raise ValueError(
                f"prompt + answer ({needed} tokens) exceeds the {self.capacity}-token capacity of this "
                "ONNX model; shorten the prompt or lower max_new_tokens"
            )
        return min(self.capacity, max(needed, self.min_capacity))

    # --- generation ------------------------------------------------------------------------

    def decode(
        self,
        prompts: Sequence[Sequence[int]],
        samplings: Sequence[SamplingSettings],
        *,
        suppress_ids: Sequence[int],
        on_token: OnToken,
        prefixes: Sequence[int] | None = None,
    ) -> None:
        """Decode every prompt until `on_token` says its answer has ended or its budget is
        spent. Tokens arrive interleaved across prompts, each in order. `prefixes`: per prompt,
        how many leading ids are its format's shared prefix (0: none)."""
        if len(prompts) != len(samplings) or (prefixes is not None and len(prefixes) != len(prompts)):
            raise ValueError("one sampling setting (and prefix length) per prompt is needed")
        if any(not p for p in prompts):
            raise ValueError("the prompt has no tokens; the model needs at least one to continue")
        if not prompts:
            return
        capacity = self._capacity(max(len(p) + s.max_new_tokens for p, s in zip(prompts, samplings)))
        rows = max(_MIN_ROWS, min(self.max_batch, len(prompts)))
        buffers = self._buffers(rows, capacity)
        banned = np.array(sorted(set(suppress_ids)), dtype=np.int64)
        waiting = deque(range(len(prompts)))
        active: list[_Row | None] = []  # active[i] lives in row i of the buffers

        def choose(row: _Row, logits: np.ndarray) -> bool:
            """Pick the row's next token and hand it over; True when its answer continues."""
            token = next_token(logits, row.seen, row.sampling, row.rng, banned)
            row.seen.add(token)
            row.last = token
            return not on_token(row.job, token) and row.length < capacity

        def admit(slot: int) -> bool:
            """Prefill the next waiting prompt into `slot`; False when none is left."""
            while waiting:
                job = waiting.popleft()
                prompt = list(prompts[job])
                sampling = samplings[job]
                row = _Row(job, len(prompt), 0, set(prompt), row_generator(sampling.seed), sampling)
                logits = self._prefill(buffers, slot, prompt, prefixes[job] if prefixes else 0)
                if choose(row, logits):
                    if slot == len(active):
                        active.append(row)
                    else:
                        active[slot] = row
                    return True
            return False

        while len(active) < rows and admit(len(active)):
            pass
        while active:
            bound = max(len(active), _MIN_ROWS)
            rows_now = [row for row in active if row is not None]
            tokens = [row.last for row in rows_now] + [0] * (bound - len(rows_now))  # dummy rows: length 0
            lengths = [row.length for row in rows_now] + [0] * (bound - len(rows_now))
            logits = self._forward(buffers, slice(0, bound), np.asarray(tokens).reshape(-1, 1), lengths)
            ended: list[int] = []
            for index, row in enumerate(rows_now):
                row.length += 1
                if not choose(row, logits[index]):
                    ended.append(index)
            for index in ended:
                if not admit(index):
                    active[index] = None
            # Compact: the last row moves into each hole, so the bound rows are the active ones.
            while None in active:
                hole, last = active.index(None), len(active) - 1
                if active[last] is not None:
                    buffers.move(last, hole)
                    active[hole] = active[last]
                active.pop()

    # --- likelihoods -----------------------------------------------------------------------

    def continuation_logprobs(
        self, prompt_ids: Sequence[int], continuations: Sequence[Sequence[int]], prefix: int = 0
    ) -> list[list[float]]:
        """Log-probability of each continuation token given the prompt and the tokens before it,
        teacher-forced: the prompt is prefilled once (its first `prefix` ids from the prefix
        cache); then one pass over each continuation's tokens after it gives the logits of all
        its positions."""
        if not prompt_ids:
            raise ValueError("the prompt has no tokens; the model needs at least one to continue")
        if not continuations:
            return []
        width = max(len(c) for c in continuations)
        buffers = self._buffers(1, self._capacity(len(prompt_ids) + width + 1))
        first = self._prefill(buffers, 0, list(prompt_ids), prefix)
        results = [[_log_softmax_at(first, c[0])] if c else [] for c in continuations]
        for index, continuation in enumerate(continuations):
            if len(continuation) > 1:
                # One pass per answer (the graph's attention takes several new tokens after a past
                # for a batch of one only), all in one row: a pass writes its tokens' keys and
                # values after the prompt before it reads them, so the previous answer's are
                # overwritten, never seen.
                logits = self._forward_all(buffers, np.asarray([list(continuation[:-1])]), len(prompt_ids))
                results[index] += [_log_softmax_at(logits[p], t) for p, t in enumerate(continuation[1:])]
        return results

    def continuation_logits(self, prompt_ids: Sequence[int], continuation: Sequence[int]) -> np.ndarray:
        """The logits [len(continuation), vocab] that predicted each continuation token, given the
        prompt and the tokens before it (teacher forcing, two passes): for fidelity measures."""
        if not prompt_ids or not continuation:
            raise ValueError("both the prompt and the continuation need at least one token")
        buffers = self._buffers(1, self._capacity(len(prompt_ids) + len(continuation) + 1))
        first = self._forward(buffers, slice(0, 1), np.asarray([list(prompt_ids)]), [0])
        if len(continuation) == 1:
            return first
        rest = self._forward_all(buffers, np.asarray([list(continuation[:-1])]), len(prompt_ids))
        return np.concatenate([first, rest])

    def _forward_all(self, buffers: _Buffers, input_ids: np.ndarray, past: int) -> np.ndarray:
        """Every position's logits [tokens, vocab] for `input_ids` [1, tokens] after the `past`
        cached positions of row 0."""
        mask = np.ones((1, past + input_ids.shape[1]), dtype=np.int64)
        return self._run(self._all_logits_session(), buffers, slice(0, 1), input_ids, mask)[0]


def write_all_logits_graph(source: Path, target: Path) -> None:
    """Copy the graph with the LM head reading every position: the builder's prune step (a
    Gather of the last position and an Unsqueeze before the LM head MatMul) is bypassed. The
    weights stay in the source's external data file, which the copy names."""
    import onnx

    model = onnx.load(str(source), load_external_data=False)
    nodes = list(model.graph.node)
    prune = [n for n in nodes if n.name.startswith("/lm_head/prune/")]
    gather = next((n for n in prune if n.op_type == "Gather"), None)
    if gather is None:
        raise ValueError(f"{source}: no pruned LM head to restore (was it built with prune_lm_head?)")
    last = next(n for n in prune if n.op_type == "Unsqueeze").output[0]
    for node in nodes:
        node.input[:] = [gather.input[0] if name == last else name for name in node.input]
    for node in prune:
        model.graph.node.remove(node)
    for output in model.graph.output:  # logits: [batch, positions, vocab], no longer [batch, 1, vocab]
        if output.name == "logits":
            output.type.tensor_type.shape.dim[1].dim_param = "sequence_length"
    onnx.save(model, str(target))


def _log_softmax_at(logits: np.ndarray, token: int) -> float:
    values = logits.astype(np.float64)
    top = values.max()
    return float(values[token] - top - np.log(np.exp(values - top).sum()))
