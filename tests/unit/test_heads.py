"""One head for the judge and the meaning-aware toxicity signal: the shipped files round-trip to
the same bytes through the shared torch module, and numpy serving equals the torch forward."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from demo.paths import REWARD_ARTEFACTS_DIR, TOXICITY_ARTEFACTS_DIR
from demo.scoring.heads import NumpyHead
from demo.training import reward, toxicity_head
from demo.training.heads import FeatureHead, head_tensors, load_head_tensors

SHIPPED = [
    (reward, REWARD_ARTEFACTS_DIR / "reward_head.safetensors", "reward_offset"),
    (toxicity_head, TOXICITY_ARTEFACTS_DIR / "toxicity_head.safetensors", "logit_offset"),
]


@pytest.mark.parametrize(("module", "path", "offset_key"), SHIPPED, ids=["reward", "toxicity"])
def test_a_shipped_head_loaded_and_saved_again_is_the_same_bytes(tmp_path, module, path, offset_key):
    head, metadata = module.load_head(path)
    assert isinstance(head, FeatureHead)
    module.save_head(head, tmp_path / "again.safetensors", metadata)
    assert (tmp_path / "again.safetensors").read_bytes() == path.read_bytes()
    assert offset_key in head_tensors(head, offset_key) and "offset" not in head_tensors(head, offset_key)


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_numpy_head_equals_the_torch_head(kind):
    torch.manual_seed(0)
    head = FeatureHead(12, kind, 5).eval()
    with torch.no_grad():
        head.feature_mean.normal_()
        head.feature_std.uniform_(0.5, 2.0)
        head.offset.fill_(0.25)
    tensors = {name: t.numpy() for name, t in head_tensors(head, "some_offset").items()}
    again = load_head_tensors(tensors, "some_offset", input_dim=12, kind=kind, hidden=5)
    x = np.random.default_rng(0).normal(size=(7, 12)).astype(np.float32)
    with torch.no_grad():
        expected = head(torch.as_tensor(x)).double().numpy()
        assert torch.equal(again(torch.as_tensor(x)), head(torch.as_tensor(x)))
    np.testing.assert_allclose(NumpyHead.from_tensors(tensors, "some_offset")(x), expected, rtol=1e-5, atol=1e-6)


def test_head_kind_is_checked():
    with pytest.raises(ValueError, match="linear' or 'mlp"):
        FeatureHead(4, "transformer")
