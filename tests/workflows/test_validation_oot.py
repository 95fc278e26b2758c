"""Out-of-time validation end to end: train on a small synthetic loan book with split_strategy=out_of_time, validate, and
check the out-of-time figures against an independent recomputation (scikit-learn, pandas) on the held-out months."""
import json, os, shutil, subprocess
from pathlib import Path
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.metrics import roc_auc_score
from conftest import ROOT, cli

CHROMIUM = "/usr/bin/chromium"
OOT_FROM = "2024-05"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def book_flow(tmp_path_factory):
    "A throwaway project with a 6-month loan book (4 development months, 2 out-of-time), one trained and one validated version"
    from mlcore.core.config import load_settings
    from mlcore.data.catalog import save
    from mlcore.data.synthetic import generate_loan_book
    proj = tmp_path_factory.mktemp("book")
    shutil.copy(ROOT / "settings.ini", proj)
    (proj / "params").mkdir()
    for f in ("settings.yaml", "catalog.yaml"): shutil.copy(ROOT / "params" / f, proj / "params")
    for d in ("contracts", "credit_pd_book"): shutil.copytree(ROOT / "params" / d, proj / "params" / d)
    uri = f"sqlite:///{proj}/mlflow.db"
    env = {**os.environ, "MLCORE_HOME": str(proj), "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri,
           "MLCORE_ARTIFACT_ROOT": str(proj / "artifacts"), "MLCORE_RUNS_DIR": str(proj / "runs"),
           "MLCORE_JOBS_DIR": str(ROOT / "nbs" / "jobs"), "MLCORE_AUDIT_LOG": str(proj / "audit" / "lifecycle.jsonl")}
    env.pop("MLFLOW_RUN_ID", None)
    book = generate_loan_book(months=6, rows_per_month=800, start="2024-01", seed=11)
    save("loan_book", book, settings=load_settings(proj))
    # a small, fast training: fewer challenger settings and folds than params/credit_pd_book/train.yaml
    fast = ["-p", f"oot_from={OOT_FROM}", "-p", "search_iter=2", "-p", "search_cv=2", "-p", "calibration_cv=2"]
    tr = cli("run", "train", "-f", "params/credit_pd_book/train.yaml", *fast, env={**env, "MLCORE_USER": "alice"})
    assert tr.returncode == 0, tr.stdout[-3000:] + tr.stderr[-3000:]
    va = cli("run", "validate", "-f", "params/credit_pd_book/validate.yaml", "-p", "model=credit_pd_book/1", env={**env, "MLCORE_USER": "carol"})
    mp = pytest.MonkeyPatch()
    for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLCORE_ARTIFACT_ROOT", "MLCORE_HOME", "MLCORE_AUDIT_LOG"): mp.setenv(k, env[k])
    mp.delenv("MLFLOW_RUN_ID", raising=False)
    mlflow.set_tracking_uri(uri); mlflow.set_registry_uri(uri)
    v = MlflowClient().get_model_version("credit_pd_book", "1")
    summary = mlflow.artifacts.load_dict(f"runs:/{v.tags['mlcore.validation.run_id']}/validation/summary.json")
    report = mlflow.artifacts.load_text(v.tags["mlcore.validation.report"])
    yield {"book": book, "validate": va, "version": v, "summary": summary, "report": report, "dir": proj}
    mp.undo()


def test_oot_sample_is_validated_with_its_own_numbers(book_flow):
    s, book = book_flow["summary"], book_flow["book"]
    assert s["lineage"]["split_strategy"] == "out_of_time" and s["lineage"]["oot_from"] == OOT_FROM
    t, o = s["values"], s["values_oot"]
    assert o is not None and s["out_of_time"].startswith(f"out-of-time sample: 1600 rows of loan_book from {OOT_FROM} (2024-05 to 2024-06)")
    # independent recomputation on the held-out months: load the registered model, score them, AUC with scikit-learn
    oot = book[book.snapshot_month >= OOT_FROM]
    model = mlflow.pyfunc.load_model("models:/credit_pd_book/1")
    cols = model.metadata.get_input_schema().input_names()
    pred = model.predict(oot[cols])
    assert o["n"] == len(oot) and o["default_rate"] == pytest.approx(oot["default"].mean())
    assert o["auc"] == pytest.approx(roc_auc_score(oot["default"], pred["pd"]), abs=1e-12)
    assert o["auc_lo"] < o["auc"] < o["auc_hi"] and o["gini"] == pytest.approx(2 * o["auc"] - 1)
    # calibration per grade on the out-of-time sample, by hand
    ref = pd.DataFrame({"grade": pred["grade"].astype(str).to_numpy(), "y": oot["default"].to_numpy(), "pd": pred["pd"].to_numpy()}) \
            .groupby("grade").agg(n=("y", "size"), defaults=("y", "sum"), pd=("pd", "mean"))
    cal = pd.DataFrame(s["calibration_oot"]).set_index("grade")
    for g, r in ref.iterrows():
        assert (cal.loc[g, "n"], cal.loc[g, "defaults"]) == (r.n, r.defaults) and cal.loc[g, "pd"] == pytest.approx(r.pd)
    # the two samples are different rows, so their figures differ
    assert t["n"] != o["n"] and t["auc"] != o["auc"] and t["score_psi"] != o["score_psi"] and t["brier"] != o["brier"]
    for k in ("auc_decline_p", "jeffreys_p_portfolio", "hosmer_lemeshow_p", "score_psi", "csi_max", "approval_rate_gap_max"):
        assert o[k] is not None and np.isfinite(o[k]), k
    # each snapshot of the loan book holds different loans: the migration says so instead of showing an empty matrix
    assert s["migration"]["status"] == "not applicable: snapshots 2024-05 and 2024-06 share no 'loan_id' (each holds different obligors)"


def test_gates_apply_to_both_samples(book_flow):
    s, va = book_flow["summary"], book_flow["validate"]
    f = pd.DataFrame(s["findings"])
    assert set(f["sample"]) == {"test", "oot"}
    oot_rules = set(f.loc[f["sample"] == "oot", "gate"])
    assert {"auc@oot", "score_psi@oot", "jeffreys_portfolio@oot", "soundness@oot"} <= oot_rules
    assert "data_fingerprint@oot" not in oot_rules  # `samples: [test]`: a property of the data, not of a sample
    blocked = f[(f.light == "red") & f.blocking]
    assert sorted(s["blocking_failures"]) == sorted(blocked.gate)
    v = book_flow["version"]
    # the job's exit code and the version's tags follow the gates over both samples
    assert (va.returncode == 0) == s["passed"] == (v.tags["mlcore.validation.status"] == "passed"), va.stderr[-2000:]
    if not s["passed"]: assert "failed validation; blocking gate(s):" in va.stdout + va.stderr


def test_report_and_card_show_both_samples(book_flow, tmp_path):
    page, s = book_flow["report"], book_flow["summary"]
    o, t = s["values_oot"], s["values"]
    for h in ("Test and out-of-time samples side by side", "Per grade: out-of-time sample", "PSI and CSI: development vs out-of-time",
              "Gaps: out-of-time sample", "Per segment: out-of-time sample", "AUC decline test (ECB), out-of-time sample"):
        assert h in page, h
    assert f"{o['auc']:.4f} [{o['auc_lo']:.4f}, {o['auc_hi']:.4f}]" in page and f"{t['auc']:.4f} [{t['auc_lo']:.4f}, {t['auc_hi']:.4f}]" in page
    assert "share no &#x27;loan_id&#x27;" in page and "no out-of-time sample" not in page
    v = book_flow["version"]
    card = mlflow.artifacts.load_text(v.tags["mlcore.model_card"].replace(".html", ".md"))
    assert f"| out-of-time | AUC | {o['auc']:.3f} | {o['auc_lo']:.3f} | {o['auc_hi']:.3f} |" in card
    assert "Out-of-time sample:" in card and "Newcombe" in card
    if not Path(CHROMIUM).exists(): pytest.skip("Chromium not installed at /usr/bin/chromium")
    f = tmp_path / "report.html"
    probe = "<script>addEventListener('load',()=>{document.body.dataset.loaded=[...document.images].filter(i=>i.complete&&i.naturalWidth>0).length})</script>"
    f.write_text(page.replace("</body>", probe + "</body>"))
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(cmd + ["--virtual-time-budget=5000", "--dump-dom", f.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    loaded = int(dom.stdout.split('data-loaded="')[1].split('"')[0])
    assert loaded == page.count("<img") >= 8  # ROC, CAP, and calibration, PSI/CSI, fairness for each sample
    shot = tmp_path / "report.png"
    r = subprocess.run(cmd + [f"--screenshot={shot}", "--window-size=1280,2400", f.as_uri()], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and shot.exists(), r.stderr[-2000:]
    from PIL import Image
    img = Image.open(shot).convert("L")
    assert img.getextrema()[1] - img.getextrema()[0] > 100 and len(set(img.getdata())) > 20  # not blank
    shutil.copy(shot, book_flow["dir"] / "report_oot.png")


def test_red_blocking_gate_out_of_time_blocks(book_flow, monkeypatch):
    "A blocking rule red only on the out-of-time sample fails the validation, named rule@oot, and takes no challenger"
    from mlcore.workflows.validate import validate_version, raise_if_blocked, ValidationFailed
    from mlcore.evaluation.battery import load_validation_config
    monkeypatch.setenv("MLCORE_USER", "carol")
    cfg = load_validation_config(book_flow["dir"] / "params/credit_pd_book/thresholds.yaml")
    auc_oot = book_flow["summary"]["values_oot"]["auc"]
    cfg["thresholds"]["auc"].update(green=auc_oot + 0.02, amber=auc_oot + 0.01, samples=["oot"])
    cfg["battery"]["n_boot"] = 50
    c = MlflowClient()
    with mlflow.start_run(experiment_id=c.get_experiment_by_name("credit_pd_book").experiment_id):
        res = validate_version("credit_pd_book/1", cfg["battery"], cfg["thresholds"])
    assert not res["passed"] and res["blocking_failures"] == ["auc@oot"]
    # a revalidation tests the AUC decline against the AUC recorded at the version's initial validation (a version tag)
    initial = float(book_flow["version"].tags["mlcore.validation.auc_initial"])
    assert initial == pytest.approx(book_flow["summary"]["values"]["auc"])
    assert res["tables_oot"]["auc_decline"]["auc_initial"] == initial == res["tables"]["auc_decline"]["auc_initial"]
    assert "auc" not in set(res["findings"].loc[res["findings"]["sample"] == "test", "rule"])  # `samples: [oot]`
    with pytest.raises(ValidationFailed, match=r"credit_pd_book version 1 failed validation; blocking gate\(s\): auc@oot: auc = 0\.\d+"):
        raise_if_blocked(res)
    v = c.get_model_version("credit_pd_book", "1")
    assert v.tags["mlcore.validation.status"] == "failed" and v.tags["mlcore.validation.failures"] == "auc@oot"
    assert "challenger" not in c.get_registered_model("credit_pd_book").aliases
