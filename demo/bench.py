"""`python -m demo bench`: what the configured set-up costs, measured the way the app runs.

For each model and its configured back end: warm load, time to first token and decode tokens/s;
then the side-by-side wall time for 2×128 tokens through the app's own `Comparator`, scoring time
for both answers and peak RSS of the whole app (this process and its worker processes). The
baseline is the naive way — transformers fp32, one model after the other, in one process — and
the quantization cost is where greedy tokens first diverge from fp32 and the mean per-token
log-prob gap of fp32's greedy answer under both.
"""

from __future__ import annotations

import json
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass, field

import psutil

from .compare import start_comparator, token_shift_unavailable
from .config import ROLES, AppConfig, RuntimeSpec
from .generation.formatting import BASE_MODES
from .generation.loading import load_runner
from .generation.runner import Finished, GenerationRequest, SamplingSettings, TextDelta, final_event

BENCH_PROMPTS = (
    "Explain why the sky is blue in two sentences.",
    "Write a short thank-you note to a friend who helped me move.",
    "List three tips for sleeping better.",
)
NEW_TOKENS = 128
SIDE_BY_SIDE_RUNS = 5

# The evaluation's throughput: suite-like prompts of different lengths, greedy, a fixed length
# each, in the evaluation's mix: for every prompt the base model answers raw and few-shot
# prompted, the aligned model once (its answer serves both comparisons).
EVAL_PROMPTS = (
    "Name three primary colours.",
    "List three tips for sleeping better.",
    "Explain why the sky is blue in two sentences.",
    "Write a haiku about autumn leaves.",
    "What is the capital of Australia?",
    "Give me a recipe for pancakes with blueberries and maple syrup.",
    "Summarise the plot of Hamlet in one paragraph.",
    "Translate 'good morning' into French.",
)
EVAL_NEW_TOKENS = 32


@dataclass
class ModelFigures:
    role: str
    name: str
    backend: str
    precision: str
    device: str
    load_seconds: float
    ttft_seconds: float
    tokens_per_second: float
    baseline_tokens_per_second: float | None = None
    greedy_divergence_index: list[int] = field(default_factory=list)
    mean_logprob_gap: float | None = None


class PeakRss:
    """Peak memory of this process and all its children while the block runs.

    Samples the summed RSS every 50 ms (cheap: /proc/PID/statm). RSS counts shared libraries once
    per process, so the sum overstates; `pss_mib` — shared pages split between the processes —
    is read once at the end (reading it walks every mapping and would itself slow the models
    down if sampled), as is the sum of each process's own high-water mark (VmHWM).
    """

    def __init__(self):
        self.peak = 0
        self.pss = 0
        self.hwm_sum = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _processes() -> list[psutil.Process]:
        me = psutil.Process()
        return [me, *me.children(recursive=True)]

    def _run(self):
        processes, listed_at = [], 0.0
        while not self._stop.is_set():
            if time.monotonic() - listed_at > 1.0:  # finding children scans all of /proc
                processes, listed_at = self._processes(), time.monotonic()
            rss = 0
            for process in processes:
                try:
                    rss += process.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, rss)
            time.sleep(0.05)

    def snapshot(self) -> None:
        """PSS now, and each process's own peak; call while every process is still running."""
        self.pss = self.hwm_sum = 0
        for process in self._processes():
            try:
                self.pss += process.memory_full_info().pss
                # The kernel updates VmHWM lazily: it can trail the current RSS by a little.
                self.hwm_sum += max(_high_water_mark(process.pid), process.memory_info().rss)
            except (psutil.Error, OSError):
                pass

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def mib(self) -> float:
        return self.peak / 2**20

    @property
    def pss_mib(self) -> float:
        return self.pss / 2**20

    @property
    def hwm_sum_mib(self) -> float:
        return self.hwm_sum / 2**20


def _high_water_mark(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _fixed_length(seed: int = 0) -> SamplingSettings:
    # Greedy with no early end: every run decodes exactly NEW_TOKENS tokens, so rates compare.
    return SamplingSettings(
        max_new_tokens=NEW_TOKENS, temperature=0.0, top_p=1.0, repetition_penalty=1.0, seed=seed, ignore_eos=True
    )


def _time_stream(stream) -> tuple[float, float, list[str]]:
    """(time to first token, decode tokens/s after the first token, text deltas)."""
    started = time.perf_counter()
    first = None
    texts = []
    finished = None
    for event in stream:
        if isinstance(event, TextDelta) and first is None:
            first = time.perf_counter() - started
        if isinstance(event, TextDelta):
            texts.append(event.text)
        if isinstance(event, Finished):
            finished = event
    if finished is None:
        raise RuntimeError("generation failed during the benchmark")
    total = time.perf_counter() - started
    decode_tokens = max(finished.new_tokens - 1, 1)
    return first or total, decode_tokens / max(total - (first or 0), 1e-9), texts


def _timed_comparison(comparator) -> tuple:
    """(final comparison, seconds until both answers were generated, seconds until both were
    also scored), for one side-by-side run through the app's own `Comparator.stream`."""
    started = time.perf_counter()
    generated = None
    for comparison in comparator.stream(BENCH_PROMPTS[0], _fixed_length()):
        if generated is None and all(comparison.side(r).stop_reason for r in ROLES):
            generated = time.perf_counter() - started
    return comparison, generated or time.perf_counter() - started, time.perf_counter() - started


def _greedy_ids(runner, prompt: str) -> list[int]:
    formatted = runner.format(prompt, "raw")
    ids = runner.encode(formatted)
    return list(runner.backend.generate_ids(ids, _fixed_length(), eos_ids=(), suppress_ids=runner.suppress_ids))


def _divergence(a: list[int], b: list[int]) -> int:
    for index, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return index
    return min(len(a), len(b))


def run_benchmark(config: AppConfig, *, as_json: bool = False, baseline: bool = True) -> int:
    report: dict = {"new_tokens": NEW_TOKENS, "prompt": BENCH_PROMPTS[0]}
    with PeakRss() as rss:
        started = time.perf_counter()
        comparator = start_comparator(config)
        # Everything the app's process holds, page included (built, not served).
        from .ui.app import build_ui

        build_ui(config, comparator)
        ready = comparator.wait_ready()
        report["warm_start_seconds"] = time.perf_counter() - started
        if not all(ready.values()):
            raise RuntimeError(f"models failed to load: { {r: w.error for r, w in comparator.workers.items()} }")
        figures: dict[str, ModelFigures] = {}
        try:
            for role in ROLES:
                worker = comparator.pair_workers()[role]
                request = GenerationRequest(BENCH_PROMPTS[0], _fixed_length(), "raw", config.limits.max_prompt_tokens)
                _time_stream(worker.stream(request))  # warm-up
                ttft, rate, _ = _time_stream(worker.stream(request))
                info = worker.info
                figures[role] = ModelFigures(
                    role=role,
                    name=worker.spec.name,
                    backend=info.backend,
                    precision=info.precision,
                    device=info.device,
                    load_seconds=info.load_seconds,
                    ttft_seconds=ttft,
                    tokens_per_second=rate,
                )
            generated, scored = [], []
            for _ in range(SIDE_BY_SIDE_RUNS):
                result, until_generated, until_scored = _timed_comparison(comparator)
                generated.append(until_generated)
                scored.append(until_scored)
            report["side_by_side_seconds"] = statistics.median(generated)
            report["side_by_side_scored_seconds"] = statistics.median(scored)
            report["side_by_side_runs"] = [round(x, 3) for x in generated]
            report["side_by_side_new_tokens"] = {r: result.side(r).new_tokens for r in ROLES}
            if comparator.scorer is not None:
                pairs = [(BENCH_PROMPTS[0], result.side(r).text) for r in ROLES]
                comparator.scorer.score(pairs)  # warm-up
                times = []
                for _ in range(5):
                    t0 = time.perf_counter()
                    for pair in pairs:  # the app scores each answer as it finishes
                        comparator.scorer.score([pair])
                    times.append(time.perf_counter() - t0)
                report["scoring_seconds"] = statistics.median(times)
            else:
                report["scoring_seconds"] = None
                report["scoring_error"] = comparator.scoring_error
            report["token_shift"] = token_shift_speed(comparator, config, result)
            report["evaluation_throughput"] = evaluation_throughput(comparator, config)
            rss.snapshot()
        finally:
            comparator.close()
    report["peak_rss_mib"] = rss.mib
    report["pss_mib"] = rss.pss_mib
    report["high_water_mark_sum_mib"] = rss.hwm_sum_mib
    report["torch_imported"] = "torch" in sys.modules  # by the app's own process, before the baseline

    if baseline:
        _baseline(config, report, figures)
    report["models"] = {role: asdict(f) for role, f in figures.items()}
    if as_json:
        from .provenance import provenance

        print(json.dumps(provenance(sys.argv) | report, indent=2))
    else:
        print(format_table(report))
    return 0


def token_shift_speed(comparator, config: AppConfig, comparison) -> dict | None:
    """Seconds for the token-shift view of the default pair's aligned answer (one teacher-forced
    pass of the base side's worker, as the page runs it): the first call (it opens the
    all-positions graph) and the median of 5 after it, and per 128 answer tokens. None for a
    pair of two families, where the view does not apply."""
    pair = config.default_pair
    if token_shift_unavailable(config, pair.base, pair.aligned) is not None:
        return None
    worker = comparator.pair_workers()["base"]
    text = comparison.aligned.text

    def once() -> tuple[float, int]:
        started = time.perf_counter()
        view = worker.call("token_shift", comparison.prompt, text, "raw")
        return time.perf_counter() - started, len(view.tokens)

    first, tokens = once()
    median = statistics.median(once()[0] for _ in range(5))
    return {
        "answer_tokens": tokens,
        "first_call_seconds": round(first, 3),
        "seconds": round(median, 3),
        "seconds_per_128_tokens": round(median * 128 / max(tokens, 1), 3),
    }


def evaluation_throughput(comparator, config: AppConfig) -> dict:
    """Answers per minute for the evaluation's work, measured in this one run:

    - one at a time: the page's way, each model streaming its answers one by one (`stream`),
      both models side by side;
    - batched: the evaluation's way (`runner.generate_pair`), each model's answers as one
      continuous batch (`generate_batch`), one model after the other.

    Then how many batched greedy answers equal their one-at-a-time answers, and how many equal
    the same prompt decoded alone through the batch path (an answer must not depend on its
    batch)."""
    from .evaluation.runner import generate_pair

    sampling = SamplingSettings(
        max_new_tokens=EVAL_NEW_TOKENS, temperature=0.0, top_p=1.0, repetition_penalty=1.0, ignore_eos=True
    )
    workers = comparator.pair_workers()
    limit = config.limits.max_prompt_tokens
    plan = {
        "base": {(p, mode): GenerationRequest(p, sampling, mode, limit) for p in EVAL_PROMPTS for mode in BASE_MODES},
        "aligned": {(p, "raw"): GenerationRequest(p, sampling, "raw", limit) for p in EVAL_PROMPTS},
    }

    def texts(answers: dict) -> dict:
        return {key: _text(answer) for key, answer in answers.items()}

    def one_at_a_time(role: str) -> dict:
        return {key: _text(final_event(workers[role].stream(r))) for key, r in plan[role].items()}

    def side_by_side() -> dict:
        results: dict = {}
        threads = [threading.Thread(target=lambda r=r: results.__setitem__(r, one_at_a_time(r))) for r in ROLES]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results

    generate_pair(workers, dict(list(plan["base"].items())[:2]), dict(list(plan["aligned"].items())[:2]))  # warm-up
    started = time.perf_counter()
    single = side_by_side()
    single_seconds = time.perf_counter() - started
    started = time.perf_counter()
    base, aligned = generate_pair(workers, plan["base"], plan["aligned"])
    batch_seconds = time.perf_counter() - started
    batch = {"base": texts(base), "aligned": texts(aligned)}
    alone = {
        role: {k: _text(workers[role].call("generate_batch", [r])[0]) for k, r in plan[role].items()} for role in ROLES
    }
    answers = sum(len(plan[role]) for role in ROLES)
    return {
        "prompts": len(EVAL_PROMPTS),
        "answers": {role: len(plan[role]) for role in ROLES},
        "new_tokens": EVAL_NEW_TOKENS,
        "one_at_a_time_seconds": single_seconds,
        "batched_seconds": batch_seconds,
        "one_at_a_time_answers_per_minute": answers / single_seconds * 60,
        "batched_answers_per_minute": answers / batch_seconds * 60,
        "speedup": single_seconds / batch_seconds,
        "batched_equal_unbatched": {r: sum(batch[r][k] == single[r][k] for k in plan[r]) for r in ROLES},
        "batched_equal_alone": {r: sum(batch[r][k] == alone[r][k] for k in plan[r]) for r in ROLES},
    }


def _text(answer) -> str | None:
    return answer.text if isinstance(answer, Finished) else None


def _baseline(config: AppConfig, report: dict, figures: dict[str, ModelFigures]) -> None:
    """Transformers fp32, one model after the other, in this process."""
    fp32 = RuntimeSpec(backend="transformers", precision="fp32")
    total = 0.0
    for role in ROLES:
        spec = config.pair_models()[role]
        runner, _ = load_runner(spec, config.base_prompted, override=fp32)
        request = GenerationRequest(BENCH_PROMPTS[0], _fixed_length(), "raw", config.limits.max_prompt_tokens)
        _time_stream(runner.stream(request))  # warm-up
        t0 = time.perf_counter()
        _, rate, _ = _time_stream(runner.stream(request))
        total += time.perf_counter() - t0
        figures[role].baseline_tokens_per_second = rate
        quantized, _ = load_runner(spec, config.base_prompted)
        if (figures[role].backend, figures[role].precision) != ("transformers", "fp32"):
            for prompt in BENCH_PROMPTS:
                reference = _greedy_ids(runner, prompt)
                figures[role].greedy_divergence_index.append(_divergence(reference, _greedy_ids(quantized, prompt)))
            figures[role].mean_logprob_gap = _logprob_gap(runner, quantized)
        del runner, quantized
    report["baseline_side_by_side_seconds"] = total
    report["speedup"] = total / report["side_by_side_seconds"]


def _logprob_gap(reference, quantized) -> float | None:
    """Mean over prompts of (fp32 − quantized) mean per-token log-prob of fp32's greedy answer."""
    scorer = getattr(quantized.backend, "continuation_logprobs", None)
    if scorer is None:
        return None
    gaps = []
    for prompt in BENCH_PROMPTS:
        ids = reference.encode(reference.format(prompt, "raw"))
        answer = _greedy_ids(reference, prompt)
        ref = reference.backend.continuation_logprobs(ids, answer)
        quant = scorer(ids, answer)
        gaps.append(statistics.fmean(ref) - statistics.fmean(quant))
    return statistics.fmean(gaps)


def format_table(report: dict) -> str:
    lines = [
        f"{'model':34} {'backend':26} {'load s':>7} {'TTFT s':>7} {'tok/s':>7} {'fp32 tok/s':>10} {'diverge@':>12} {'Δlogp':>7}",
    ]
    for figures in report["models"].values():
        gap = figures["mean_logprob_gap"]
        baseline = figures["baseline_tokens_per_second"]
        lines.append(
            f"{figures['name'][:34]:34} {figures['backend'] + ' ' + figures['precision'] + ' ' + figures['device']:26} "
            f"{figures['load_seconds']:7.2f} {figures['ttft_seconds']:7.3f} {figures['tokens_per_second']:7.1f} "
            f"{(baseline or float('nan')):10.1f} {','.join(map(str, figures['greedy_divergence_index'])) or '-':>12} "
            f"{(gap if gap is not None else float('nan')):7.3f}"
        )
    lines.append("")
    lines.append(f"warm start to serving       {report['warm_start_seconds']:.2f} s")
    lines.append(
        f"side by side, 2×{report['new_tokens']} tokens  {report['side_by_side_seconds']:.2f} s generated, "
        f"{report['side_by_side_scored_seconds']:.2f} s with both scored (median of {SIDE_BY_SIDE_RUNS})"
    )
    if "baseline_side_by_side_seconds" in report:
        lines.append(
            f"naive baseline (fp32, serial) {report['baseline_side_by_side_seconds']:.2f} s  → speedup {report['speedup']:.1f}×"
        )
    scoring = report.get("scoring_seconds")
    lines.append(
        f"scoring both answers        {scoring:.3f} s"
        if scoring is not None
        else f"scoring unavailable: {report.get('scoring_error')}"
    )
    lines.append(
        f"peak RSS of the whole app   {report['peak_rss_mib']:.0f} MiB (summed over its processes; "
        f"PSS after the run {report['pss_mib']:.0f} MiB; sum of per-process peaks {report['high_water_mark_sum_mib']:.0f} MiB)"
    )
    lines.append(f"torch imported by the app   {'yes' if report['torch_imported'] else 'no'}")
    shift = report.get("token_shift")
    if shift:
        lines.append(
            f"token-shift view            {shift['seconds']:.3f} s for {shift['answer_tokens']} answer tokens "
            f"({shift['seconds_per_128_tokens']:.3f} s per 128; first call {shift['first_call_seconds']:.2f} s)"
        )
    throughput = report.get("evaluation_throughput")
    if throughput:
        counts = throughput["answers"]

        def share(key: str) -> str:
            return ", ".join(f"{r} {n}/{counts[r]}" for r, n in throughput[key].items())

        lines.append(
            f"evaluation throughput       {throughput['batched_answers_per_minute']:.1f} answers/min batched vs "
            f"{throughput['one_at_a_time_answers_per_minute']:.1f} one at a time → {throughput['speedup']:.2f}× "
            f"({throughput['prompts']} prompts: base raw + prompted, aligned once; {throughput['new_tokens']} greedy "
            f"tokens each)"
        )
        lines.append(
            f"  batched = one at a time: {share('batched_equal_unbatched')}; "
            f"batched = the same prompt alone in the batch path: {share('batched_equal_alone')}"
        )
    return "\n".join(lines)
