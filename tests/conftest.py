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
    head = "import mlflow, time\nfrom mlcore.tracking import start_job_run, end_job_run\nstart_job_run(use_case, 'x')\n"
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
    from mlcore.spark import spark_session, stop_spark
    s = spark_session(master="local[2]", conf={"spark.sql.shuffle.partitions": "2", "spark.driver.memory": "1g",
                                               "spark.default.parallelism": "2"})
    yield s
    stop_spark()
