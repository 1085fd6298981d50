"""The score keys are plain strings: Gradio's encoder (orjson) refuses str-subclass dict keys,
which once turned every /compare call into "Dict key must be str"."""

from __future__ import annotations

import orjson

from demo.session import SCORE_FIELDS, ScoreKey


def test_score_keys_are_plain_strings_that_gradios_encoder_accepts():
    keys = [value for name, value in vars(ScoreKey).items() if name.isupper()]
    assert len(keys) == 7 and all(type(key) is str for key in keys)
    assert set(SCORE_FIELDS) <= set(keys)
    assert orjson.loads(orjson.dumps({key: 1 for key in keys})) == {key: 1 for key in keys}
