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
from collections.abc import Callable, Iterator
from typing import Any, Literal

from ..config import ModelSpec, PromptedFormat, RuntimeSpec
from .loading import LoadedModelInfo, detect_device, load_runner
from .runner import Failed, GenerationEvent, GenerationRequest, PromptTooLong

log = logging.getLogger(__name__)

WorkerState = Literal["loading", "ready", "failed"]
_POLL_SECONDS = 0.02


class _WorkerBase:
    def __init__(self, role: str, spec: ModelSpec, prompted: PromptedFormat, override: RuntimeSpec | None):
        self.role = role
        self.spec = spec
        self.prompted = prompted
        self.override = override
        self.state: WorkerState = "loading"
        self.error: str | None = None
        self.info: LoadedModelInfo | None = None
        self._ready = threading.Event()
        self._lock = threading.Lock()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until loaded or failed; True when the model is ready to generate."""
        self._ready.wait(timeout)
        return self.state == "ready"

    def _loaded(self, info: LoadedModelInfo) -> None:
        self.info, self.state, self.error = info, "ready", None
        self._ready.set()

    def _failed(self, message: str) -> None:
        self.state, self.error = "failed", message
        log.error("%s model unavailable: %s", self.role, message)
        self._ready.set()

    def _unavailable(self) -> Failed:
        if self.state == "loading":
            return Failed(f"{self.spec.name} is still loading; try again in a moment")
        return Failed(f"{self.spec.name} is unavailable: {self.error}")


def _describe_error(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text if isinstance(error, (PromptTooLong, RuntimeError, OSError)) else f"{type(error).__name__}: {text}"


class InProcessWorker(_WorkerBase):
    """Loads on a background thread; generates on the caller's thread."""

    def start(self) -> InProcessWorker:
        threading.Thread(target=self._load, name=f"load-{self.role}", daemon=True).start()
        return self

    def _load(self) -> None:
        try:
            self._runner, info = load_runner(self.spec, self.prompted, self.override)
        except Exception as error:  # any load failure leaves the other side serving
            self._failed(_describe_error(error))
        else:
            self._loaded(info)

    def stream(
        self, request: GenerationRequest, should_stop: Callable[[], bool] = lambda: False
    ) -> Iterator[GenerationEvent]:
        if self.state != "ready":
            yield self._unavailable()
            return
        with self._lock:
            try:
                yield from self._runner.stream(request, should_stop)
            except Exception as error:
                yield Failed(_describe_error(error))

    def call(self, method: str, *args):
        """Run a `ModelRunner` method that returns a whole result (`generate_batch`,
        `answer_logprobs`): what an evaluation needs, no streaming."""
        if method not in _CALLABLE:
            raise ValueError(f"a worker runs only {_CALLABLE}, not {method!r}")
        if self.state != "ready":
            raise RuntimeError(self._unavailable().message)
        with self._lock:
            return getattr(self._runner, method)(*args)

    def close(self) -> None:
        pass


# The runner methods a worker runs on request, besides streaming.
_CALLABLE = ("generate_batch", "answer_logprobs")


def _child_main(
    conn, spec: ModelSpec, prompted: PromptedFormat, override: RuntimeSpec | None, threads: int, device: str
) -> None:
    # Thread counts go through the environment, read by each runtime when (if ever) it is
    # imported: onnxruntime-genai reads DEMO_THREADS, torch OMP_NUM_THREADS. Importing torch here
    # to set them would cost an onnxruntime-genai worker ~160 MiB for nothing.
    os.environ["DEMO_THREADS"] = str(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        runner, info = load_runner(spec, prompted, override, device)
    except Exception as error:
        conn.send(("failed", _describe_error(error)))
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
                conn.send(("error", _describe_error(error)))
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
            conn.send(("event", Failed(_describe_error(error))))
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
        context = mp.get_context("spawn")
        parent, child = context.Pipe()
        self._process = context.Process(
            target=_child_main,
            args=(child, self.spec, self.prompted, self.override, self.threads, self.device),
            name=f"demo-{self.role}",
            daemon=True,
        )
        self.state, self._conn = "loading", parent
        self._ready.clear()
        self._process.start()
        threading.Thread(target=self._await_load, name=f"await-{self.role}", daemon=True).start()
        return self

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def _await_load(self) -> None:
        try:
            kind, payload = self._conn.recv()
        except (EOFError, OSError):
            self._failed(f"the worker process exited while loading (exit code {self._process.exitcode})")
            return
        if kind == "ready":
            self._loaded(payload)
        else:
            self._failed(payload)

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
                raise RuntimeError(self._unavailable().message)
            try:
                self._conn.send(("call", method, args))
                while not self._conn.poll(_POLL_SECONDS * 10):
                    if not self._process.is_alive():
                        raise EOFError
                kind, payload = self._conn.recv()
            except (EOFError, OSError, BrokenPipeError):
                self._restart()
                raise RuntimeError(f"{self.spec.name} stopped unexpectedly; it is restarting") from None
        if kind == "error":
            raise RuntimeError(payload)
        return payload

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
) -> Worker:
    if mode == "process":
        return ProcessWorker(role, spec, prompted, override, threads=threads, device=device).start()
    return InProcessWorker(role, spec, prompted, override).start()
