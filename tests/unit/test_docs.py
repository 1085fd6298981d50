"""The figure tables of the README and docs/ are rendered from committed result files (demo/docs.py)."""

from __future__ import annotations

import copy
import json

import pytest

from demo import docs
from demo.config import load_config
from demo.paths import RESULTS_DIR


def test_the_committed_readme_matches_its_results():
    assert docs.run_docs(check=True) == []


def test_a_figure_typed_by_hand_is_found():
    (document,) = [d for d in docs.DOCUMENTS if "<!-- figures:fidelity -->" in d.read_text(encoding="utf-8")]
    text = document.read_text(encoding="utf-8")
    region = text.index("<!-- figures:fidelity -->")
    first_bold = text.index("**", region)
    tampered = text[: first_bold + 2] + "9" + text[first_bold + 3 :]
    assert docs.render_document(tampered, load_config()) == text


def test_a_result_measured_with_other_builds_than_served_is_refused(monkeypatch):
    served = json.loads((RESULTS_DIR / "fidelity" / "served.json").read_text())
    other = copy.deepcopy(served)
    model_id = next(iter(other["models"]))
    other["models"][model_id]["precision"] = "int4-mixed"
    real_load = docs._load
    monkeypatch.setattr(docs, "_load", lambda name: other if name == "fidelity/served.json" else real_load(name))
    with pytest.raises(docs.StaleFigures, match="models.yaml serves"):
        docs.render_document("<!-- figures:fidelity -->\n<!-- /figures:fidelity -->", load_config())


def test_a_missing_result_is_named():
    with pytest.raises(docs.StaleFigures, match="no renderer"):
        docs.render_document("<!-- figures:nothing -->\nx\n<!-- /figures:nothing -->", load_config())
