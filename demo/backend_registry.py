"""The back-end registry: each entry names where its generator lives (imported only when a model
runs on it), the precisions it accepts and the options model for its extra runtime keys.

A new back end is one module under demo/generation/backends with a generator class
(`load(checkpoint, precision, device, trust_remote_code, options)` and `generate_ids` or
`generate_text`) and one entry below; `models.yaml` is validated against these entries at start-up.
The registry is data about the back ends, not the back ends: it sits below the configuration,
which validates against it, and names its modules by string, so reading it imports none of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict


class NoOptions(BaseModel):
    """A back end that takes no keys besides `backend` and `precision`."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class BackendEntry:
    name: str
    generator: str  # "module:Class"
    precisions: tuple[str, ...]  # empty: the back end has no precision to choose (a remote server)
    options: str | None = None  # "module:Model" of a light module, or None for NoOptions

    def options_model(self) -> type[BaseModel]:
        return _import(self.options) if self.options else NoOptions

    def validate_options(self, values: Mapping[str, Any]) -> BaseModel:
        return self.options_model().model_validate(dict(values))

    def generator_class(self):
        try:
            return _import(self.generator)
        except ImportError as error:
            raise RuntimeError(
                f"the {self.name!r} back end cannot be imported ({error}); install requirements.txt"
            ) from None


_HERE = "demo.generation.backends"
REGISTRY: dict[str, BackendEntry] = {
    entry.name: entry
    for entry in (
        BackendEntry(
            "transformers",
            f"{_HERE}.transformers_backend:TransformersGenerator",
            ("fp32", "bf16", "fp16", "bnb-nf4", "bnb-int8"),
        ),
        BackendEntry(
            "onnxruntime-genai",
            f"{_HERE}.onnx_genai_backend:OnnxGenaiGenerator",
            ("fp32", "int4", "int4-int8head", "int4-mixed", "int4-fp32act", "int8"),
        ),
        BackendEntry(
            "openai", f"{_HERE}.openai_backend:OpenAICompletionsGenerator", (), f"{_HERE}.openai_backend:Options"
        ),
    )
}


def backend_entry(name: str) -> BackendEntry:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; known: {sorted(REGISTRY)}") from None


def _import(target: str):
    module_name, attribute = target.split(":")
    return getattr(importlib.import_module(module_name), attribute)
