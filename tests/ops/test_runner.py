"""The job runner end to end: refusals before any kernel, failures, kills, tags and the real training job."""
import json, os, shutil, signal, subprocess, time
from pathlib import Path
import mlflow
import psutil
import pytest
from mlflow.tracking import MlflowClient
from conftest import ROOT, MLCORE, cli, write_job
from mlcore.core.config import ConfigError
from mlcore.ops.runner import run_job, repair_stale_runs


def all_runs():
    c = MlflowClient()
    exps = [e.experiment_id for e in c.search_experiments()]
    return c.search_runs(exps) if exps else []


def test_unknown_parameter_fails_before_any_kernel(store, monkeypatch):
    r = cli("run", "train", "-p", "no_such_param=1", env=store)
    assert r.returncode == 2
    assert "'no_such_param': not a parameter of job 'train'" in r.stderr
    assert all_runs() == [] and not Path(store["MLCORE_RUNS_DIR"]).exists()
    # in process, papermill must not even be called
    import papermill
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: pytest.fail("a kernel was started"))
    with pytest.raises(ConfigError, match="no_such_param"): run_job("train", overrides=["no_such_param=1"])


def test_unknown_job_lists_jobs(store):
    r = cli("run", "trian", env=store)
    assert r.returncode == 2 and "no such job (did you mean 'train'?)" in r.stderr


def test_failing_job_leaves_failed_run_with_notebook(jobs, store):
    r = cli("run", "fail", "-p", "n=7", env=store)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "ValueError: bad input: n=7" in r.stderr and "cell" in r.stderr
    (run,) = all_runs()
    assert run.info.status == "FAILED"
    assert "ValueError: bad input: n=7" in run.data.tags["mlcore.error"]
    assert run.data.metrics["before_failure"] == 1
    arts = {a.path for a in MlflowClient().list_artifacts(run.info.run_id, "notebook")}
    assert "notebook/fail.failed.ipynb" in arts
    nb = Path(run.data.tags["mlcore.run_dir"]) / "fail.failed.ipynb"
    assert "bad input: n=7" in nb.read_text()
    assert not list(Path(run.data.tags["mlcore.run_dir"]).glob("*.running.ipynb"))



def printed_error(stderr: str) -> str:
    "The error `mlcore run` printed (its last stderr lines)"
    assert "  error: " in stderr, stderr[-3000:]
    return stderr.split("  error: ", 1)[1].rstrip("\n")


def test_huge_error_is_cut_and_names_the_failing_line(jobs, store):
    "A 24 KB exception message: the printed error is about 2 KB and names line 3; run.json and the notebook keep it all"
    values = ", ".join(str(i) for i in range(5000))
    write_job(jobs, "huge", 'use_case: str = "tests"  # experiment',
              "from mlcore.core.tracking import start_job_run\nstart_job_run(use_case, 'x')\n"
              "raise ValueError('bad rows: ' + ', '.join(str(i) for i in range(5000)))\nprint('never')")
    r = cli("run", "huge", env=store)
    assert r.returncode == 1, r.stdout + r.stderr
    err = printed_error(r.stderr)
    assert len(err) <= 2100, len(err)
    assert err.startswith("cell 2, line 3: `raise ValueError('bad rows: ' + ', '.join(str(i) for i in range(5000)))`: ValueError: bad rows: 0, 1, 2")
    assert err.endswith("4998, 4999") and "characters cut; the whole traceback is in the executed notebook and run.json" in err
    (run,) = all_runs()
    assert run.data.tags["mlcore.error"] == err
    d = Path(run.data.tags["mlcore.run_dir"])
    manifest = json.loads((d / "run.json").read_text())
    assert manifest["error"] == err and manifest["status"] == "FAILED" and manifest["recorded"] is True
    tb = manifest["traceback"]
    assert f"ValueError: bad rows: {values}" in tb and "----> 3 raise ValueError" in tb and "\x1b" not in tb
    assert values in (d / "huge.failed.ipynb").read_text()


@pytest.mark.slow
def test_train_refuses_a_continuous_target(tmp_path, store):
    "The real train job on a catalog dataset whose target is a continuous score: exit 1 before any fitting, a short clear error"
    import numpy as np
    from mlcore.data.datasets import load_german_credit
    proj = tmp_path / "proj"
    (proj / "params").mkdir(parents=True)
    shutil.copy(ROOT / "settings.ini", proj)
    gc = load_german_credit()
    scores = np.random.default_rng(0).uniform(0, 1, len(gc)).round(4)
    gc.assign(default=scores).to_csv(proj / "scored.csv", index=False)
    (proj / "params" / "catalog.yaml").write_text(f"datasets:\n  scored: {{format: csv, path: {proj}/scored.csv}}\n")
    r = cli("run", "train", "-p", "dataset=scored", env={**store, "MLCORE_HOME": str(proj), "MLCORE_JOBS_DIR": str(ROOT / "nbs" / "jobs")})
    assert r.returncode == 1, r.stdout + r.stderr
    err = printed_error(r.stderr)
    assert len(err) < 2100, len(err)
    # the job's line, and where in the library it failed
    assert "line 2: `result = train_credit_pd(TrainParams.from_namespace(globals()))` (in mlcore.models.selection.check_binary_target, line" in err, err
    assert f"ValueError: target 'default' must be 0/1 (1 = the event) for a credit PD model; found {len(set(scores))} distinct values such as" in err
    (run,) = all_runs()
    assert run.info.status == "FAILED" and "rows_train" not in run.data.metrics  # refused before the split
    assert not MlflowClient().search_model_versions("name = 'credit_pd'")

def test_successful_job_is_finished(jobs, store):
    res = run_job("ok", overrides=["n=21"])
    assert (res.status, res.exit_code) == ("FINISHED", 0)
    run = MlflowClient().get_run(res.run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["n2"] == 42
    assert run.data.params["n"] == "21"
    assert json.loads((res.run_dir / "run.json").read_text())["status"] == "FINISHED"


def wait_for_running(timeout=90):
    t0 = time.time()
    while time.time() - t0 < timeout:
        runs = [r for r in all_runs() if r.info.status == "RUNNING"]
        if runs and "mlcore.run_dir" in runs[0].data.tags:  # the runner tags the run just after creating it
            d = Path(runs[0].data.tags["mlcore.run_dir"])
            nb = d / "sleeper.running.ipynb"
            if nb.exists() and "sleeping" in nb.read_text(): return runs[0]
        time.sleep(0.5)
    pytest.fail("job never started running")


def test_sigterm_marks_run_killed(jobs, store):
    p = subprocess.Popen([MLCORE, "run", "sleeper"], cwd=ROOT, env=store, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        run = wait_for_running()
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None: p.kill()
    assert p.returncode == 130, err
    r = MlflowClient().get_run(run.info.run_id)
    assert r.info.status == "KILLED"
    d = Path(r.data.tags["mlcore.run_dir"])
    assert (d / "sleeper.killed.ipynb").exists() and not (d / "sleeper.running.ipynb").exists()


def test_sigkill_run_is_repaired(jobs, store):
    p = subprocess.Popen([MLCORE, "run", "sleeper"], cwd=ROOT, env=store, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        run = wait_for_running()
        kids = psutil.Process(p.pid).children(recursive=True)
        p.kill(); p.wait(timeout=30)
        for k in kids:  # the kernel would notice its parent died; do not wait for it
            try: k.kill()
            except psutil.NoSuchProcess: pass
    finally:
        if p.poll() is None: p.kill()
    assert MlflowClient().get_run(run.info.run_id).info.status == "RUNNING"
    r = cli("runs", "repair", env=store)
    assert r.returncode == 0 and run.info.run_id in r.stdout
    after = MlflowClient().get_run(run.info.run_id)
    assert after.info.status == "KILLED" and "runner process died" in after.data.tags["mlcore.error"]
    d = Path(after.data.tags["mlcore.run_dir"])
    assert (d / "sleeper.killed.ipynb").exists() and not (d / "sleeper.running.ipynb").exists()
    assert repair_stale_runs() == []  # idempotent; a live run is never touched


def test_jobs_lists_parameters(store):
    r = cli("jobs", env=store)
    assert r.returncode == 0
    assert "train" in r.stdout and "test_size" in r.stdout and "float" in r.stdout and "share of applicants" in r.stdout


@pytest.mark.slow
def test_train_job_end_to_end(store):
    r = cli("run", "train", "-f", "params/credit_pd/train.yaml", "-p", "seed=7", env=store)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "registered model:  credit_pd version 1" in r.stdout and "mlcore ui" in r.stdout
    (run,) = all_runs()
    t = run.data.tags
    assert run.info.status == "FINISHED"
    for k in ["mlcore.git.commit", "mlcore.git.dirty", "mlcore.version", "mlcore.job", "mlcore.params_file",
              "mlcore.params_sha256", "mlcore.trained_by", "mlcore.dataset.german_credit.fingerprint"]:
        assert t.get(k), k
    assert t["mlcore.job"] == "train" and t["mlcore.params_file"] == "params/credit_pd/train.yaml"
    assert run.data.params["seed"] == "7"
    assert 0.3 < run.data.metrics["test_gini"] < 0.9 and run.data.metrics["rows_in"] == 1000
    exp = MlflowClient().get_experiment(run.info.experiment_id)
    assert exp.name == "credit_pd"
    (v,) = MlflowClient().search_model_versions("name = 'credit_pd'")
    assert v.run_id == run.info.run_id and v.tags["mlcore.trained_by"]
    model = mlflow.pyfunc.load_model(f"models:/credit_pd/{v.version}")
    assert model.metadata.signature is not None
    from mlcore.data.datasets import load_german_credit
    X = load_german_credit().drop(columns=["default", "personal_status_and_sex", "age_in_years", "foreign_worker"]).head(3)
    out = model.predict(X)
    k = 4  # reason_k in params/credit_pd/train.yaml
    assert list(out.columns) == ["pd", "score", "grade"] + [f"reason_{i}" for i in range(1, k + 1)]
    assert out["pd"].between(0, 1).all() and out["grade"].isin(list("ABCDEFG")).all()
    assert v.tags["mlcore.model_type"] in ("scorecard", "challenger")
    arts = {a.path for a in MlflowClient().list_artifacts(run.info.run_id, "notebook")}
    assert "notebook/train.ipynb" in arts
    c = MlflowClient()
    for path in ["monitoring/reference.json", "model/binning.json", "model/master_scale.json", "comparison.csv",
                 "scorecard/points_table.csv", "binning/binning_table.csv", "binning/iv_selection.csv", "grades.csv"]:
        assert c.download_artifacts(run.info.run_id, path), path
    ref = json.loads(Path(c.download_artifacts(run.info.run_id, "monitoring/reference.json")).read_text())
    assert "score" in ref and not set(ref) & {"personal_status_and_sex", "age_in_years", "foreign_worker"}
    m = run.data.metrics
    assert {"scorecard_test_gini", "challenger_test_gini", "scorecard_test_ks", "challenger_test_brier"} <= set(m)
