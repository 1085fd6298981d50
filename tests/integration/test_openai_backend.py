"""The `openai` back end: against a scripted SSE server (parsing, stops, errors, cancel) and
against a real `transformers serve` on a tiny random model, compared with the in-process path."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from demo.backend_registry import REGISTRY
from demo.config import ModelSpec, RuntimeSpec
from demo.generation.backends.openai_backend import OpenAICompletionsGenerator, Options
from demo.generation.runner import Finished, GenerationRequest, Started, TextDelta
from demo.generation.workers import InProcessWorker
from demo.paths import REPO_ROOT
from demo.settings import SamplingSettings

GREEDY = SamplingSettings(max_new_tokens=16, temperature=0.0, repetition_penalty=1.0, seed=7)


def _chunk(text: str = "", finish_reason: str | None = None) -> str:
    choice = {"index": 0, "text": text} | ({"finish_reason": finish_reason} if finish_reason else {})
    return "data: " + json.dumps({"object": "text_completion", "choices": [choice]})


class FakeServer:
    """A one-route SSE server whose answer each test scripts; records what it was sent."""

    def __init__(self):
        self.status = 200
        self.content_type = "text/event-stream"
        self.lines: list[str] = []
        self.delay = 0.0  # seconds before each line
        self.requests: list[dict] = []
        self.disconnected = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                self.send_response(fake.status)
                self.send_header("Content-Type", fake.content_type)
                self.end_headers()
                try:
                    for line in fake.lines:
                        time.sleep(fake.delay)
                        self.wfile.write((line + "\n\n").encode())
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    fake.disconnected.set()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake():
    server = FakeServer()
    yield server
    server.close()


def _generator(url: str, **options) -> OpenAICompletionsGenerator:
    return OpenAICompletionsGenerator.load(Path("."), None, "cpu", options=Options(base_url=url, model="m", **options))


def _answer(generator, prompt="Hi", sampling=GREEDY, stops=(), suppress=()) -> list[str]:
    return list(generator.generate_text(prompt, [1, 2], sampling, stop_sequences=stops, suppress_ids=suppress))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- configuration -----------------------------------------------------------------------------


def test_registry_entry_has_no_precision_and_validates_its_options():
    assert REGISTRY["openai"].precisions == ()
    runtime = RuntimeSpec(backend="openai", base_url="http://localhost:8000/v1/", model="m", api_key_env="KEY")
    assert runtime.precision is None
    assert runtime.options().completions_url == "http://localhost:8000/v1/completions"
    assert Options(base_url="https://h.example", model="m").completions_url == "https://h.example/v1/completions"
    with pytest.raises(ValueError, match="http:// or https://"):
        RuntimeSpec(backend="openai", base_url="localhost:8000", model="m")
    with pytest.raises(ValueError, match="api_keyy"):
        RuntimeSpec(backend="openai", base_url="http://h", model="m", api_keyy="KEY")


def test_backend_module_is_import_light():
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, demo.generation.backends.openai_backend; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers', 'httpx', 'openai'}))",
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_missing_api_key_is_named_at_load(monkeypatch):
    monkeypatch.delenv("DEMO_TEST_NO_KEY", raising=False)
    with pytest.raises(RuntimeError, match=r"\$DEMO_TEST_NO_KEY, which is not set"):
        _generator("http://127.0.0.1:9", api_key_env="DEMO_TEST_NO_KEY")


# --- streaming ---------------------------------------------------------------------------------


def test_streams_text_pieces_until_finish_reason(fake, monkeypatch):
    monkeypatch.setenv("DEMO_TEST_KEY", "sekret")
    fake.lines = [": keep-alive", _chunk("Hel"), _chunk(""), _chunk("lo"), _chunk("", "stop"), _chunk("NEVER")]
    sampling = SamplingSettings(max_new_tokens=9, temperature=0.7, top_p=0.9, repetition_penalty=1.2, seed=5)
    pieces = _answer(_generator(fake.url, api_key_env="DEMO_TEST_KEY"), "Say hi", sampling, ("\nUser:",), (3, 4))
    assert pieces == ["Hel", "lo"]
    (request,) = fake.requests
    assert request["path"] == "/v1/completions"
    assert request["headers"]["Authorization"] == "Bearer sekret"
    assert request["body"] == {
        "model": "m",
        "prompt": "Say hi",
        "max_tokens": 9,
        "temperature": 0.7,
        "stream": True,
        "stream_options": {"include_usage": True},
        "seed": 5,
        "top_p": 0.9,
        "repetition_penalty": 1.2,
        "stop": ["\nUser:"],
        "logit_bias": {"3": -100, "4": -100},
    }


def test_done_ends_the_stream(fake):
    fake.lines = [_chunk("a"), "event: ping", _chunk("b"), "data: [DONE]", _chunk("NEVER")]
    assert _answer(_generator(fake.url)) == ["a", "b"]


def test_tokens_that_brought_no_text_are_counted_from_the_reported_usage(fake):
    """Half an emoji or a skipped special token arrives as no text; usage says how many came."""
    usage = 'data: {"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 5}}'
    fake.lines = [_chunk("a"), _chunk("😀"), _chunk("", "length"), usage, "data: [DONE]"]
    assert _answer(_generator(fake.url)) == ["a", "😀", "", "", ""]


def test_neutral_settings_and_omitted_fields_are_not_sent(fake):
    fake.lines = ["data: [DONE]"]
    generator = _generator(
        fake.url + "/v1", prompt_as="token_ids", omit=("seed", "stream_options"), extra_body={"top_k": 20}
    )
    assert _answer(generator) == []
    assert fake.requests[0]["path"] == "/v1/completions"
    assert fake.requests[0]["body"] == {
        "model": "m",
        "prompt": [1, 2],
        "max_tokens": 16,
        "temperature": 0.0,
        "stream": True,
        "top_k": 20,
    }
    assert "Authorization" not in fake.requests[0]["headers"]


def test_runner_streams_a_served_model_with_the_apps_own_input(fake, tiny_llama_dir, tiny_config):
    """Loaded through models.yaml's path (config → registry → load_runner): the page shows the
    chat-formatted text, which is exactly the prompt sent, and a stop sequence cuts the answer."""
    from demo.generation.loading import load_runner

    aligned = tiny_config.pair_models()["aligned"]
    spec = ModelSpec.model_validate(
        aligned.model_dump(exclude={"cpu", "gpu", "runtime"})
        | {"runtime": {"backend": "openai", "base_url": fake.url, "model": "tiny"}, "stop_sequences": ["STOP"]}
    )
    runner, info = load_runner(spec, tiny_config.base_prompted)
    assert (info.backend, info.precision) == ("openai", "served")
    fake.lines = [_chunk("Hello"), _chunk(" there ST"), _chunk("OP and more"), _chunk("", "length")]
    events = list(runner.stream(GenerationRequest(prompt="Say hi", sampling=GREEDY)))
    started, finished = events[0], events[-1]
    assert isinstance(started, Started) and isinstance(finished, Finished)
    body = fake.requests[0]["body"]
    assert body["prompt"] == started.input_text and "<|im_start|>user\nSay hi<|im_end|>" in body["prompt"]
    assert body["stop"] == ["STOP"]
    assert (finished.text, finished.stop_reason) == ("Hello there", "stop_sequence")


def test_closing_the_answer_closes_the_connection(fake):
    fake.lines, fake.delay = [_chunk(f"t{i} ") for i in range(400)], 0.01
    pieces = _generator(fake.url).generate_text("Hi", [1], GREEDY, stop_sequences=(), suppress_ids=())
    assert [next(pieces), next(pieces)] == ["t0 ", "t1 "]
    pieces.close()
    assert fake.disconnected.wait(3.0), "the server kept streaming to a closed answer"


# --- errors: one clear message naming the server -----------------------------------------------


def test_refused_connection(fake):
    port = _free_port()
    with pytest.raises(RuntimeError) as raised:
        _answer(_generator(f"http://127.0.0.1:{port}"))
    assert str(raised.value) == (
        f"cannot reach the server at http://127.0.0.1:{port}/v1/completions "
        "(connection refused; is the server running on that port?)"
    )


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (500, {"error": {"message": "CUDA out of memory", "type": "server_error"}}, "HTTP 500: CUDA out of memory"),
        (422, {"detail": "Unexpected fields in the request: {'repetition_penalty'}"}, "HTTP 422: Unexpected fields"),
        (401, {"error": "bad key"}, "HTTP 401: bad key; check the API key"),
    ],
)
def test_http_errors(fake, status, body, expected):
    fake.status, fake.content_type, fake.lines = status, "application/json", [json.dumps(body)]
    with pytest.raises(RuntimeError, match=rf"^the server at {fake.url}/v1/completions answered {expected}"):
        _answer(_generator(fake.url))


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([_chunk("ok"), "data: {not json"], r"sent a malformed stream line .*'\{not json'"),
        ([_chunk("ok"), 'data: {"choices": []}'], "sent a malformed stream line"),
        ([_chunk("ok"), 'data: {"error": "generation crashed"}'], "failed mid-answer: generation crashed"),
        ([_chunk("ok")], "closed the stream before the answer finished"),
    ],
)
def test_broken_streams(fake, lines, expected):
    fake.lines = lines
    pieces = _generator(fake.url).generate_text("Hi", [1], GREEDY, stop_sequences=(), suppress_ids=())
    assert next(pieces) == "ok"  # what arrived before the failure was already shown
    with pytest.raises(RuntimeError, match=f"^the server at {fake.url}/v1/completions {expected}"):
        next(pieces)


def test_a_server_that_does_not_stream(fake):
    fake.content_type, fake.lines = "application/json", ['{"choices": [{"text": "all at once"}]}']
    with pytest.raises(RuntimeError, match="did not stream"):
        _answer(_generator(fake.url))


def test_a_silent_server_times_out(fake):
    fake.lines, fake.delay = [_chunk("late")], 2.0
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=r"stopped sending for 0.3 s mid-answer"):
        _answer(_generator(fake.url, timeout_seconds=0.3))
    assert time.monotonic() - started < 1.5


def test_an_unreachable_server_is_one_message_on_its_side(tiny_config):
    """The worker turns the back end's RuntimeError into that side's `Failed`, nothing more."""
    aligned = tiny_config.pair_models()["aligned"]
    port = _free_port()
    spec = ModelSpec.model_validate(
        aligned.model_dump(exclude={"cpu", "gpu", "runtime"})
        | {"runtime": {"backend": "openai", "base_url": f"http://127.0.0.1:{port}", "model": "tiny"}}
    )
    worker = InProcessWorker("aligned", spec, tiny_config.base_prompted, None).start()
    assert worker.wait_ready(60), worker.error
    events = list(worker.stream(GenerationRequest(prompt="Hi", sampling=GREEDY)))
    assert isinstance(events[0], Started)
    assert events[-1].message == (
        f"cannot reach the server at http://127.0.0.1:{port}/v1/completions "
        "(connection refused; is the server running on that port?)"
    )


# --- a real server: `transformers serve` on the tiny models ------------------------------------


def _serving_extra_missing() -> str | None:
    missing = [name for name in ("fastapi", "uvicorn", "openai") if importlib.util.find_spec(name) is None]
    return (
        f"transformers[serving] is not installed (missing {', '.join(missing)}); see requirements-dev.txt"
        if missing
        else None
    )


@pytest.fixture(scope="module")
def transformers_serve():
    """`transformers serve` on a free loopback port, loading models by local path on demand."""
    reason = _serving_extra_missing()
    if reason:
        pytest.skip(reason)
    port = _free_port()
    cli = Path(sys.executable).with_name("transformers")
    command = [str(cli)] if cli.exists() else [sys.executable, "-m", "transformers.cli.transformers"]
    server = subprocess.Popen(
        command + ["serve", "--host", "127.0.0.1", "--port", str(port), "--device", "cpu", "--dtype", "float32"],
        env=dict(os.environ, OMP_NUM_THREADS="1", TRANSFORMERS_VERBOSITY="error"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if server.poll() is not None:
                pytest.fail(f"transformers serve exited with {server.returncode}: {server.stderr.read()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1) as health:
                    if health.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("transformers serve did not become ready within 90 s")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)


def _served(spec: ModelSpec, url: str, checkpoint: Path) -> ModelSpec:
    # transformers serve takes the model's local path as its name, and rejects fields it does
    # not know (repetition_penalty) with a 422 rather than ignoring them.
    runtime = {"backend": "openai", "base_url": url, "model": str(checkpoint), "omit": ["repetition_penalty"]}
    return ModelSpec.model_validate(spec.model_dump(exclude={"cpu", "gpu", "runtime"}) | {"runtime": runtime})


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    ("role", "base_mode"),
    [("aligned", "raw"), ("base", "prompted")],  # a chat template (no BOS added); a base prompt (BOS added)
)
def test_served_answer_matches_in_process_at_temperature_0(
    transformers_serve, tiny_config, tiny_llama_dir, tiny_gemma_dir, role, base_mode
):
    """Same checkpoint, same formatted input, greedy: the served answer is the in-process one.

    The server sends text, not ids, so the comparison is on the decoded answer and the number of
    tokens the server reports (usage.completion_tokens) against the in-process token count."""
    from demo.generation.loading import load_runner

    # transformers serve accepts logit_bias but ignores it (its generation config never reads
    # it), so both sides run without suppressed tokens: like is compared with like.
    spec = tiny_config.pair_models()[role].model_copy(update={"suppress_tokens": ()})
    checkpoint = tiny_llama_dir if role == "aligned" else tiny_gemma_dir
    request = GenerationRequest(
        prompt="Name three primary colours.",
        base_mode=base_mode,
        sampling=SamplingSettings(max_new_tokens=20, temperature=0.0, repetition_penalty=1.0, seed=3),
    )
    local, _ = load_runner(spec, tiny_config.base_prompted)
    served, _ = load_runner(_served(spec, transformers_serve, checkpoint), tiny_config.base_prompted)

    local_events = list(local.stream(request))
    served_events = list(served.stream(request))
    assert [type(e) for e in served_events[:1] + served_events[-1:]] == [Started, Finished], served_events[-1]
    assert served_events[0] == local_events[0]  # the same exact input text and prompt length
    local_end, served_end = local_events[-1], served_events[-1]
    # Unstripped, piece by piece joined: the tiny Llama greedily repeats the chat template's last
    # "\n", which `Finished.text` strips to ""; the tiny Gemma rambles (bytes, U+FFFD and all).
    local_text = "".join(e.text for e in local_events if isinstance(e, TextDelta))
    assert local_text.strip() or local_text.count("\n") == local_end.new_tokens
    assert "".join(e.text for e in served_events if isinstance(e, TextDelta)) == local_text
    assert (served_end.text, served_end.stop_reason) == (local_end.text, local_end.stop_reason)

    # The server tokenized the text itself: it saw the same ids iff its prompt_tokens match ours,
    # and it generated as many tokens as the in-process loop did.
    stops = list(local.format(request.prompt, base_mode).stop_sequences)
    body = json.dumps(
        {
            "model": str(checkpoint),
            "prompt": local_events[0].input_text,
            "max_tokens": 20,
            "temperature": 0.0,
            "stream": False,
        }
        | ({"stop": stops} if stops else {})
    ).encode()
    post = urllib.request.Request(f"{transformers_serve}/v1/completions", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(post, timeout=60) as response:
        usage = json.load(response)["usage"]
    assert usage["prompt_tokens"] == local_events[0].prompt_tokens
    assert usage["completion_tokens"] == local_end.new_tokens


def test_the_vllm_config_loads():
    from demo.config import load_config
    from demo.paths import REPO_ROOT

    config = load_config(REPO_ROOT / "configs" / "vllm.yaml")
    runtimes = [config.models[model_id].runtime for model_id in config.served_model_ids()]
    assert [r.backend for r in runtimes] == ["openai", "openai"]
    assert {r.options().api_key_env for r in runtimes} == {"VLLM_API_KEY"}
