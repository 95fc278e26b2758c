"""The notebook workflow around the docs: the Jupyter kernel `make lab` uses, and the team-server path of
tutorial 3 (marked notest there because starting `mlflow server` takes a while)."""
import json, os, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest
from conftest import ROOT


def kernelspecs() -> dict:
    out = subprocess.run([str(Path(sys.executable).with_name("jupyter")), "kernelspec", "list", "--json"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return json.loads(out)["kernelspecs"]


def test_lab_kernel_is_the_project_venv():
    "`make venv` registers the `mlcore` kernel; it and the default `python3` kernel run the venv's Python"
    specs = kernelspecs()
    assert "mlcore" in specs, f"no 'mlcore' kernel registered (run `make kernel`); have {sorted(specs)}"
    venv_python = Path(sys.executable)
    for name in ("mlcore", "python3"):
        exe = specs[name]["spec"]["argv"][0]
        exe = Path(exe if os.path.isabs(exe) else sys.executable)
        assert exe.parent.resolve() == venv_python.parent.resolve(), f"kernel {name} runs {exe}, not {venv_python}"
    r = subprocess.run([specs["mlcore"]["spec"]["argv"][0], "-c", "import mlcore, mlcore.workflows.train; print(mlcore.__file__)"],
                       capture_output=True, text=True, cwd="/", timeout=120)
    assert r.returncode == 0 and str(ROOT/"mlcore") in r.stdout, r.stderr  # importable from any folder (editable install)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


@pytest.mark.spark
def test_spark_master_from_the_environment(spark):
    "Tutorial 3's Spark claim: MLCORE_SPARK_MASTER alone decides where Spark runs"
    from mlcore.core.config import load_settings
    from mlcore.core.spark import spark_conf
    from mlcore.data.datasets import load_bundled
    s = load_settings(env={**os.environ, "MLCORE_SPARK_MASTER": "spark://spark-master:7077"})
    assert spark_conf(s)["spark.master"] == "spark://spark-master:7077"
    s = load_settings(env={**os.environ, "MLCORE_SPARK_MASTER": "local[2]"})
    assert spark_conf(s)["spark.master"] == spark.sparkContext.master == "local[2]"
    df, _ = load_bundled("german_credit", s)
    counts = spark.createDataFrame(df).groupBy("purpose").count().toPandas()
    assert counts["count"].sum() == len(df)


@pytest.mark.slow
def test_runs_tracked_on_a_team_mlflow_server(tmp_path, monkeypatch):
    "Tutorial 3's server claim: pointing MLFLOW_TRACKING_URI at a real `mlflow server` is all tracking needs"
    import mlflow
    from mlflow.tracking import MlflowClient
    from mlcore.core.config import load_settings
    from mlcore.core.tracking import configure_tracking, experiment_id, start_job_run, end_job_run
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(tmp_path/"server.log", "w")
    server = subprocess.Popen([str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1", "--port", str(port),
                               "--backend-store-uri", f"sqlite:///{tmp_path}/server.db",
                               "--artifacts-destination", str(tmp_path/"server-artifacts"), "--workers", "1"],
                              stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})  # not used; starts faster
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                if urllib.request.urlopen(f"{url}/health", timeout=2).read() == b"OK": break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, (tmp_path/"server.log").read_text()[-2000:]
                time.sleep(0.5)
        env = {**os.environ, "MLFLOW_TRACKING_URI": url, "MLCORE_ARTIFACT_ROOT": str(tmp_path/"artifacts")}
        for k in ("MLFLOW_TRACKING_URI", "MLCORE_ARTIFACT_ROOT"): monkeypatch.setenv(k, env[k])
        s = load_settings(env=env)
        assert configure_tracking(s) == url
        exp = experiment_id("team_check", s)
        run = start_job_run("team_check", "check", s)  # what a job notebook does first
        mlflow.log_metric("answer", 42)
        end_job_run()
        got = MlflowClient(url).get_run(run.info.run_id)  # the run lives on the server, not in a local file
        assert got.info.experiment_id == exp and got.info.status == "FINISHED" and got.data.metrics["answer"] == 42.0
    finally:
        server.terminate(); server.wait(timeout=60); log.close()
    with socket.socket() as so:  # the server (and its uvicorn worker) is gone
        assert so.connect_ex(("127.0.0.1", port)) != 0
