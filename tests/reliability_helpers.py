"""Shared pieces of the reliability tests: light training runs started at once, and the checks that every one was recorded."""
import os, re, subprocess, tempfile, time
from pathlib import Path
from conftest import ROOT, MLCORE

# the real train job on the bundled German credit data, with a small search budget so that several fit on 2 cores
TRAIN_LIGHT = ["train", "-f", "params/credit_pd/train.yaml", "-p", "search_iter=2", "-p", "search_cv=2", "-p", "calibration_cv=2"]
# concurrent jobs per test: 4 in `make test`, 8 in `make soak-concurrency`
N_JOBS = int(os.environ.get("MLCORE_SOAK_JOBS", "4"))
# what a complete training run holds (besides the model version)
TRAIN_METRICS = {"rows_in", "rows_train", "rows_test", "test_gini", "test_auc", "scorecard_test_gini", "challenger_test_gini"}
TRAIN_ARTIFACTS = {"notebook/train.ipynb", "notebook/run.json", "notebook/params.yaml", "monitoring/reference.json",
                   "model/binning.json", "comparison.csv", "grades.csv", "scorecard/points_table.csv"}


def private_dir(prefix: str) -> Path:
    "A temporary folder that PostgreSQL's own user can reach when the tests run as root"
    d = Path(tempfile.mkdtemp(prefix=prefix))
    d.chmod(0o755)
    return d


def start_all(n: int, env: dict, args: list) -> list:
    "Start `n` `mlcore run` processes at once"
    return [subprocess.Popen([MLCORE, "run", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(n)]


def wait_all(procs: list, timeout: float = 1200) -> list:
    "(returncode, stdout, stderr) of every process"
    t0, out = time.time(), []
    for p in procs:
        try: o, e = p.communicate(timeout=max(1, timeout - (time.time() - t0)))
        except subprocess.TimeoutExpired:
            p.kill(); o, e = p.communicate()
        out.append((p.returncode, o, e))
    return out


def all_files(client, run_id: str, path: str | None = None) -> set:
    "Every artifact file of a run"
    files = set()
    for a in client.list_artifacts(run_id, path):
        if a.is_dir: files |= all_files(client, run_id, a.path)
        else: files.add(a.path)
    return files


def check_trainings(results: list, client, model: str = "credit_pd") -> dict:
    "Every concurrent training finished and is recorded completely; each registered version belongs to its own run"
    from mlcore.registry.integrity import TAG, _download, artifact_digest
    from mlcore.ops.runner import job_parameters, list_jobs
    problems = [f"job {i}: exit {rc}\n{e[-2000:]}" for i, (rc, o, e) in enumerate(results) if rc != 0]
    assert not problems, "\n".join(problems)
    n_params = len(job_parameters(list_jobs()["train"]))
    runs, versions = [], []
    for rc, out, err in results:
        rid = re.search(r"MLflow run:\s+(\w+)", out).group(1)
        (ver,) = re.findall(rf"registered model:\s+{model} version (\d+)", out)
        runs.append(rid); versions.append(ver)
    assert len(set(runs)) == len(runs) and sorted(map(int, versions)) == list(range(1, len(runs) + 1)), (runs, versions)
    metrics = []
    for rid, ver in zip(runs, versions):
        r = client.get_run(rid)
        assert r.info.status == "FINISHED", rid
        assert len(r.data.params) >= n_params and r.data.params["seed"] == "42", sorted(r.data.params)
        assert TRAIN_METRICS <= set(r.data.metrics), TRAIN_METRICS - set(r.data.metrics)
        files = all_files(client, rid)
        assert TRAIN_ARTIFACTS <= files, TRAIN_ARTIFACTS - files
        mv = client.get_model_version(model, ver)
        # the version was registered from this run, tagged by this run, and its files are the ones sealed by this run
        assert mv.run_id == rid and mv.tags["mlcore.run_id"] == rid, (ver, mv.run_id, rid)
        with tempfile.TemporaryDirectory() as d:
            assert artifact_digest(_download(model, ver, d)) == mv.tags[TAG], f"version {ver}: files differ from its seal"
        metrics.append({k: r.data.metrics[k] for k in TRAIN_METRICS})
    # same data and parameters: every run found the same model
    assert all(m == metrics[0] for m in metrics), metrics
    return {"runs": runs, "versions": versions, "metrics": metrics[0]}


class LoopbackProxy:
    "A TCP forwarder on 127.0.0.1 in front of a server; `stop` cuts every connection, as a crashed server or a broken network would"
    def __init__(self, target_port: int):
        import socket
        self.target, self.sock = target_port, socket.create_server(("127.0.0.1", 0))
        self.port, self.conns, self.open = self.sock.getsockname()[1], [], True

    def start(self):
        import threading
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self):
        import socket, threading
        while self.open:
            try: client, _ = self.sock.accept()
            except OSError: return
            try: upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError: client.close(); continue
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)): threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while data := a.recv(65536): b.sendall(data)
        except OSError: pass
        finally:
            for s in (a, b):
                try: s.close()
                except OSError: pass

    def stop(self):
        import socket
        self.open = False
        try: self.sock.shutdown(socket.SHUT_RDWR)
        except OSError: pass
        self.sock.close()
        for c in self.conns:
            try: c.shutdown(socket.SHUT_RDWR); c.close()
            except OSError: pass
