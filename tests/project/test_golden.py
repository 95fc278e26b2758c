"""The credit PD flow still produces its golden record (tests/golden/credit_pd.json, written by `make golden`): bins,
points table, model choice, validation values and gate verdicts, the scored partition, the monitor's verdict and exit
code. Floats agree to 1e-12; everything else exactly. Re-record only when a change of results is intended, and say so
in the commit."""
import json
import pytest
from golden import GOLDEN, differences, produce


@pytest.mark.slow
def test_flow_reproduces_the_golden_record(tmp_path):
    expected = json.loads(GOLDEN.read_text())
    actual = json.loads(json.dumps(produce(tmp_path)))
    diffs = differences(expected, actual)
    assert not diffs, f"{len(diffs)} difference(s) from {GOLDEN.name}:\n" + "\n".join(diffs[:40])


def test_the_record_holds_what_the_flow_decides():
    g = json.loads(GOLDEN.read_text())
    assert g["validate"]["passed"] is True and g["score"]["rows"] == len(g["score"]["pd"]) > 0
    assert g["monitor"]["exit_code"] == 20 and g["monitor"]["decision"]["action"] == "retrain"
    assert any(r.startswith("PD over-estimates the default rate") for r in g["monitor"]["decision"]["reasons"])
    assert {"binning", "points_table", "iv_selection", "comparison"} <= set(g["train"])


def test_differences_tolerates_only_float_noise():
    assert differences({"a": [1.0, "x", 3]}, {"a": [1.0 + 1e-13, "x", 3]}) == []
    assert differences({"a": [0.5]}, {"a": [0.5 + 1e-9]}) == [".a[0]: 0.500000001, expected 0.5"]
    assert differences({"a": 1, "b": "x"}, {"a": 1, "b": "y", "c": 2}) == [".c: unexpected", ".b: 'y', expected 'x'"]
    assert differences({"a": [1, 2]}, {"a": [1]}) == [".a: 1 items, expected 2"]
    assert differences({"a": True}, {"a": 1.0}) == [".a: 1.0, expected True"]
