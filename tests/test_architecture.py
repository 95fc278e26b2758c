"""Architecture rules that keep the library a platform rather than one use case's code."""
import ast
from pathlib import Path
import yaml
from conftest import ROOT

# Modules that define a bundled data product, whose schema they are: the German credit loader and the loan-book generator.
DATA_PRODUCTS = {"datasets", "synthetic"}
# The lifecycle's own aliases: governance sets them, params only refer to them.
LIFECYCLE = {"champion", "challenger"}
# The same word meaning something else: (module, literal) -> what it is there.
HOMONYMS = {("docs", "default"): "the name of Pygments' default style",
            ("runner", "default"): "papermill's key for a parameter's default value"}
NAMED_KEYS = {"dataset", "output", "target", "key", "registered_model_name", "window_column", "time_column", "use_case"}
LISTED_KEYS = {"protected", "carry"}


def use_case_names() -> dict:
    "Every dataset, model, use-case and column name that params/ decides -> where it was found"
    out = {}
    cat = yaml.safe_load((ROOT / "params" / "catalog.yaml").read_text())["datasets"]
    for name, spec in cat.items():
        out[name] = "params/catalog.yaml"
        if t := spec.get("target"): out[t["name"]] = "params/catalog.yaml (target)"
        if p := spec.get("partition_by"): out[p] = "params/catalog.yaml (partition_by)"
    for f in sorted((ROOT / "params").glob("*/*.yaml")):
        d = yaml.safe_load(f.read_text()) or {}
        for k, v in d.items():
            if k in NAMED_KEYS and isinstance(v, str) and v: out[v] = f"{f.relative_to(ROOT)} ({k})"
            if k in LISTED_KEYS and isinstance(v, list): out |= {x: f"{f.relative_to(ROOT)} ({k})" for x in v}
            if k == "model" and isinstance(v, str): out[v.split("@")[0].split("/")[0]] = f"{f.relative_to(ROOT)} (model)"
    return {k: w for k, w in out.items() if k not in LIFECYCLE}


def literals(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str): yield node.lineno, node.value


def test_params_name_what_the_check_looks_for():
    names = use_case_names()
    assert {"german_credit", "loan_book", "credit_pd", "default", "loan_id", "age_in_years", "snapshot_month"} <= set(names)


def test_no_use_case_values_in_library_code():
    "A string literal in mlcore/ equal to a dataset, column, model or use-case name from params/ is a use-case value"
    names = use_case_names()
    found = [f"mlcore/{p.name}:{line}: {value!r} (from {names[value]})"
             for p in sorted((ROOT / "mlcore").glob("*.py")) if p.stem not in DATA_PRODUCTS | {"_modidx"}
             for line, value in literals(p) if value in names and (p.stem, value) not in HOMONYMS]
    assert not found, "use-case values in library code; take them from params/ or the training run:\n" + "\n".join(found)


def test_the_literal_check_catches_a_planted_value(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text('def load():\n    return read("german_credit", target="default")\n')
    assert [v for _, v in literals(planted) if v in use_case_names()] == ["german_credit", "default"]
