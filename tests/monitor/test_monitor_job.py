"""The monitor job end to end: reference read from the registered model version's training run, a window of scored
data, history, HTML report (opened in headless Chromium), JSON alerts and the scheduler's exit code."""
import json, shutil, subprocess
from pathlib import Path
import pytest
from conftest import cli
from monitor_book import baseline_with_reference, score_frame, standin_book

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def champion(store, tmp_path):
    "A registered model version whose training run logged monitoring/reference.json, and two months of scored data"
    import mlflow
    from mlflow.tracking import MlflowClient
    from mlcore.core.tracking import experiment_id
    b = baseline_with_reference()
    with mlflow.start_run(experiment_id=experiment_id("credit_pd")) as run:
        mlflow.log_dict(b["reference"], "monitoring/reference.json")
        mlflow.log_metric("test_gini", b["test_gini"])
    c = MlflowClient()
    c.create_registered_model("credit_pd")
    mv = c.create_model_version("credit_pd", f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    c.set_registered_model_alias("credit_pd", "champion", mv.version)
    book = standin_book(2, 1500, seed=3, unit_change=(1, "credit_amount", 100))
    path = tmp_path / "scored.parquet"
    score_frame(book, b["model"], b["cols"]).to_parquet(path)
    return {"env": store, "current": str(path), "history": str(tmp_path / "history"), "version": mv.version}


def _run(ch, window, door=("monitor", "run")):
    return cli(*door, "-f", "params/credit_pd/monitor.yaml", "-p", f"current={ch['current']}",
               "-p", f"history_dir={ch['history']}", "-p", f"window={window}", env=ch["env"])


def _run_dir(out: str) -> Path:
    return Path(out.split("executed notebook: ")[1].splitlines()[0].strip()).parent


@pytest.mark.slow
def test_monitor_job_exit_codes_history_report(champion):
    from mlflow.tracking import MlflowClient
    ok = _run(champion, "2024-01")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "decision:          none (exit code 0)" in ok.stdout, ok.stdout
    al = json.loads((_run_dir(ok.stdout) / "alerts.json").read_text())
    assert al["action"] == "none" and al["model"]["version"] == str(champion["version"]) and al["window"] == "2024-01"
    assert al["backtest"]["direction"] == "in line" and 0.8 <= al["backtest"]["calibration_ratio"] <= 1.25, al["backtest"]
    broken = _run(champion, "2024-02")
    assert broken.returncode == 10, broken.stdout + broken.stderr          # warn: data-quality break
    assert "decision:          warn (exit code 10)" in broken.stdout and "    - data quality: credit_amount" in broken.stdout
    # one door: `mlcore run monitor` gives the same verdict, output and exit code as `mlcore monitor run`
    same = _run(champion, "2024-02", door=("run", "monitor"))
    assert same.returncode == 10, same.stdout + same.stderr
    assert "decision:          warn (exit code 10)" in same.stdout and "    - data quality: credit_amount" in same.stdout
    run_dir = _run_dir(broken.stdout)
    assert json.loads((run_dir / "decision.json").read_text())["action"] == "warn"
    assert 'id="calibration"' in (run_dir / "report_2024-02.html").read_text()
    al = json.loads((run_dir / "alerts.json").read_text())
    assert al["action"] == "warn" and {"column": "credit_amount", "issue": "data quality: out of range"}.items() <= \
        next(f for f in al["flagged"] if f["column"] == "credit_amount").items()
    run_id = broken.stdout.split("MLflow run:")[1].split("(")[0].strip()
    r = MlflowClient().get_run(run_id)
    assert r.data.tags["mlcore.monitor.window"] == "2024-02" and r.data.metrics["csi.credit_amount"] > 0.25
    assert (r.data.tags["mlcore.model.ref"], r.data.tags["mlcore.model.version"]) == ("credit_pd@champion", str(champion["version"]))
    arts = {a.path for a in MlflowClient().list_artifacts(run_id, "monitoring")}
    assert {"monitoring/alerts.json", "monitoring/result.json", "monitoring/report_2024-02.html"} <= arts
    h = cli("monitor", "history", "--folder", champion["history"], env=champion["env"])
    assert h.returncode == 0 and "2024-01" in h.stdout and "2024-02" in h.stdout and "warn" in h.stdout
    shutil.copy(run_dir / "report_2024-02.html", Path(champion["history"]) / "report.html")
    _check_in_browser(Path(champion["history"]) / "report.html", "warn")


def test_a_model_without_reference_is_refused(champion):
    import mlflow
    from mlflow.tracking import MlflowClient
    from mlcore.monitor.window import load_reference
    with mlflow.start_run() as run: mlflow.log_metric("test_gini", 0.5)
    mv = MlflowClient().create_model_version("credit_pd", f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    with pytest.raises(FileNotFoundError, match="has no frozen reference 'monitoring/reference.json'"):
        load_reference(f"credit_pd/{mv.version}")
    ref, info = load_reference("credit_pd@champion")
    assert info["version"] == str(champion["version"]) and "score" in ref and info["metrics"]["test_gini"] > 0.4
    assert info["ref"] == "credit_pd@champion" and info["alias"] == "champion"
    with pytest.raises(ValueError, match="must be NAME@ALIAS"):
        load_reference("credit_pd")
    with pytest.raises(ValueError, match="is a path or URI"):
        load_reference("models:/credit_pd@champion")


def test_old_parameter_names_are_refused_naming_the_new_one(champion):
    "The monitor job took `model_uri`, validate `registered_model_name` and `version`: each is refused, naming `model`"
    for job, old in (("monitor", "model_uri=models:/credit_pd@champion"), ("validate", "version=3"),
                     ("validate", "registered_model_name=credit_pd")):
        r = cli("run", job, "-p", old, env=champion["env"])
        assert r.returncode == 2 and "not a parameter of job" in r.stderr and "with 'model'" in r.stderr, r.stderr


def _check_in_browser(page: Path, action: str):
    if not CHROMIUM.exists():
        pytest.skip("headless Chromium not installed (/usr/bin/chromium; Debian: apt-get install -y chromium)")
    prof = page.parent / "chromium-profile"
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync", f"--user-data-dir={prof}",
           "--virtual-time-budget=5000", "--dump-dom", page.as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    assert f'data-action="{action}"' in dom, dom[:500]
    ok = dom.split('data-images-ok="')[1].split('"')[0]
    shown, total = map(int, ok.split("/"))
    assert shown == total >= 3, ok                 # every chart decoded as an image
    assert "Stability (PSI of the score, CSI per characteristic)" in dom and "credit_amount" in dom


def test_report_in_headless_chromium(tmp_path):
    from monitor_book import months
    from mlcore.monitor.window import monitor_window
    from mlcore.monitor.report import publish_window
    b = baseline_with_reference()
    book = score_frame(standin_book(2, 800, seed=5, population_shift=(1, "duration_in_month", 0.6)), b["model"], b["cols"])
    for m in months(n=2):
        res = monitor_window(book[book.snapshot_month == m], b["reference"], m, target="default", validation_gini=b["test_gini"],
                             model={"name": "credit_pd", "version": "1"})
        paths = publish_window(res, tmp_path)
    page = paths["report"].read_text()
    assert "Trends over windows" in page
    _check_in_browser(paths["report"], res["decision"]["action"])
