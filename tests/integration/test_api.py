"""The public `/compare` API, through gradio_client against the app served in-process with the
tiny random-weight models (tests/app_server.py, tests/conftest.py)."""

from __future__ import annotations

import pytest
from app_server import app_fixture

pytestmark = pytest.mark.timeout(300)

SIDE_KEYS = {"model", "input_text", "text", "new_tokens", "seconds", "reward", "toxicity", "toxic"}

app = app_fixture()


@pytest.fixture(scope="module")
def client(app):
    return app.client()


def compare(client, prompt, **kwargs):
    return client.predict(prompt=prompt, api_name="/compare", **kwargs)


def test_compare_returns_both_scored_answers(app, client):
    result = compare(
        client, "Explain the moon landing to a six year old.", max_new_tokens=8, temperature=0.7, top_p=0.95, seed=3
    )
    assert isinstance(result, dict)
    assert {"prompt", "base", "aligned", "preferred"} <= set(result)
    assert result["prompt"] == "Explain the moon landing to a six year old."
    assert result["preferred"] in {"base", "aligned", "tie"}
    assert result.get("error") is None
    for role in ("base", "aligned"):
        side = result[role]
        assert SIDE_KEYS <= set(side), f"{role} lacks {SIDE_KEYS - set(side)}"
        assert side["model"] == app.config.pair_models()[role].name
        assert side["error"] is None
        assert 1 <= side["new_tokens"] <= 8
        assert isinstance(side["text"], str)
        assert side["seconds"] > 0
        assert 0.0 <= side["toxicity"] <= 1.0
        assert side["toxic"] == (side["toxicity"] >= app.config.scoring.toxicity_threshold)
    # The tiny config has no reward head: the reward is missing, never invented, and so no winner.
    assert result["base"]["reward"] is None and result["aligned"]["reward"] is None
    assert result["preferred"] == "tie"
    # What each model received: the chat template for the aligned model, the raw prompt for base.
    assert result["aligned"]["input_text"].startswith("<|im_start|>system\n")
    assert "<|im_start|>user\nExplain the moon landing" in result["aligned"]["input_text"]
    assert result["base"]["input_text"] == "Explain the moon landing to a six year old."


def test_only_prompt_is_required(app, client):
    result = compare(client, "Name three primary colours.")
    defaults = app.config.generation
    for role in ("base", "aligned"):
        assert result[role]["error"] is None
        assert 1 <= result[role]["new_tokens"] <= defaults.max_new_tokens
    # The defaults are the config's: same answer as sending them explicitly.
    explicit = compare(
        client,
        "Name three primary colours.",
        max_new_tokens=defaults.max_new_tokens,
        temperature=defaults.temperature,
        top_p=defaults.top_p,
        seed=defaults.seed,
        repetition_penalty=defaults.repetition_penalty,
        base_format="raw",
    )
    assert [explicit[r]["text"] for r in ("base", "aligned")] == [result[r]["text"] for r in ("base", "aligned")]


def test_same_seed_same_texts_other_seed_other_texts(client):
    kwargs = dict(max_new_tokens=16, temperature=1.0, top_p=1.0)
    first = compare(client, "Write a short poem about the sea.", seed=7, **kwargs)
    again = compare(client, "Write a short poem about the sea.", seed=7, **kwargs)
    other = compare(client, "Write a short poem about the sea.", seed=8, **kwargs)
    for role in ("base", "aligned"):
        assert first[role]["text"] == again[role]["text"]
        assert first[role]["new_tokens"] == again[role]["new_tokens"]
    assert any(first[r]["text"] != other[r]["text"] for r in ("base", "aligned"))


def test_server_caps_max_new_tokens(app, client):
    cap = app.config.limits.max_new_tokens
    result = compare(client, "Tell me a story.", max_new_tokens=10_000, temperature=1.0, seed=1)
    for role in ("base", "aligned"):
        assert result[role]["error"] is None
        assert 1 <= result[role]["new_tokens"] <= cap


@pytest.mark.parametrize("value", [0, -5])
def test_server_raises_max_new_tokens_to_at_least_one(client, value):
    result = compare(client, "Hello", max_new_tokens=value, seed=1)
    for role in ("base", "aligned"):
        assert result[role]["error"] is None
        assert result[role]["new_tokens"] == 1


def test_out_of_range_sampling_settings_are_clamped_not_fatal(client):
    result = compare(
        client, "Hello", max_new_tokens=4, temperature=99.0, top_p=-1.0, repetition_penalty=50.0, seed=2**40
    )
    for role in ("base", "aligned"):
        assert result[role]["error"] is None
        assert result[role]["new_tokens"] >= 1


def test_prompted_base_format_wraps_the_prompt(app, client):
    result = compare(client, "What is the capital of France?", max_new_tokens=4, base_format="prompted")
    base_input = result["base"]["input_text"]
    assert base_input.startswith(app.config.base_prompted.prefix)
    assert base_input.endswith("Instruction: What is the capital of France?\nAnswer:")


def test_only_compare_is_a_public_named_endpoint(client):
    api = client.view_api(print_info=False, return_format="dict")
    assert list(api["named_endpoints"]) == ["/compare"]
    assert not api["unnamed_endpoints"]
    parameters = {p["parameter_name"]: p for p in api["named_endpoints"]["/compare"]["parameters"]}
    assert list(parameters) == [
        "prompt",
        "max_new_tokens",
        "temperature",
        "top_p",
        "seed",
        "repetition_penalty",
        "base_format",
        "pair",
        "token_shift",
    ]
    assert not parameters["prompt"]["parameter_has_default"]
    assert all(p["parameter_has_default"] for name, p in parameters.items() if name != "prompt")


def test_ui_events_are_not_offered_to_api_clients(client):
    # The page's events (run, stop, clear, examples) are api_visibility="private": gradio_client
    # does not offer them. (Over plain HTTP gradio 6 still accepts /gradio_api/call/run, which
    # runs the same validated, clamped, concurrency-limited path as the page.)
    with pytest.raises(Exception):
        client.predict("hello", api_name="/run")


def _raw_call(url: str, data: list) -> tuple[str, str]:
    """POST /gradio_api/call/compare as curl would (the "Use via API" page); (event, data)."""
    import json
    import urllib.request

    request = urllib.request.Request(
        url + "gradio_api/call/compare",
        data=json.dumps({"data": data}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        event_id = json.load(response)["event_id"]
    with urllib.request.urlopen(url + f"gradio_api/call/compare/{event_id}", timeout=60) as response:
        lines = response.read().decode().splitlines()
    events = [line.split(": ", 1)[1] for line in lines if line.startswith("event: ")]
    payloads = [line.split(": ", 1)[1] for line in lines if line.startswith("data: ")]
    return events[-1], payloads[-1]  # the last one: complete or error (after any heartbeats)


def test_raw_http_call_with_every_argument(app):
    event, payload = _raw_call(app.url, ["Hello", 4, 0.7, 0.9, 1, 1.1, "raw"])
    assert event == "complete", payload
    assert '"prompt": "Hello"' in payload


# --- regressions: bugs found while writing these tests (fixed in demo/) -----------------------


def test_raw_http_call_with_null_optionals_uses_defaults(app):
    """Plain HTTP/JS clients may send null for an optional argument; it means the default
    (was: int(None) -> TypeError -> `event: error`, `{"error": null}`)."""
    event, payload = _raw_call(app.url, ["Hello", None, None, None, None, None, None])
    assert event == "complete", payload


def test_clamp_settings_bounds_non_finite_values():
    """(was: min(max(nan, lo), hi) is nan, so NaN passed the bounds; inf raised OverflowError)"""
    import math

    from demo.config import Limits
    from demo.settings import SamplingSettings, clamp_settings

    nan = float("nan")
    clamped = clamp_settings(SamplingSettings(temperature=nan, top_p=nan, repetition_penalty=nan), Limits())
    assert all(math.isfinite(v) for v in (clamped.temperature, clamped.top_p, clamped.repetition_penalty))
    assert 0.0 <= clamped.temperature <= 2.0 and 0.0 < clamped.top_p <= 1.0
    capped = clamp_settings(SamplingSettings(max_new_tokens=float("inf")), Limits()).max_new_tokens
    assert 1 <= capped <= Limits().max_new_tokens


_LOAD_IN_THREADS = """
import json, sys, time
import transformers.modeling_utils as modeling_utils
from demo.compare import start_comparator
from demo.config import load_config

# Widen the window in which from_pretrained has its global patches installed (model built on the
# meta device, PreTrainedModel.tie_weights disabled), so that the two loads overlap in it on
# every machine instead of by chance (real loads of 100-300M models take seconds there).
_record = getattr(modeling_utils, "patch_output_recorders", None)
if _record is not None:  # (transformers 5.x; without it the race is only likelier on big models)
    def _slow_record(*args, **kwargs):
        time.sleep(0.5)
        return _record(*args, **kwargs)
    modeling_utils.patch_output_recorders = _slow_record

config = load_config(sys.argv[1])
failures = []
for attempt in range(2):
    comparator = start_comparator(config, worker_mode="thread", with_scorer=False)
    ready = comparator.wait_ready(60)
    comparator.close()
    if not all(ready.values()):
        failures.append({r: w.error for r, w in comparator.workers.items() if w.error})
print(json.dumps(failures))
"""


@pytest.mark.timeout(300)
def test_thread_workers_load_both_models_reliably(tiny_config_file):
    """Thread workers (the GPU-host mode) load both models. Was: both threads ran
    from_pretrained at once; transformers 5 swaps process-global functions while loading
    (PreTrainedModel.tie_weights disabled, torch.nn.init.* and torch.linspace replaced), the
    overlapping loads restored each other's patches, tie_weights stayed a no-op for the rest of
    the process, and tied-embedding models (SmolLM2, Gemma 3) kept lm_head on the meta device:
    "Cannot copy out of meta tensor; no data!" — every later load failed too.
    Run in a child process: a failed load would poison transformers for this whole session."""
    import json
    import subprocess
    import sys

    from conftest import subprocess_env

    done = subprocess.run(
        [sys.executable, "-c", _LOAD_IN_THREADS, str(tiny_config_file)],
        capture_output=True,
        text=True,
        timeout=240,
        env=subprocess_env(),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    failures = json.loads(done.stdout.strip().splitlines()[-1])
    assert not failures, f"thread workers failed to load: {failures[:2]} ({len(failures)}/2 attempts)"


# --- types checked at the edge: each bad call gets a message naming the parameter -------------
# (were: a prompt sent as a number, a seed of "x" or a short `data` list ended as
# `{"error": null}` with a traceback in the server log; an all-null call "completed" with empty
# answers and no message)


def test_raw_http_prompt_as_a_number_names_the_parameter(app):
    event, payload = _raw_call(app.url, [123, 4, 0.7, 0.9, 1, 1.1, "raw", None])
    assert event == "error", payload
    assert "prompt must be text" in payload


def test_raw_http_seed_that_is_not_a_number_names_the_parameter(app):
    event, payload = _raw_call(app.url, ["Hello", 4, 0.7, 0.9, "x", 1.1, "raw", None])
    assert event == "error", payload
    assert "seed must be an integer from 0 to" in payload and "'x'" in payload


def test_raw_http_list_where_a_number_belongs_names_the_parameter(app):
    event, payload = _raw_call(app.url, ["Hello", [4], None, None, None, None, None, None])
    assert event == "error", payload
    assert "max_new_tokens must be an integer from 1 to" in payload


def test_raw_http_short_data_list_takes_the_defaults(app):
    """Trailing optional arguments may be left out, as null may be sent: a client written for
    the 7-argument /compare (before `pair`) keeps working, and ["prompt"] alone is a valid call."""
    event, payload = _raw_call(app.url, ["Hello", 4])
    assert event == "complete", payload
    assert '"prompt": "Hello"' in payload and f'"pair": "{app.config.default_pair.id}"' in payload
    event, payload = _raw_call(app.url, [])
    assert event == "complete", payload
    assert "Please type a prompt" in payload


def test_raw_http_all_null_call_says_please_type_a_prompt(app):
    # As for the page and gradio_client: the result carries the message, both sides stay empty.
    event, payload = _raw_call(app.url, [None] * 8)
    assert event == "complete", payload
    assert "Please type a prompt" in payload and '"new_tokens": 0' in payload


def test_raw_http_unknown_pair_or_format_names_the_allowed_values(app):
    event, payload = _raw_call(app.url, ["Hello", 4, 0.7, 0.9, 1, 1.1, "raw", "../../etc/passwd"])
    assert event == "error", payload
    assert "pair must be one of" in payload and app.config.default_pair.id in payload
    event, payload = _raw_call(app.url, ["Hello", 4, 0.7, 0.9, 1, 1.1, "shell", None])
    assert event == "error", payload
    assert "base_format must be one of" in payload and "prompted" in payload
