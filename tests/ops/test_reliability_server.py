"""The team tracking server: PostgreSQL on loopback behind `mlflow server`; concurrent trainings on it; the server down at start and mid-run."""
import json, shutil, subprocess, time
from pathlib import Path
import mlflow
import psutil
import pytest
from mlflow.tracking import MlflowClient
from conftest import ROOT, MLCORE, cli, write_job
from reliability_helpers import TRAIN_LIGHT, N_JOBS, LoopbackProxy, private_dir, start_all, wait_all, check_trainings
from mlcore.ops.cluster import free_port
from mlcore.ops.tracking_server import PostgresServer, TrackingServer, ServerProblem, postgres_bin


def _have_postgres():
    try: postgres_bin(); return True
    except ServerProblem: return False

pytestmark = pytest.mark.skipif(not _have_postgres(), reason="PostgreSQL server binaries missing (.ci/run installs the postgresql package)")


@pytest.fixture(scope="module")
def team():
    "A private PostgreSQL cluster and an MLflow server in front of it, both on 127.0.0.1, for this module"
    d = private_dir("mlcore-team-")
    with PostgresServer(d / "postgres") as pg, TrackingServer(pg.uri, d / "artifacts", env=pg.env, workers=1) as srv:
        yield pg, srv, d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def on_server(team, store, monkeypatch):
    "The `store` environment pointed at the team server (in this process too)"
    _, srv, _ = team
    monkeypatch.setenv("MLFLOW_TRACKING_URI", srv.url)
    mlflow.set_tracking_uri(srv.url); mlflow.set_registry_uri(srv.url)
    return {**store, "MLFLOW_TRACKING_URI": srv.url}


def listening(pid: int) -> set:
    "Addresses the process and its children listen on (a child that exits while we look, such as a backend, is skipped)"
    ips, parent = set(), psutil.Process(pid)
    for p in [parent, *parent.children(recursive=True)]:
        try: ips |= {c.laddr.ip for c in p.net_connections() if c.status == "LISTEN"}
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            if p is parent: raise
    return ips


def test_server_and_database_listen_on_loopback_only_with_a_password(team):
    import psycopg
    pg, srv, d = team
    assert srv.healthy() and listening(srv.proc.pid) == {"127.0.0.1"}
    postmaster = int((pg.data / "postmaster.pid").read_text().split()[0])
    assert {ip for ip in listening(postmaster)} == {"127.0.0.1"}
    with psycopg.connect(host="127.0.0.1", port=pg.port, user=pg.user, dbname=pg.database, passfile=str(pg.passfile)) as con:
        assert con.execute("select count(*) from experiments").fetchone()[0] >= 1  # MLflow's schema lives here
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(host="127.0.0.1", port=pg.port, user=pg.user, dbname=pg.database, password="guess")
    assert oct(pg.passfile.stat().st_mode & 0o777) == "0o600"
    assert "password" not in " ".join(srv.command()).lower() and pg.uri.count("@") == 1 and ":" not in pg.uri.split("//")[1].split("@")[0]


@pytest.mark.slow
def test_concurrent_trainings_on_tracking_server(team, on_server, tmp_path):
    "N_JOBS trainings of the same model at once against the server: all recorded completely, versions each from its own run"
    _, srv, d = team
    env = {**on_server, "MLCORE_AUDIT_LOG": str(tmp_path / "audit.jsonl")}
    t0 = time.time()
    res = check_trainings(wait_all(start_all(N_JOBS, env, TRAIN_LIGHT)), MlflowClient(srv.url))
    print(f"{N_JOBS} concurrent trainings on the tracking server: {len(res['runs'])} runs recorded in {time.time() - t0:.0f}s")
    # artifacts went through the server into the shared folder, not into the client's artifact root
    assert all(list((d / "artifacts").rglob(f"{rid}/artifacts/notebook/run.json")) for rid in res["runs"])
    assert not Path(env["MLCORE_ARTIFACT_ROOT"]).exists()


def test_tracking_server_down_at_start_fails_fast(jobs, store):
    env = {**store, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"}
    t0 = time.time()
    r = cli("run", "ok", env=env, timeout=120)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "tracking server http://127.0.0.1" in r.stderr and "is not reachable" in r.stderr and "Traceback" not in r.stderr
    assert time.time() - t0 < 60
    assert not (Path(store["MLCORE_RUNS_DIR"]) / "ok").exists()


def test_tracking_server_down_mid_run_never_reports_success(team, jobs, store):
    "The server goes away while the job runs: bounded retries, exit 3, run.json says the run was not recorded, repair closes it later"
    pg, srv, d = team
    write_job(jobs, "slowlog", 'use_case: str = "tests"  # experiment\nseconds: float = 3.0  # wait before logging',
              "import mlflow, time\nfrom mlcore.core.tracking import start_job_run, end_job_run\nstart_job_run(use_case, 'x')\n"
              "print('sleeping', flush=True)\ntime.sleep(seconds)\nmlflow.log_metric('after_wait', 1)\nend_job_run()")
    # the job reaches the server through a loopback proxy; stopping the proxy refuses and cuts its connections,
    # which is what the client sees when the server process dies (without waiting half a minute for a new one)
    proxy = LoopbackProxy(srv.port).start()
    env = {**store, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{proxy.port}"}
    runs = Path(store["MLCORE_RUNS_DIR"])
    p = subprocess.Popen([MLCORE, "run", "slowlog", "-p", "seconds=4"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        t0 = time.time()
        while not (nbs := list(runs.glob("slowlog/*/slowlog.running.ipynb"))) or "sleeping" not in nbs[0].read_text():
            assert time.time() - t0 < 120 and p.poll() is None, "job never started"
            time.sleep(0.3)
        proxy.stop()
        out, err = p.communicate(timeout=300)   # a hang fails here; the bounds below are what keep it short
    finally:
        if p.poll() is None: p.kill()
        proxy.stop()
    assert p.returncode == 3, out + err
    assert "is not reachable" in err and "could not be closed" in err and "FINISHED" not in out
    assert "Retries are bounded by MLFLOW_HTTP_REQUEST_MAX_RETRIES and MLFLOW_HTTP_REQUEST_TIMEOUT" in err, err
    (rd,) = runs.glob("slowlog/*")
    manifest = json.loads((rd / "run.json").read_text())
    assert manifest["recorded"] is False and manifest["status"] == "FAILED" and (rd / "slowlog.failed.ipynb").exists()
    assert "is not reachable" in manifest["tracking_error"]
    c = MlflowClient(srv.url)
    assert c.get_run(manifest["run_id"]).info.status == "RUNNING"  # what the server last heard
    # reachable again: the next runner (or `mlcore runs repair`) closes the orphaned run as KILLED
    r = cli("runs", "repair", env={**env, "MLFLOW_TRACKING_URI": srv.url})
    assert r.returncode == 0 and manifest["run_id"] in r.stdout, r.stdout + r.stderr
    run = c.get_run(manifest["run_id"])
    assert run.info.status == "KILLED" and "after_wait" not in run.data.metrics
    print("tracking server gone mid-run: job failed with exit 3 naming the retry bounds; run repaired to KILLED")
