"""Versions registered by earlier mlcore code keep working: a store written by mlcore 0.1.0 (before the layout moved;
tests/fixtures/registered_0.1.0, made by tests/fixtures/make_registered.py) loads through the registry, passes its
seal and scores exactly what it scored then."""
import json, shutil, sqlite3
from pathlib import Path
import numpy as np
import pandas as pd
import pytest

FIXTURES = sorted((Path(__file__).parents[1] / "fixtures").glob("registered_*"))


def _relocate(src: Path, dst: Path) -> Path:
    "Copy a fixture store and point its recorded absolute paths at the copy"
    shutil.copytree(src, dst)
    old = json.loads((src / "fixture.json").read_text())["recorded_at"]
    with sqlite3.connect(dst / "mlflow.db") as con:
        for (table,) in con.execute("select name from sqlite_master where type = 'table'").fetchall():
            for col in [r[1] for r in con.execute(f"pragma table_info('{table}')") if r[2].upper().startswith(("VARCHAR", "TEXT"))]:
                con.execute(f'update "{table}" set "{col}" = replace("{col}", ?, ?) where "{col}" like ?', (old, str(dst), f"%{old}%"))
    return dst


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.name for f in FIXTURES])
def test_an_earlier_registered_version_loads_verifies_and_scores_the_same(fixture, tmp_path, store, monkeypatch):
    import mlflow
    from mlcore.registry.integrity import load_verified_model
    home = _relocate(fixture, tmp_path / fixture.name)
    uri = f"sqlite:///{home}/mlflow.db"
    for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"): monkeypatch.setenv(k, uri)
    mlflow.set_tracking_uri(uri); mlflow.set_registry_uri(uri)
    meta = json.loads((home / "fixture.json").read_text())
    model, mv = load_verified_model(meta["model"])          # refuses a version whose files no longer match its seal
    X = pd.read_csv(home / "input.csv")
    got, want = pd.DataFrame(model.predict(X)), pd.read_csv(home / "expected.csv", keep_default_na=False)
    assert list(got.columns) == list(want.columns) and len(got) == len(want) == len(X)
    for c in want.columns:
        if pd.api.types.is_float_dtype(want[c]): np.testing.assert_allclose(got[c], want[c], rtol=1e-12, atol=1e-12)
        else: assert got[c].astype(str).tolist() == want[c].astype(str).tolist(), c


def test_the_fixture_was_registered_by_earlier_code():
    assert FIXTURES, "no registered-version fixture"
    for f in FIXTURES:
        meta = json.loads((f / "fixture.json").read_text())
        pkl = next((f / "mlartifacts").rglob("python_model.pkl")).read_bytes()
        assert meta["module"].encode() in pkl, (f.name, meta["module"])   # the pickle names the module path of its day
        import importlib
        now = importlib.import_module(meta["module"])                      # resolved through mlcore.core.compat
        assert now.__name__ != meta["module"] and hasattr(now, "CreditPDModel"), now.__name__
