"""demo/ui/tabs/stages.py and the page's tab list: the tab is built, with its ids, only where the
config has a `stages:` section (built without a browser; the browser test is in test_browser.py)."""

from __future__ import annotations

from demo.compare import Comparator
from demo.ui import app
from demo.ui.tabs import compare, stages

STAGES_IDS = {"stages-prompt", "stages-run", "stages-stop", "stages-side-0", "stages-side-1", "stages-side-2"}


def element_ids(blocks) -> set[str]:
    return {block.elem_id for block in blocks.blocks.values() if getattr(block, "elem_id", None)}


def test_the_stages_tab_is_offered_only_with_a_stages_section(tiny_config, tiny_stages_config):
    assert stages not in app.shown_tabs(tiny_config)
    offered = app.shown_tabs(tiny_stages_config)
    assert offered.index(stages) == offered.index(compare) + 1  # right after Compare
    assert [tab for tab in offered if tab is not stages] == app.shown_tabs(tiny_config)


def test_the_page_has_the_stages_elements_only_with_a_stages_section(tiny_config, tiny_stages_config):
    # No workers: building the page loads nothing.
    with_stages = element_ids(app.build_ui(tiny_stages_config, Comparator(tiny_stages_config, {}, None)))
    assert STAGES_IDS | {"tab-three-stages", "prompt", "run-btn"} <= with_stages
    assert "stages-side-3" not in with_stages  # one column per stages model
    without = element_ids(app.build_ui(tiny_config, Comparator(tiny_config, {}, None)))
    assert not {i for i in without if i.startswith("stages-") or i == "tab-three-stages"}
    assert {"prompt", "run-btn"} <= without
