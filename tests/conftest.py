"""Shared fixtures: every test gets its own MLflow store, artifact root and runs folder."""
import os, sys, subprocess
from pathlib import Path
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
MLCORE = str(Path(sys.executable).with_name("mlcore"))


@pytest.fixture
def store(tmp_path, monkeypatch):
    "Isolated MLflow store and runs folder; returns the environment a subprocess needs"
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
           "MLCORE_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
           "MLCORE_RUNS_DIR": str(tmp_path / "runs")}
    for k, v in env.items(): monkeypatch.setenv(k, v)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    import mlflow
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    mlflow.set_registry_uri(env["MLFLOW_TRACKING_URI"])
    for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):  # mlflow writes these back into os.environ
        if k in env: monkeypatch.setenv(k, env[k])
        else: monkeypatch.delenv(k, raising=False)
    return {**os.environ, **env}


def write_job(folder: Path, name: str, params_src: str, body: str) -> Path:
    "Write a minimal job notebook: a parameters cell and one code cell"
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell(f"# {name}"),
               nbformat.v4.new_code_cell(params_src, metadata={"tags": ["parameters"]}),
               nbformat.v4.new_code_cell(body)],
        metadata={"kernelspec": {"name": "python3", "display_name": "python3", "language": "python"}})
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture
def jobs(tmp_path, monkeypatch, store):
    "A jobs folder with small jobs that succeed, fail or sleep"
    d = tmp_path / "jobs"
    head = "import mlflow, time\nfrom mlcore.core.tracking import start_job_run, end_job_run\nstart_job_run(use_case, 'x')\n"
    write_job(d, "ok", 'use_case: str = "tests"  # experiment\nn: int = 2  # a number',
              head + "mlflow.log_metric('n2', n * 2)\nend_job_run()")
    write_job(d, "fail", 'use_case: str = "tests"  # experiment\nn: int = 2  # a number',
              head + "mlflow.log_metric('before_failure', 1)\nraise ValueError(f'bad input: n={n}')")
    write_job(d, "sleeper", 'use_case: str = "tests"  # experiment\nseconds: float = 60.0  # how long',
              head + "print('sleeping', flush=True)\ntime.sleep(seconds)\nend_job_run()")
    monkeypatch.setenv("MLCORE_JOBS_DIR", str(d))
    store["MLCORE_JOBS_DIR"] = str(d)  # for subprocesses started with the `store` environment
    return d


def cli(*args, env=None, timeout=600):
    "Run the installed `mlcore` command in the project root"
    return subprocess.run([MLCORE, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def spark():
    "One local[2] Spark session shared by every Spark test (starting a JVM costs seconds)"
    from mlcore.core.spark import spark_session, stop_spark
    s = spark_session(master="local[2]", conf={"spark.sql.shuffle.partitions": "2", "spark.driver.memory": "1g",
                                               "spark.default.parallelism": "2"})
    yield s
    stop_spark()


@pytest.fixture(scope="session")
def real_flow(tmp_path_factory):
    """The flagship flow once per session in a throwaway project home: train, validate, approve, score, monitor.
    Returns {"env" (the variables to set, see `use_flow`), "dir", "runs": {job: run_id}, "book"}; champion: credit_pd@champion.
    The environment is restored afterwards, so other tests never see this flow's project home."""
    import shutil
    import mlflow
    from mlcore.ops.runner import run_job
    from mlcore.data.synthetic import generate_loan_book
    d = tmp_path_factory.mktemp("real_flow")
    home = d / "home"
    for sub in ("credit_pd", "contracts"): shutil.copytree(ROOT / "params" / sub, home / "params" / sub)
    (home / "params" / "catalog.yaml").write_text(
        "datasets:\n"
        f"  german_credit: {{format: csv, path: {ROOT}/data/german_credit.csv, contract: params/contracts/german_credit.yaml,\n"
        "                  target: {column: creditability, positive: bad, name: default}, max_quarantined_share: 0.0}\n"
        f"  loan_book: {{format: parquet, path: {d}/loan_book, partition_by: snapshot_month, contract: params/contracts/loan_book.yaml}}\n"
        f"  credit_pd_scores: {{format: parquet, path: {d}/scores, partition_by: snapshot_month}}\n")
    uri = f"sqlite:///{d}/mlflow.db"
    env = {"MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri, "MLCORE_ARTIFACT_ROOT": str(d / "artifacts"),
           "MLCORE_RUNS_DIR": str(d / "runs"), "MLCORE_AUDIT_LOG": str(d / "audit.jsonl"), "MLCORE_HOME": str(home),
           "MLCORE_JOBS_DIR": str(ROOT / "nbs" / "jobs"), "MLCORE_DATA_DIR": str(ROOT / "data")}
    mp = pytest.MonkeyPatch()
    for k, v in env.items(): mp.setenv(k, v)
    mp.delenv("MLFLOW_RUN_ID", raising=False)
    mlflow.set_tracking_uri(uri); mlflow.set_registry_uri(uri)
    generate_loan_book(months=2, rows_per_month=500, start="2024-11", seed=1).to_parquet(
        d / "loan_book", partition_cols=["snapshot_month"], index=False)
    runs, params = {}, home / "params" / "credit_pd"
    for job, user, extra in [("train", "flow-trainer", []), ("validate", "flow-validator", []), ("score", "flow-scheduler", []),
                             ("monitor", "flow-scheduler", [f"current={d}/scores", f"history_dir={d}/monitoring"])]:
        mp.setenv("MLCORE_USER", user)
        if job == "score":
            from mlcore.registry.governance import approve
            approve("credit_pd", "challenger", "flow-approver", "test approval")
        res = run_job(job, params / f"{job}.yaml", extra)
        assert res.status == "FINISHED", f"{job}: {res.error}"
        runs[job] = res.run_id
    mp.undo()
    return {"env": env, "dir": d, "runs": runs, "book": d / "loan_book"}


@pytest.fixture
def use_flow(real_flow, monkeypatch):
    "Point this test's environment and MLflow at the `real_flow` store"
    import mlflow
    for k, v in real_flow["env"].items(): monkeypatch.setenv(k, v)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    mlflow.set_tracking_uri(real_flow["env"]["MLFLOW_TRACKING_URI"]); mlflow.set_registry_uri(real_flow["env"]["MLFLOW_TRACKING_URI"])
    return real_flow
