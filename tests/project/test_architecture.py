"""Architecture rules that keep the library a platform rather than one use case's code."""
import ast
from pathlib import Path
import yaml
from conftest import ROOT

# Modules that define a bundled data product, whose schema they are: the German credit loader and the loan-book generator.
DATA_PRODUCTS = {"data.datasets", "data.synthetic"}
# The lifecycle's own aliases: governance sets them, params only refer to them.
LIFECYCLE = {"champion", "challenger"}
# The same word meaning something else: (module, literal) -> what it is there.
HOMONYMS = {("ops.runner", "default"): "papermill's key for a parameter's default value"}
NAMED_KEYS = {"dataset", "output", "target", "key", "registered_model_name", "window_column", "time_column", "use_case"}
LISTED_KEYS = {"protected", "carry", "id_columns"}


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


def library_modules():
    "(file, dotted module under mlcore) of every library module"
    for p in sorted((ROOT / "mlcore").rglob("*.py")):
        if p.name != "__init__.py": yield p, ".".join(p.relative_to(ROOT / "mlcore").with_suffix("").parts)


def literals(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str): yield node.lineno, node.value


def test_params_name_what_the_check_looks_for():
    names = use_case_names()
    assert {"german_credit", "loan_book", "credit_pd", "default", "loan_id", "age_in_years", "snapshot_month"} <= set(names)


def test_no_use_case_values_in_library_code():
    "A string literal in mlcore/ equal to a dataset, column, model or use-case name from params/ is a use-case value"
    names = use_case_names()
    found = [f"{p.relative_to(ROOT)}:{line}: {value!r} (from {names[value]})"
             for p, mod in library_modules() if mod not in DATA_PRODUCTS | {"_modidx", "core.compat"}
             for line, value in literals(p) if value in names and (mod, value) not in HOMONYMS]
    assert not found, "use-case values in library code; take them from params/ or the training run:\n" + "\n".join(found)


def test_the_literal_check_catches_a_planted_value(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text('def load():\n    return read("german_credit", target="default")\n')
    assert [v for _, v in literals(planted) if v in use_case_names()] == ["german_credit", "default"]


def _guide_text(name: str) -> str:
    import json
    nb = json.loads((ROOT / "nbs" / "guides" / f"{name}.ipynb").read_text())
    return "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")


def test_module_table_matches_the_code():
    "The developing guide's module table has a row per library module naming its notebook, and every row names a real module"
    import re
    rows = re.findall(r"^\| `(mlcore[\w.]*)` \| `([\w/]+)` \|", _guide_text("04_developing"), re.M)
    table = dict(rows)
    modules = {"mlcore." + mod for _, mod in library_modules() if mod != "_modidx"}
    assert set(table) == modules, f"missing rows: {sorted(modules - set(table))}; stale rows: {sorted(set(table) - modules)}"
    for mod, nb in table.items():
        text = (ROOT / "nbs" / f"{nb}.ipynb").read_text()
        assert f"#| default_exp {mod.removeprefix('mlcore.')}" in text, f"{nb} does not export {mod}"


# The command line imports the library inside its handlers, so that `mlcore --help` and `mlcore jobs` load no more than
# they use (the docs builder is tooling in tools/, outside the package). Everywhere else mlcore modules are imported at the top.
LAZY_OK = ("commands.",)
# mlcore modules that import a heavy library at their top, so that importing them lazily keeps a command's start fast:
# tracking imports mlflow (1.3 s; `mlcore --help` and `mlcore jobs` need none of it).
HEAVY_MLCORE = {"mlcore.core.tracking"}
# Any other import inside a function is one of these libraries, kept out of import time.
HEAVY = {"pyspark", "py4j", "mlflow", "sklearn", "scipy", "shap", "statsmodels", "fairlearn", "threadpoolctl", "pandas", "numpy",
         "pyarrow", "fastapi", "uvicorn", "starlette", "papermill", "nbformat", "nbclient", "nbconvert", "nbdev", "execnb",
         "mistune", "bs4", "pygments", "matplotlib", "psutil", "psycopg", "sqlalchemy", "IPython"}
def _layer_numbers() -> dict:
    "Dotted module -> number of the notebook it is exported from (numbers increase in dependency order)"
    import re
    out = {}
    for nb in (ROOT / "nbs").rglob("[0-9]*.ipynb"):
        if m := re.search(r'#\| default_exp ([\w.]+)', nb.read_text()): out["mlcore." + m.group(1)] = int(nb.name.split("_")[0])
    return out


def _imports(path: Path, module: str):
    "(line, imported mlcore module, inside a function?) for every import of an mlcore module"
    tree, out = ast.parse(path.read_text()), []
    funcs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    inner = {id(n) for f in funcs for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = ".".join(module.split(".")[:-node.level]) if node.level else ""
            target = ".".join(x for x in (base, node.module or "") if x)
            names = [target, *(f"{target}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import): names = [a.name for a in node.names]
        else: continue
        out += [(node.lineno, n, id(node) in inner) for n in names]
    return out


def test_imports_point_one_way_and_stay_at_the_top():
    "No import from a lower notebook to a higher one (so no cycle), and inside functions only heavy libraries"
    nums = _layer_numbers()
    problems = []
    for p, mod in library_modules():
        mod = "mlcore." + mod
        if mod not in nums: continue
        for line, target, inside in _imports(p, mod):
            if target in nums and nums[target] > nums[mod]:
                problems.append(f"{p.relative_to(ROOT)}:{line}: imports {target} ({nums[target]}), a higher layer than {nums[mod]}")
            if inside and target in nums and target not in HEAVY_MLCORE and not mod.removeprefix("mlcore.").startswith(LAZY_OK):
                problems.append(f"{p.relative_to(ROOT)}:{line}: imports {target} inside a function")
            if inside and target and target.split(".")[0] not in HEAVY | {"mlcore"} and not target.startswith("mlcore"):
                problems.append(f"{p.relative_to(ROOT)}:{line}: imports {target} inside a function (not a heavy library)")
    assert not problems, "\n".join(problems)


def test_tag_names_outlive_module_moves():
    "Tags on runs and model versions are data that registries already hold: approval reads the 0.1 validation tags and repair the runner's, so they keep their names whatever the modules are called (a module move once renamed them)"
    text = {mod: p.read_text() for p, mod in library_modules()}
    for mod, tags in {"registry.governance": ["mlcore.validation.status", "mlcore.validation.run_id"],
                      "workflows.validate": ["mlcore.validation.auc_initial"],
                      "registry.model_card": ["mlcore.model_card", "mlcore.validation.run_id"],
                      "ops.runner": ["mlcore.runner.pid", "mlcore.runner.pid_start", "mlcore.runner.host"]}.items():
        for t in tags: assert f'"{t}"' in text[mod] or f"`{t}`" in text[mod], f"{mod} no longer uses the tag {t}"


def test_train_params_are_the_train_jobs_parameters():
    "The train job hands its whole namespace to `TrainParams.from_namespace`: both must name the same parameters"
    from dataclasses import fields
    from mlcore.ops.runner import job_parameters, list_jobs
    from mlcore.workflows.train import TrainParams
    job = set(job_parameters(list_jobs()["train"])) - {"use_case"}
    assert {f.name for f in fields(TrainParams)} == job


# Export cells longer than CELL_LIMIT lines are hard to read, test and review. The exceptions, each for its reason,
# by (notebook, the name the cell defines):
CELL_LIMIT = 30
LONG_CELLS = {
    ("models/40_binning", "WoEBinner"): "a scikit-learn transformer: fit, transform and the fitted attributes read as one class",
    ("models/42_scorecard", "ScorecardModel"): "a scikit-learn classifier: fit, predict_proba and the points scaling read as one class",
    ("models/43_challenger", "ChallengerModel"): "a scikit-learn classifier: the search, fit and predict_proba read as one class",
    ("core/03_compat", "ALIASES"): "a table, one line per mlcore 0.1 module and its new home",
}


def long_export_cells(nb: dict, limit: int = CELL_LIMIT) -> list:
    "(cell index, first name the cell defines, lines) of every export cell longer than `limit` lines"
    out = []
    for i, c in enumerate(nb["cells"]):
        src = "".join(c["source"])
        if c["cell_type"] != "code" or not src.startswith("#| export") or len(src.rstrip("\n").split("\n")) <= limit: continue
        first = next((n for n in ast.parse(src).body if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Assign))), None)
        name = getattr(first, "name", None) or (first.targets[0].id if isinstance(first, ast.Assign) else "?")
        out.append((i, name, len(src.rstrip("\n").split("\n"))))
    return out


def test_export_cells_are_short():
    "Library code comes in short, named steps: no export cell over CELL_LIMIT lines but the listed exceptions"
    import json
    found, seen = [], set()
    for p in sorted((ROOT / "nbs").rglob("[0-9]*.ipynb")):
        nb = str(p.relative_to(ROOT / "nbs").with_suffix(""))
        for i, name, n in long_export_cells(json.loads(p.read_text())):
            seen.add((nb, name))
            if (nb, name) not in LONG_CELLS: found.append(f"nbs/{nb}.ipynb cell {i} ({name}): {n} lines")
    assert not found, f"export cells over {CELL_LIMIT} lines; split them into named steps:\n" + "\n".join(found)
    assert set(LONG_CELLS) <= seen, f"exceptions no longer needed: {sorted(set(LONG_CELLS) - seen)}"


def test_the_cell_check_catches_a_long_cell():
    body = "#| export\ndef f():\n" + "".join(f"    x{i} = {i}\n" for i in range(30))
    nb = {"cells": [{"cell_type": "code", "source": [body]}, {"cell_type": "code", "source": ["#| export\nx = 1\n"]}]}
    assert long_export_cells(nb) == [(0, "f", 32)]


def test_library_lines_fit_the_configured_length():
    "Every library line fits ruff's `line-length`, but the `__all__` line nbdev writes (ruff allows it 130 columns)"
    import tomllib
    limit = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["line-length"]
    long = [f"{p.relative_to(ROOT)}:{i}: {len(line)} columns" for p, mod in library_modules() if mod != "_modidx"
            for i, line in enumerate(p.read_text().splitlines(), 1) if len(line) > limit and not line.startswith("__all__ = ")]
    assert not long, f"library lines over {limit} columns (wrap them in the notebook):\n" + "\n".join(long)


def test_tests_mirror_the_layout():
    "Each test module sits in the folder of the library layer it tests (tests/data, tests/models, ...), or in tests/project"
    layers = {p.name for p in (ROOT / "mlcore").iterdir() if p.is_dir() and not p.name.startswith(("_", "."))} | {"project"}
    stray = [str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py")
             if p.parent.parent != ROOT / "tests" or p.parent.name not in layers]
    assert not stray, f"test modules outside the layer folders: {stray}"
    assert {p.parent.name for p in (ROOT / "tests").rglob("test_*.py")} <= layers



def test_readme_is_read_in_five_minutes():
    "README.md (generated from nbs/index.ipynb) stays at 800 words at most; the detail lives in the guides"
    import re
    words = len(re.findall(r"\S+", (ROOT / "README.md").read_text()))
    assert words <= 800, f"README.md has {words} words; move detail into nbs/guides/"
    layers = {p.name for p in (ROOT / "mlcore").iterdir() if p.is_dir() and not p.name.startswith(("_", "."))}
    assert layers <= set(re.findall(r"^\| `(\w+)` \|", (ROOT / "README.md").read_text(), re.M)), "the README's map lacks a layer"
