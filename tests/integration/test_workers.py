"""demo/workers.py: a model per worker; a child process that dies is replaced; a caller that
stops reading mid-answer leaves the worker usable."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from demo.config import LocalSource
from demo.generation.runner import Failed, Finished, GenerationRequest, Started, TextDelta
from demo.generation.workers import LOAD_ATTEMPTS, InProcessWorker, ProcessWorker, start_worker
from demo.settings import SamplingSettings

LOAD_TIMEOUT = 60
SAMPLING = SamplingSettings(max_new_tokens=16, temperature=0.7, top_p=0.95, repetition_penalty=1.1, seed=3)
REQUEST = GenerationRequest(prompt="Write a short poem about the sea.", sampling=SAMPLING)
LONG_REQUEST = GenerationRequest(
    prompt="Tell me a long story.",
    sampling=SamplingSettings(max_new_tokens=1500, temperature=1.0, top_p=1.0, repetition_penalty=1.0, seed=5),
)


def collect(worker, request=REQUEST, should_stop=lambda: False) -> list:
    return list(worker.stream(request, should_stop))


def answer(events) -> str:
    assert isinstance(events[-1], Finished), events
    return events[-1].text


def broken_spec(spec, tmp_path: Path):
    return spec.model_copy(update={"source": LocalSource(type="local", path=tmp_path / "no-such-model")})


@pytest.fixture(scope="module")
def aligned_spec(tiny_config):
    # The long request must not end early at <|im_end|>: this spec never emits it.
    return tiny_config.pair_models()["aligned"].model_copy(update={"suppress_tokens": ("<|im_end|>",)})


@pytest.fixture(scope="module")
def in_process(aligned_spec, tiny_config):
    worker = InProcessWorker("aligned", aligned_spec, tiny_config.base_prompted, None).start()
    assert worker.wait_ready(LOAD_TIMEOUT), worker.error
    yield worker
    worker.close()


@pytest.fixture(scope="module")
def good(aligned_spec, tiny_config):
    """One healthy ProcessWorker shared by the tests below (they run in file order)."""
    worker = ProcessWorker("aligned", aligned_spec, tiny_config.base_prompted, None).start()
    yield worker
    worker.close()


# --- in-process worker -------------------------------------------------------------------------


def test_in_process_worker_streams_events(in_process):
    events = collect(in_process)
    assert isinstance(events[0], Started)
    assert all(isinstance(e, TextDelta) for e in events[1:-1])
    assert "".join(e.text for e in events[1:-1]).strip() == answer(events)
    assert in_process.state == "ready" and in_process.info.backend == "transformers"


def test_in_process_worker_reports_prompt_too_long_as_failed(in_process):
    request = GenerationRequest(prompt="word " * 50, sampling=SAMPLING, max_prompt_tokens=10)
    events = collect(in_process, request)
    assert len(events) == 1 and isinstance(events[0], Failed)
    assert "10 tokens" in events[0].message


def test_in_process_worker_that_is_still_loading(aligned_spec, tiny_config):
    worker = InProcessWorker("aligned", aligned_spec, tiny_config.base_prompted, None)  # not started
    events = collect(worker)
    assert len(events) == 1 and isinstance(events[0], Failed)
    assert aligned_spec.name in events[0].message and "loading" in events[0].message


def test_in_process_worker_with_bad_path_fails(aligned_spec, tiny_config, tmp_path):
    spec = broken_spec(aligned_spec, tmp_path)
    worker = InProcessWorker("aligned", spec, tiny_config.base_prompted, None).start()
    assert worker.wait_ready(LOAD_TIMEOUT) is False
    assert worker.state == "failed"
    assert "no-such-model" in worker.error
    assert worker.attempt == LOAD_ATTEMPTS  # retried with pauses before giving up
    assert str(tmp_path) not in worker.error  # no server path reaches a page
    events = collect(worker)
    assert len(events) == 1 and isinstance(events[0], Failed)
    assert spec.name in events[0].message and "no-such-model" in events[0].message
    assert worker.state == "loading"  # the request that found it failed started a new round


def test_start_worker_thread_mode(aligned_spec, tiny_config):
    worker = start_worker("aligned", aligned_spec, tiny_config.base_prompted, mode="thread")
    assert isinstance(worker, InProcessWorker)
    assert worker.wait_ready(LOAD_TIMEOUT)


# --- process worker ----------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_process_worker_streams_the_same_text_as_in_process(good, in_process):
    assert good.wait_ready(LOAD_TIMEOUT), good.error
    assert good.pid and good.pid != os.getpid()
    events = collect(good)
    assert isinstance(events[0], Started)
    reference = collect(in_process)
    assert events[0] == reference[0]
    assert answer(events) == answer(reference)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "".join(
        e.text for e in reference if isinstance(e, TextDelta)
    )


@pytest.mark.timeout(120)
def test_process_worker_with_bad_path_fails(aligned_spec, tiny_config, tmp_path):
    bad = ProcessWorker("base", broken_spec(aligned_spec, tmp_path), tiny_config.base_prompted, None).start()
    assert bad.wait_ready(LOAD_TIMEOUT) is False
    assert bad.state == "failed"
    assert "no-such-model" in bad.error
    assert bad.attempt == LOAD_ATTEMPTS and str(tmp_path) not in bad.error
    events = collect(bad)
    assert len(events) == 1 and isinstance(events[0], Failed)
    assert bad.spec.name in events[0].message
    assert "no-such-model" in events[0].message
    assert bad.restarts == 0  # a load failure is reported, not retried in a loop
    assert bad.state == "loading"  # ... until a request asks for the model again
    bad.close()


@pytest.mark.timeout(120)
def test_process_worker_cancel_via_should_stop(good):
    assert good.wait_ready(LOAD_TIMEOUT)
    seen = []

    def stop_after_first_delta():
        return bool(seen)

    for event in good.stream(LONG_REQUEST, stop_after_first_delta):
        if isinstance(event, TextDelta):
            seen.append(event)
        last = event
    assert isinstance(last, Finished)
    assert last.stop_reason == "cancelled"
    assert last.new_tokens < LONG_REQUEST.sampling.max_new_tokens
    assert good.restarts == 0


@pytest.mark.timeout(120)
def test_closing_the_stream_mid_answer_leaves_the_worker_usable(good, in_process):
    assert good.wait_ready(LOAD_TIMEOUT)
    pid = good.pid
    stream = good.stream(LONG_REQUEST)
    assert isinstance(next(stream), Started)
    assert isinstance(next(stream), TextDelta)
    started = time.monotonic()
    stream.close()  # the browser went away
    assert time.monotonic() - started < 10
    # The pipe was drained: the next answer is the next request's, not the old one's tail.
    events = collect(good)
    assert answer(events) == answer(collect(in_process))
    assert good.restarts == 0 and good.pid == pid


@pytest.mark.timeout(180)
def test_killed_worker_restarts_and_serves_again(good, in_process):
    assert good.wait_ready(LOAD_TIMEOUT)
    old_pid, restarts = good.pid, good.restarts
    os.kill(old_pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while good._process.is_alive() and time.monotonic() < deadline:  # reaps the child
        time.sleep(0.05)
    # The next request either restarts the worker first, or fails once and restarts it.
    for _ in range(3):
        events = collect(good)
        if isinstance(events[-1], Finished):
            break
        assert isinstance(events[-1], Failed)
        assert good.spec.name in events[-1].message
        good.wait_ready(LOAD_TIMEOUT)
    assert isinstance(events[-1], Finished), events
    assert good.restarts == restarts + 1 == 1
    assert good.pid != old_pid
    assert good.state == "ready"
    assert answer(events) == answer(collect(in_process))


# --- loading in threads ------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_in_process_workers_do_not_load_models_concurrently(monkeypatch, tiny_config):
    """Thread mode (the GPU default) starts both workers at once; their loads must not overlap.
    The back end is a stub here, so this checks the serialization without touching the
    transformers globals that a real overlapping load corrupts."""
    import threading

    import demo.generation.loading

    guard, active, peak = threading.Lock(), [0], [0]

    class SlowStubBackend:
        eos_token_ids = ()

        @classmethod
        def load(cls, checkpoint, precision, device, trust_remote_code=False, options=None):
            with guard:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            time.sleep(1.0)
            with guard:
                active[0] -= 1
            return cls()

    class StubEntry:
        def generator_class(self):
            return SlowStubBackend

    monkeypatch.setattr(demo.generation.loading, "backend_entry", lambda name: StubEntry())
    workers = [
        InProcessWorker(role, tiny_config.pair_models()[role], tiny_config.base_prompted, None).start()
        for role in ("base", "aligned")
    ]
    for worker in workers:
        assert worker.wait_ready(30), worker.error
    assert peak[0] == 1
