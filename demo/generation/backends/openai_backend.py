"""Back end: a model served elsewhere (vLLM, TGI, SGLang, llama.cpp's server, `transformers serve`)
behind the OpenAI `/v1/completions` API, streamed over server-sent events.

The app formats and tokenizes the prompt itself and sends that exact text (or its ids), so the
input shown on the page is the input the model got, for base and chat models alike; stop rules
stay in `ModelRunner`. Standard library only: loading it costs no import of torch or an SDK.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...errors import UserFacingError
from ...settings import SamplingSettings

# Request fields this back end may send besides model/prompt/max_tokens/temperature/stream; a
# server that rejects one (transformers serve answers 422 to `repetition_penalty`) lists it in `omit`.
OptionalField = Literal["stream_options", "top_p", "seed", "repetition_penalty", "stop", "logit_bias", "ignore_eos"]

_ERROR_BODY_CHARS = 500


class ServerError(UserFacingError, RuntimeError):
    """The inference server is misconfigured, unreachable or answered an error; says which."""


class Options(BaseModel):
    """The `runtime:` keys of a served model (besides `backend: openai`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(description="the server's address, e.g. http://localhost:8000 (a trailing /v1 is fine)")
    model: str = Field(description="the model name the server knows it by (vLLM: the name given to `vllm serve`)")
    api_key_env: str | None = Field(
        None, description="environment variable holding the API key sent as a Bearer token; never the key itself"
    )
    timeout_seconds: float = Field(
        60.0, gt=0, description="longest wait to connect, for the first token and between two tokens"
    )
    prompt_as: Literal["text", "token_ids"] = Field(
        "text",
        description="text: the formatted prompt (the server tokenizes it, adding its own BOS if its tokenizer "
        "does); token_ids: the app's own ids, exact by construction (vLLM, SGLang, llama.cpp; not TGI or "
        "transformers serve)",
    )
    omit: tuple[OptionalField, ...] = Field((), description="request fields this server rejects; never sent")
    extra_body: dict[str, Any] | None = Field(
        None, description="more request fields, merged last (e.g. {top_k: 50} or llama.cpp's repeat_penalty)"
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be an http:// or https:// URL with a host; got {value!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"base_url must not have a query or fragment; got {value!r}")
        return value.rstrip("/")

    @property
    def completions_url(self) -> str:
        base = self.base_url
        return f"{base}/completions" if base.endswith("/v1") else f"{base}/v1/completions"


class OpenAICompletionsGenerator:
    """`TextGenerator` over a server's streaming `/v1/completions`. Precision and device belong to
    the server; one HTTP connection per answer, closed when the caller closes the iterator."""

    streams_text = True

    def __init__(self, options: Options, api_key: str | None = None):
        self.options = options
        self._api_key = api_key

    @classmethod
    def load(cls, checkpoint: Path, precision: str | None, device: str, trust_remote_code: bool = False, options=None):
        # The checkpoint only gives the app its tokenizer; nothing is contacted until the first
        # answer, so a server that is down fails that side's answers, not the app's start-up.
        if not isinstance(options, Options):
            raise ServerError("the 'openai' back end needs runtime options (base_url, model)")
        api_key = None
        if options.api_key_env:
            api_key = os.environ.get(options.api_key_env)
            if not api_key:
                raise ServerError(
                    f"the API key for {options.completions_url} is read from ${options.api_key_env}, "
                    "which is not set; export it before starting the app"
                )
        return cls(options, api_key)

    def request_body(
        self,
        prompt_text: str,
        prompt_ids: Sequence[int],
        sampling: SamplingSettings,
        stop_sequences: Sequence[str],
        suppress_ids: Sequence[int],
    ) -> dict[str, Any]:
        """The JSON sent for one answer. Settings at their neutral value are left out, so a server
        that does not know a field (repetition_penalty, logit_bias) still answers plain requests."""
        options = self.options
        body: dict[str, Any] = {
            "model": options.model,
            "prompt": list(prompt_ids) if options.prompt_as == "token_ids" else prompt_text,
            "max_tokens": sampling.max_new_tokens,
            "temperature": 0.0 if sampling.greedy else sampling.temperature,
            "stream": True,
            "stream_options": {"include_usage": True},  # the token count, for new_tokens
            "seed": sampling.seed,
        }
        if not sampling.greedy and sampling.top_p < 1.0:
            body["top_p"] = sampling.top_p
        if sampling.repetition_penalty != 1.0:
            body["repetition_penalty"] = sampling.repetition_penalty  # vLLM, SGLang, TGI; not OpenAI's schema
        if stop_sequences:
            body["stop"] = list(stop_sequences)
        if suppress_ids:
            body["logit_bias"] = {str(token_id): -100 for token_id in suppress_ids}  # -100 = banned
        if sampling.ignore_eos:
            body["ignore_eos"] = True
        for name in options.omit:
            body.pop(name, None)
        body.update(options.extra_body or {})
        return body

    def generate_text(
        self,
        prompt_text: str,
        prompt_ids: Sequence[int],
        sampling: SamplingSettings,
        *,
        stop_sequences: Sequence[str],
        suppress_ids: Sequence[int],
    ) -> Iterator[str]:
        body = self.request_body(prompt_text, prompt_ids, sampling, stop_sequences, suppress_ids)
        url = self.options.completions_url
        connection, response = self._post(url, body)
        try:
            yield from _completion_pieces(response, url)
        except TimeoutError:
            raise ServerError(
                f"the server at {url} stopped sending for {self.options.timeout_seconds:g} s mid-answer"
            ) from None
        except (OSError, http.client.HTTPException) as error:
            raise ServerError(f"the connection to {url} broke mid-answer ({_describe_os_error(error)})") from None
        finally:
            # Closing the socket is the cancel: vLLM and transformers serve abort a request whose
            # client went away, so a Stop frees the server's slot too.
            response.close()
            connection.close()

    def _post(self, url: str, body: dict[str, Any]):
        parts = urlsplit(url)
        assert parts.hostname is not None  # Options._http_url requires a host
        kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        connection = kind(parts.hostname, parts.port, timeout=self.options.timeout_seconds)
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        try:
            connection.request("POST", parts.path, body=json.dumps(body).encode("utf-8"), headers=headers)
            response = connection.getresponse()
        except TimeoutError:
            connection.close()
            raise ServerError(f"the server at {url} did not answer within {self.options.timeout_seconds:g} s") from None
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            raise ServerError(f"cannot reach the server at {url} ({_describe_os_error(error)})") from None
        if response.status >= 400:
            detail = _error_detail(response)
            connection.close()
            hint = "; check the API key" if response.status in (401, 403) else ""
            raise ServerError(f"the server at {url} answered HTTP {response.status}: {detail}{hint}")
        content_type = response.getheader("Content-Type", "")
        if "text/event-stream" not in content_type:
            connection.close()
            raise ServerError(
                f"the server at {url} did not stream (Content-Type {content_type or 'missing'!r}); "
                "is it an OpenAI-compatible completions endpoint?"
            )
        return connection, response


def _completion_pieces(response, url: str) -> Iterator[str]:
    """The text of each `data:` event until `[DONE]` (or the end of the stream after a
    finish_reason), then one empty piece per generated token that brought no text of its own.

    The runner counts pieces as tokens (for `new_tokens` and "stopped at max_new_tokens"), but a
    server sends nothing for a token that is half a UTF-8 character or a skipped special token;
    the usage it reports at the end (`stream_options.include_usage`) fills in the difference.
    """
    pieces, finished, generated = 0, False, None
    while True:
        raw = response.readline()
        if not raw:
            if finished:
                break
            raise ServerError(f"the server at {url} closed the stream before the answer finished")
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line.startswith("data:"):
            continue  # blank separators, `: keep-alive` comments, `event:`/`id:` fields
        data = line[len("data:") :].strip()
        if data == "[DONE]":
            break
        try:
            event = json.loads(data)
            if not isinstance(event, dict):
                raise TypeError("not an object")
            if "error" in event or event.get("object") == "error":
                raise ServerError(f"the server at {url} failed mid-answer: {_message_of(event)}")
            usage = event.get("usage") or {}
            if isinstance(usage.get("completion_tokens"), int):
                generated = usage["completion_tokens"]
            choices = event["choices"]
            if not choices and usage:
                continue  # the usage-only chunk of include_usage
            text, finish_reason = choices[0].get("text") or "", choices[0].get("finish_reason")
            if not isinstance(text, str):
                raise TypeError("text is not a string")
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
            raise ServerError(f"the server at {url} sent a malformed stream line ({error}): {data[:200]!r}") from None
        if text and not finished:
            pieces += 1
            yield text
        finished = finished or finish_reason is not None
    for _ in range(max(0, (generated or 0) - pieces)):
        yield ""


def _error_detail(response) -> str:
    raw = response.read(64 * 1024).decode("utf-8", errors="replace")
    try:
        return _message_of(json.loads(raw))[:_ERROR_BODY_CHARS]
    except ValueError:
        return raw.strip()[:_ERROR_BODY_CHARS] or response.reason


def _message_of(payload: Any) -> str:
    """The human part of an error body: OpenAI/vLLM `{"error": {"message"}}`, FastAPI `{"detail"}`,
    transformers serve `{"error": "..."}`, TGI `{"error": "...", "error_type"}`."""
    if isinstance(payload, dict):
        for key in ("error", "detail", "message"):
            if key in payload:
                return _message_of(payload[key])
    return payload if isinstance(payload, str) else json.dumps(payload)


def _describe_os_error(error: BaseException) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused; is the server running on that port?"
    if isinstance(error, socket.gaierror):
        return f"unknown host: {error.strerror or error}"
    return str(error) or type(error).__name__
