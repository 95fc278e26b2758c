"""Concurrent jobs on the embedded SQLite store: every run recorded, and a lock the store cannot take reported clearly."""
import json, os, re, sqlite3, subprocess, threading, time
from pathlib import Path
import pytest
from mlflow.tracking import MlflowClient
from conftest import ROOT, MLCORE, cli, write_job
from reliability_helpers import TRAIN_LIGHT, N_JOBS, all_files, start_all, wait_all, check_trainings


REGISTER_JOB = """import mlflow, numpy as np, pandas as pd
from sklearn.linear_model import LogisticRegression
from mlcore.core.tracking import start_job_run, end_job_run, log_sklearn_model
run = start_job_run(use_case, "register")
rng = np.random.default_rng(seed)
X = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"]); y = (X.a + rng.normal(size=200) > 0).astype(int)
mlflow.log_metrics({f"m{i}": float(i * seed) for i in range(20)})
mlflow.log_params({f"p{i}": i for i in range(20)})
for i in range(5): mlflow.log_text(f"artifact {i} of run {run.info.run_id}", f"files/a{i}.txt")
log_sklearn_model(LogisticRegression().fit(X, y), X, registered_model_name="tiny")
end_job_run()"""


@pytest.mark.slow
def test_concurrent_jobs_on_embedded_sqlite(jobs, store, tmp_path, monkeypatch):
    """N_JOBS jobs registering the same model started at once on a new SQLite file: every run complete, versions 1..N, each
    from its own run. `make test` uses a light registering job; `make soak-concurrency` runs 8 real trainings instead."""
    client = MlflowClient()
    if os.environ.get("MLCORE_SOAK_JOBS"):
        from mlcore.registry.governance import AuditLog
        monkeypatch.delenv("MLCORE_JOBS_DIR")  # the project's own jobs
        env = {**{k: v for k, v in store.items() if k != "MLCORE_JOBS_DIR"}, "MLCORE_AUDIT_LOG": str(tmp_path / "audit.jsonl")}
        t0 = time.time()
        res = check_trainings(wait_all(start_all(N_JOBS, env, TRAIN_LIGHT)), client)
        print(f"{N_JOBS} concurrent trainings on SQLite: {len(res['runs'])} runs recorded in {time.time() - t0:.0f}s")
        log = AuditLog(tmp_path / "audit.jsonl")
        assert log.verify() == []
        assert sorted(e["version"] for e in log.entries() if e["event"] == "registered") == sorted(res["versions"])
        return
    write_job(jobs, "register", 'use_case: str = "tests"  # experiment\nseed: int = 1  # data seed', REGISTER_JOB)
    t0 = time.time()
    results = wait_all([start_all(1, store, ["register", "-p", f"seed={i + 1}"])[0] for i in range(N_JOBS)])
    assert all(rc == 0 for rc, _, _ in results), [e[-1500:] for rc, _, e in results if rc]
    runs = {re.search(r"MLflow run:\s+(\w+)", o).group(1) for _, o, _ in results}
    exp = client.get_experiment_by_name("tests").experiment_id
    recorded = client.search_runs([exp])
    assert {r.info.run_id for r in recorded} == set(runs) and len(recorded) == N_JOBS
    for r in recorded:
        seed = int(r.data.params["seed"])
        assert r.info.status == "FINISHED"
        assert {k: v for k, v in r.data.metrics.items() if k.startswith("m")} == {f"m{i}": float(i * seed) for i in range(20)}
        assert {f"p{i}" for i in range(20)} <= set(r.data.params)
        files = all_files(client, r.info.run_id)
        assert {f"files/a{i}.txt" for i in range(5)} | {"notebook/register.ipynb", "notebook/run.json"} <= files, files
    versions = client.search_model_versions("name = 'tiny'")
    assert sorted(int(v.version) for v in versions) == list(range(1, N_JOBS + 1))
    for v in versions:  # not mixed up: each version's source run is the run that registered it, and its files are that run's
        assert v.run_id in runs and v.tags["mlcore.run_id"] == v.run_id
        if getattr(v, "model_id", None): assert client.get_logged_model(v.model_id).source_run_id == v.run_id
    assert len({v.run_id for v in versions}) == N_JOBS
    print(f"{N_JOBS} concurrent registering jobs on SQLite: {len(recorded)} runs and {len(versions)} versions recorded in {time.time() - t0:.0f}s")


@pytest.fixture
def slow_job(jobs):
    "A job that announces itself, waits, then logs a metric"
    write_job(jobs, "slowlog", 'use_case: str = "tests"  # experiment\nseconds: float = 3.0  # wait before logging',
              "import mlflow, time\nfrom mlcore.core.tracking import start_job_run, end_job_run\nstart_job_run(use_case, 'x')\n"
              "print('sleeping', flush=True)\ntime.sleep(seconds)\nmlflow.log_metric('after_wait', 1)\nend_job_run()")
    return jobs


def hold_lock(db: Path, seconds: float, ready: threading.Event | None = None, done: threading.Event | None = None):
    "Hold SQLite's write lock on `db` (as another writer would) for `seconds`, or until `done` is set"
    con = sqlite3.connect(db, timeout=30, isolation_level=None)
    con.execute("BEGIN EXCLUSIVE")
    if ready: ready.set()
    if done: done.wait(seconds)
    else: time.sleep(seconds)
    con.execute("ROLLBACK"); con.close()


def test_sqlite_locked_at_start_is_reported_clearly(slow_job, store):
    "Another writer holds the SQLite file longer than its busy timeout: exit 3 and a message naming the cure, no traceback"
    from mlcore.core.tracking import check_tracking
    check_tracking(store["MLFLOW_TRACKING_URI"])  # the store exists, with MLflow's tables
    db = Path(store["MLFLOW_TRACKING_URI"][len("sqlite:///"):])
    ready, done = threading.Event(), threading.Event()
    t = threading.Thread(target=hold_lock, args=(db, 120, ready, done)); t.start()
    ready.wait(10)
    try: r = cli("run", "ok", env=store, timeout=120)
    finally: done.set(); t.join()
    assert r.returncode == 3, r.stdout + r.stderr
    assert "embedded SQLite tracking store" in r.stderr and "make tracking-server" in r.stderr and "MLFLOW_TRACKING_URI=http" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (Path(store["MLCORE_RUNS_DIR"]) / "ok").exists()  # no run folder for the refused job


@pytest.mark.skipif(not os.environ.get("MLCORE_SOAK_JOBS"), reason="about 1 minute; `make soak-concurrency` runs it (the server "
                    "outage test covers the same runner path in `make test`)")
def test_sqlite_locked_mid_run_is_reported_clearly(slow_job, store):
    "The lock arrives while the job runs: the job does not report success; exit 3 with the SQLite message; the run ends not FINISHED"
    p = subprocess.Popen([MLCORE, "run", "slowlog", "-p", "seconds=1"], cwd=ROOT, env=store, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    done = threading.Event()
    try:
        db = Path(store["MLFLOW_TRACKING_URI"][len("sqlite:///"):])
        t0 = time.time()
        while not list(Path(store["MLCORE_RUNS_DIR"]).glob("slowlog/*/slowlog.running.ipynb")) or \
                "sleeping" not in next(Path(store["MLCORE_RUNS_DIR"]).glob("slowlog/*/slowlog.running.ipynb")).read_text():
            assert time.time() - t0 < 90 and p.poll() is None, "job never started"
            time.sleep(0.3)
        # the lock outlasts the job: its kernel cannot log, and the runner cannot close the run either
        t = threading.Thread(target=hold_lock, args=(db, 120, None, done)); t.start()
        out, err = p.communicate(timeout=120)
    finally:
        done.set()
        if p.poll() is None: p.kill()
    assert p.returncode == 3, out + err
    assert "embedded SQLite tracking store" in err and "make tracking-server" in err
    (d,) = Path(store["MLCORE_RUNS_DIR"]).glob("slowlog/*")
    t.join()
    manifest = json.loads((d / "run.json").read_text())
    assert manifest["status"] == "FAILED" and manifest["cause"] == "environment" and manifest["recorded"] is False
    assert "database is locked" in manifest["error"]
    r = cli("runs", "repair", env=store)
    assert r.returncode == 0 and manifest["run_id"] in r.stdout
    run = MlflowClient().get_run(manifest["run_id"])
    assert run.info.status == "KILLED" and "after_wait" not in run.data.metrics


def test_concurrent_publishes_keep_scores_and_quarantine_from_one_run(tmp_path, monkeypatch):
    """Two runs publish the same partition (scores + quarantine) at once: run-b asks to publish while run-a is between its
    two swaps. The published pair must come from one run, whichever it is. Ordered with events: without the lock in
    `publish_many`, run-b swaps both before run-a's second swap and the result mixes the runs (checked by removing it)."""
    import pandas as pd
    import mlcore.inference.batch as batch
    swap, a_between, b_done, swaps = batch._swap, threading.Event(), threading.Event(), {"run-a": 0, "run-b": 0}
    def ordered_swap(staging, final, run_id):
        swap(staging, final, run_id); swaps[run_id] += 1
        if run_id == "run-b" and swaps[run_id] == 2: b_done.set()
        if run_id == "run-a" and swaps[run_id] == 1:
            a_between.set()
            b_done.wait(timeout=3)   # bounded: with the lock run-b cannot swap while run-a holds it
    monkeypatch.setattr(batch, "_swap", ordered_swap)
    target = tmp_path / "scores"
    def publish(run_id, when_staged):
        def w(p): p.mkdir(parents=True); pd.DataFrame({"run": [run_id]}).to_parquet(p / "part-0.parquet")
        batch.publish_many([(w, target, "m=1"), (w, target / "_quarantine", "m=1")], run_id, lambda staged: when_staged())
    ts = [threading.Thread(target=publish, args=("run-a", lambda: None)),
          threading.Thread(target=publish, args=("run-b", a_between.wait))]   # run-b publishes once run-a is mid-way
    for t in ts: t.start()
    for t in ts: t.join()
    got = [pd.read_parquet(target / "m=1").run[0], pd.read_parquet(target / "_quarantine" / "m=1").run[0]]
    assert got[0] == got[1] and got[0] in swaps, got   # scores and quarantine from one run
    assert not [x for x in target.rglob(".*")]     # no staging, no replaced version, no lock file left
