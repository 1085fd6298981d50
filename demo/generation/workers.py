"""Each model generates in a worker of its own, so the two answers stream at the same time.

`ProcessWorker` runs a model in a child process (one intra-op thread each on a 2-core machine:
onnxruntime-genai holds the GIL while it decodes, so two models in one process would take turns).
A worker that dies is restarted on the next request. `InProcessWorker` runs the model on a thread
of this process: for tests and for a GPU host, where one process owns the device.

Both serve one request at a time (a lock per worker) and stream `GenerationEvent`s.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

from ..cache import build_reporter, verify_every_file
from ..config import ModelSpec, PromptedFormat, RuntimeSpec
from ..errors import public_message
from .loading import LoadedModelInfo, detect_device, load_runner
from .runner import Failed, GenerationEvent, GenerationRequest

log = logging.getLogger(__name__)

WorkerState = Literal["loading", "ready", "failed"]
_POLL_SECONDS = 0.02

# A load that fails is tried again (the cache rebuilds what it finds damaged), after a pause
# that grows; a side still failing after the last attempt says so, and the next request that
# needs it starts a new round of attempts.
LOAD_ATTEMPTS = 3
RETRY_PAUSES_SECONDS = (1.0, 4.0)


class _WorkerBase:
    def __init__(self, role: str, spec: ModelSpec, prompted: PromptedFormat, override: RuntimeSpec | None):
        self.role = role
        self.spec = spec
        self.prompted = prompted
        self.override = override
        self.state: WorkerState = "loading"
        self.error: str | None = None
        self.info: LoadedModelInfo | None = None
        self.attempt = 1
        self.progress: str | None = None  # what the load is doing now ("building …"), for the page
        self._ready = threading.Event()
        self._lock = threading.Lock()

    @property
    def loading_note(self) -> str:
        """What the page says while this model loads: the cache's current step and the attempt."""
        note = self.progress or "loading"
        if self.attempt > 1:
            note += f", attempt {self.attempt} of {LOAD_ATTEMPTS}"
        return note

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until loaded or failed; True when the model is ready to generate."""
        self._ready.wait(timeout)
        return self.state == "ready"

    def _loaded(self, info: LoadedModelInfo) -> None:
        self.info, self.state, self.error = info, "ready", None
        self._ready.set()

    def _failed(self, message: str) -> None:
        self.state, self.error, self.progress = "failed", message, None
        log.error("%s model unavailable after %d attempts: %s", self.role, self.attempt, message)
        self._ready.set()

    def _should_retry(self, message: str) -> bool:
        """After a failed attempt: pause and return True when attempts remain."""
        if self.attempt >= LOAD_ATTEMPTS:
            return False
        pause = RETRY_PAUSES_SECONDS[min(self.attempt, len(RETRY_PAUSES_SECONDS)) - 1]
        log.warning(
            "%s: load attempt %d of %d failed (%s); retrying in %.0f s",
            self.role,
            self.attempt,
            LOAD_ATTEMPTS,
            message,
            pause,
        )
        self.progress = f"attempt {self.attempt} failed, retrying in {pause:.0f} s"
        time.sleep(pause)
        self.attempt += 1
        self.progress = None
        return True

    def _unavailable(self) -> Failed:
        if self.state == "loading":
            return Failed(f"{self.spec.name} is still loading ({self.loading_note}); try again in a moment")
        return Failed(f"{self.spec.name} is unavailable: {self.error} Loading it again; try again in a moment.")


def _load_message(spec: ModelSpec, error: BaseException) -> str:
    return public_message(error, f"loading {spec.name}")


def _generation_message(spec: ModelSpec, error: BaseException) -> str:
    return public_message(error, f"generating with {spec.name}")


class InProcessWorker(_WorkerBase):
    """Loads on a background thread; generates on the caller's thread."""

    def start(self) -> InProcessWorker:
        self.state, self.attempt = "loading", 1
        self._ready.clear()
        threading.Thread(target=self._load, name=f"load-{self.role}", daemon=True).start()
        return self

    def _load(self) -> None:
        reporter = build_reporter.set(self._report)
        try:
            while True:
                verify = verify_every_file.set(self.attempt > 1)
                try:
                    self._runner, info = load_runner(self.spec, self.prompted, self.override)
                except Exception as error:  # any load failure leaves the other side serving
                    message = _load_message(self.spec, error)
                    if self._should_retry(message):
                        continue
                    self._failed(message)
                else:
                    self._loaded(info)
                finally:
                    verify_every_file.reset(verify)
                return
        finally:
            build_reporter.reset(reporter)

    def _report(self, text: str) -> None:
        self.progress = text

    def _retry_if_failed(self) -> None:
        if self.state == "failed":
            self.start()

    def stream(
        self, request: GenerationRequest, should_stop: Callable[[], bool] = lambda: False
    ) -> Iterator[GenerationEvent]:
        if self.state != "ready":
            yield self._unavailable()
            self._retry_if_failed()
            return
        with self._lock:
            try:
                yield from self._runner.stream(request, should_stop)
            except Exception as error:
                yield Failed(_generation_message(self.spec, error))

    def call(self, method: str, *args):
        """Run a `ModelRunner` method that returns a whole result (`generate_batch`,
        `answer_logprobs`): what an evaluation needs, no streaming."""
        if method not in _CALLABLE:
            raise ValueError(f"a worker runs only {_CALLABLE}, not {method!r}")
        if self.state != "ready":
            message = self._unavailable().message
            self._retry_if_failed()
            raise RuntimeError(message)
        with self._lock:
            return getattr(self._runner, method)(*args)

    def close(self) -> None:
        pass


# The runner methods a worker runs on request, besides streaming.
_CALLABLE = ("generate_batch", "answer_logprobs", "token_shift")


def _child_main(
    conn,
    spec: ModelSpec,
    prompted: PromptedFormat,
    override: RuntimeSpec | None,
    threads: int,
    device: str,
    verify: bool = False,
) -> None:
    # Thread counts go through the environment, read by each runtime when (if ever) it is
    # imported: onnxruntime-genai reads DEMO_THREADS, torch OMP_NUM_THREADS. Importing torch here
    # to set them would cost an onnxruntime-genai worker ~160 MiB for nothing.
    os.environ["DEMO_THREADS"] = str(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    build_reporter.set(lambda text: conn.send(("progress", text)))
    verify_every_file.set(verify)
    try:
        runner, info = load_runner(spec, prompted, override, device)
    except Exception as error:
        conn.send(("failed", _load_message(spec, error)))
        return
    conn.send(("ready", info))
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message[0] == "shutdown":
            return
        if message[0] == "call":
            _, method, args = message
            try:
                conn.send(("result", getattr(runner, method)(*args)))
            except Exception as error:
                conn.send(("error", _generation_message(spec, error)))
            continue
        if message[0] != "generate":
            continue  # a cancel that arrived after its request ended
        cancelled = False

        def should_stop() -> bool:
            nonlocal cancelled
            while not cancelled and conn.poll():
                cancelled = conn.recv()[0] in ("cancel", "shutdown")
            return cancelled

        try:
            for event in runner.stream(message[1], should_stop):
                conn.send(("event", event))
        except Exception as error:
            conn.send(("event", Failed(_generation_message(spec, error))))
        conn.send(("done", None))


class ProcessWorker(_WorkerBase):
    """A model in a child process; restarted when it dies."""

    def __init__(self, *args, threads: int = 1, device: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.threads = threads
        # Probed here, in the parent, so the child needn't import torch to find out.
        self.device = device or detect_device()
        self.restarts = 0
        self._process: Any = None  # a spawn Process, and below its Pipe end, once start() runs
        self._conn: Any = None

    def start(self) -> ProcessWorker:
        self.attempt = 1
        self.state = "loading"
        self._ready.clear()
        self._spawn()
        threading.Thread(target=self._await_load, name=f"await-{self.role}", daemon=True).start()
        return self

    def _spawn(self) -> None:
        context = mp.get_context("spawn")
        parent, child = context.Pipe()
        verify = self.attempt > 1  # a retry checks every cached file's hash
        self._process = context.Process(
            target=_child_main,
            args=(child, self.spec, self.prompted, self.override, self.threads, self.device, verify),
            name=f"demo-{self.role}",
            daemon=True,
        )
        self._conn = parent
        self._process.start()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def _await_load(self) -> None:
        while True:
            kind, payload = self._receive_load_result()
            if kind == "ready":
                self._loaded(payload)
                return
            if not self._should_retry(payload):
                self._failed(payload)
                return
            self._spawn()

    def _receive_load_result(self) -> tuple[str, Any]:
        """("ready", info) or ("failed", public message), passing progress on to the page."""
        while True:
            try:
                kind, payload = self._conn.recv()
            except (EOFError, OSError):
                self._process.join(5)
                code = self._process.exitcode
                log.error("%s worker process exited while loading (exit code %s)", self.role, code)
                return "failed", f"the model's process stopped while loading (exit code {code})."
            if kind == "progress":
                self.progress = payload
                continue
            return kind, payload

    def _retry_if_failed(self) -> None:
        if self.state == "failed":
            self.start()

    def _restart(self) -> None:
        log.warning("%s worker died (exit code %s); restarting", self.role, self._process.exitcode)
        self.restarts += 1
        self.start()

    def stream(
        self, request: GenerationRequest, should_stop: Callable[[], bool] = lambda: False
    ) -> Iterator[GenerationEvent]:
        with self._lock:
            if self.state == "ready" and not self._process.is_alive():
                self._restart()
                self.wait_ready()
            if self.state != "ready":
                yield self._unavailable()
                self._retry_if_failed()
                return
            self._conn.send(("generate", request))
            finished = cancelled = False
            try:
                while True:
                    if not cancelled and should_stop():
                        self._conn.send(("cancel",))
                        cancelled = True
                    if self._conn.poll(_POLL_SECONDS):
                        kind, payload = self._conn.recv()
                        if kind == "done":
                            finished = True
                            return
                        if kind == "progress":  # a build the request needed (its first batch graph, say)
                            self.progress = payload
                            continue
                        yield payload
                    elif not self._process.is_alive():
                        finished = True
                        yield Failed(f"{self.spec.name} stopped unexpectedly; it is restarting")
                        self._restart()
                        return
            except (EOFError, OSError, BrokenPipeError):
                finished = True
                yield Failed(f"{self.spec.name} stopped unexpectedly; it is restarting")
                self._restart()
            finally:
                if not finished:
                    self._drain()

    def call(self, method: str, *args):
        """`InProcessWorker.call` in the child process; a worker that dies mid-call is restarted
        and the call raises RuntimeError (the caller may retry)."""
        if method not in _CALLABLE:
            raise ValueError(f"a worker runs only {_CALLABLE}, not {method!r}")
        with self._lock:
            if self.state == "ready" and not self._process.is_alive():
                self._restart()
                self.wait_ready()
            if self.state != "ready":
                message = self._unavailable().message
                self._retry_if_failed()
                raise RuntimeError(message)
            try:
                self._conn.send(("call", method, args))
                kind, payload = self._reply()
            except (EOFError, OSError, BrokenPipeError):
                self._restart()
                raise RuntimeError(f"{self.spec.name} stopped unexpectedly; it is restarting") from None
        if kind == "error":
            raise RuntimeError(payload)
        return payload

    def _reply(self) -> tuple[str, Any]:
        """The child's answer to a call: ("result", value) or ("error", message). Progress lines
        that come first (the call built something into the cache, e.g. the all-positions graph on
        a worker's first token-shift view) go to `progress`, not to the caller."""
        while True:
            while not self._conn.poll(_POLL_SECONDS * 10):
                if not self._process.is_alive():
                    raise EOFError
            kind, payload = self._conn.recv()
            if kind != "progress":
                return kind, payload
            self.progress = payload

    def _drain(self, timeout: float = 10.0) -> None:
        """The caller stopped reading mid-answer: cancel and read up to 'done' so the next
        request starts on a clean pipe; a worker that does not answer is replaced."""
        try:
            self._conn.send(("cancel",))
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self._conn.poll(_POLL_SECONDS) and self._conn.recv()[0] == "done":
                    return
        except (EOFError, OSError):
            pass
        self._process.kill()
        self._process.join(5)
        self._restart()

    def close(self) -> None:
        if self._process and self._process.is_alive():
            try:
                self._conn.send(("shutdown",))
            except OSError:
                pass
            self._process.join(3)
            if self._process.is_alive():
                self._process.kill()


Worker = InProcessWorker | ProcessWorker


def start_worker(
    role: str,
    spec: ModelSpec,
    prompted: PromptedFormat,
    *,
    mode: Literal["process", "thread"] = "process",
    override: RuntimeSpec | None = None,
    threads: int = 1,
    device: str | None = None,
    after: Sequence[Worker] = (),
) -> Worker:
    """A worker loading `spec` in the background; with `after`, it waits until those have loaded
    (or failed) before it starts, so the models a visitor meets first get the cores first."""
    worker: Worker
    if mode == "process":
        worker = ProcessWorker(role, spec, prompted, override, threads=threads, device=device)
    else:
        worker = InProcessWorker(role, spec, prompted, override)
    if not after:
        return worker.start()
    worker.progress = "queued: the default pair loads first"

    def start_when_they_are_ready() -> None:
        for earlier in after:
            earlier.wait_ready()
        worker.start()

    threading.Thread(target=start_when_they_are_ready, name=f"queue-{role}", daemon=True).start()
    return worker
