"""Many users at once: 8 gradio_client clients on threads, 2 prompts each, all sent together.

All 16 must be answered; each answer must belong to its own request (prompt echoed, the model
inputs built from that prompt); and a prompt + seed answered in the crowd must equal the same
prompt + seed answered alone (no sampling state leaking between users). Run with the shipped
limits (one comparison at a time, a queue of 16) and with 4 comparisons at once, where both
models' workers are shared by interleaved requests.

`pytest -s` prints the latency figures; they are also written to artifacts/concurrency.md.
"""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from app_server import app_fixture, artifacts_dir, run_with_timeout

pytestmark = pytest.mark.timeout(300)

USERS = 8
PROMPTS_PER_USER = 2
MAX_NEW_TOKENS = 16
OVERALL_TIMEOUT = 180.0

shipped_limits = app_fixture()  # concurrency_limit 1, max_queue_size 16, as in models.yaml
four_at_once = app_fixture(limits={"concurrency_limit": 4, "max_queue_size": 32})

_report: dict[str, str] = {}


def _requests():
    return [
        (user, k, f"User {user} asks question {k}: why is the sky blue?", 1000 + 10 * user + k)
        for user in range(USERS)
        for k in range(PROMPTS_PER_USER)
    ]


def _crowd(app) -> list[dict]:
    """All users connect, wait for each other, then send both their prompts at once."""
    barrier = threading.Barrier(USERS)
    requests = _requests()

    def user(user_id: int) -> list[dict]:
        client = app.client()
        mine = [r for r in requests if r[0] == user_id]
        barrier.wait(timeout=60)
        jobs = []
        for _, k, prompt, seed in mine:
            sent = time.perf_counter()
            job = client.submit(
                prompt=prompt, max_new_tokens=MAX_NEW_TOKENS, temperature=1.0, top_p=1.0, seed=seed, api_name="/compare"
            )
            jobs.append((k, prompt, seed, sent, job))
        answers = []
        for k, prompt, seed, sent, job in jobs:
            result = job.result(timeout=OVERALL_TIMEOUT)
            answers.append(
                dict(user=user_id, k=k, prompt=prompt, seed=seed, result=result, latency=time.perf_counter() - sent)
            )
        return answers

    with ThreadPoolExecutor(max_workers=USERS) as pool:
        futures = [pool.submit(user, u) for u in range(USERS)]
        return [answer for f in futures for answer in f.result(timeout=OVERALL_TIMEOUT)]


def _check(app, name: str) -> None:
    started = time.perf_counter()
    answers = run_with_timeout(_crowd, OVERALL_TIMEOUT, app)
    wall = time.perf_counter() - started

    assert len(answers) == USERS * PROMPTS_PER_USER
    assert {(a["user"], a["k"]) for a in answers} == {(u, k) for u, k, _, _ in _requests()}
    for a in answers:
        result = a["result"]
        assert result["prompt"] == a["prompt"], "an answer came back to the wrong request"
        assert result["error"] is None
        assert result["base"]["input_text"] == a["prompt"]
        assert f"user\n{a['prompt']}<|im_end|>" in result["aligned"]["input_text"]
        for role in ("base", "aligned"):
            assert result[role]["error"] is None, result[role]["error"]
            assert 1 <= result[role]["new_tokens"] <= MAX_NEW_TOKENS

    # The same prompt + seed alone (one client, one request at a time) gives the same answers.
    alone = app.client()
    for a in answers:
        single = alone.predict(
            prompt=a["prompt"],
            max_new_tokens=MAX_NEW_TOKENS,
            temperature=1.0,
            top_p=1.0,
            seed=a["seed"],
            api_name="/compare",
        )
        for role in ("base", "aligned"):
            assert single[role]["text"] == a["result"][role]["text"], (
                f"{role} answer to {a['prompt']!r} (seed {a['seed']}) differs in the crowd"
            )
    # Different seeds/prompts do give different answers (the check above is not vacuous).
    assert len({a["result"]["aligned"]["text"] for a in answers}) > 1

    latencies = sorted(a["latency"] for a in answers)
    p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
    limits = app.config.limits
    _report[name] = (
        f"| {name} | {limits.concurrency_limit} | {limits.max_queue_size} | {len(answers)}/{len(answers)} | "
        f"{statistics.median(latencies):.2f} | {p95:.2f} | {latencies[-1]:.2f} | {wall:.2f} |"
    )
    _write_report()


def _write_report() -> None:
    lines = [
        f"{USERS} gradio_client users x {PROMPTS_PER_USER} prompts sent at once; "
        f"max_new_tokens {MAX_NEW_TOKENS}; tiny random-weight models, thread workers",
        "",
        "| run | concurrency_limit | max_queue_size | answered | p50 s | p95 s | max s | wall s |",
        "|---|---|---|---|---|---|---|---|",
        *_report.values(),
    ]
    text = "\n".join(lines)
    (artifacts_dir() / "concurrency.md").write_text("# Concurrency\n\n" + text + "\n", encoding="utf-8")
    print("\n" + text)


def test_sixteen_requests_at_once_with_shipped_limits(shipped_limits):
    _check(shipped_limits, "shipped limits")


def test_sixteen_requests_at_once_four_comparisons_in_parallel(four_at_once):
    _check(four_at_once, "4 in parallel")
