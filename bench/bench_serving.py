"""Online scoring latency: p50/p99 and requests per second at 1, 8 and 32 concurrent clients.

Trains the credit PD model into a throwaway MLflow store, makes it champion, starts `mlcore serve`
on 127.0.0.1 and drives it with a bounded load generator (a fixed number of requests per level,
keep-alive connections, one thread per client), once per worker count (`mlcore serve --workers N`).
The machine may be shared: the load average is printed with the figures.
Usage: python bench/bench_serving.py [requests_per_level] [worker counts, e.g. 1,2]
"""
import http.client, json, os, statistics, subprocess, sys, tempfile, threading, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
N = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
WORKERS = [int(w) for w in (sys.argv[2] if len(sys.argv) > 2 else "1,2").split(",")]


def setup(tmp):
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db", "MLCORE_ARTIFACT_ROOT": f"{tmp}/artifacts",
           "MLCORE_RUNS_DIR": f"{tmp}/runs"}
    os.environ.update(env)
    from mlflow.tracking import MlflowClient
    from mlcore.ops.runner import run_job
    res = run_job("train", ROOT / "params" / "credit_pd" / "train.yaml")
    assert res.status == "FINISHED", res.error
    (v,) = MlflowClient().search_model_versions(f"run_id = '{res.run_id}'")
    MlflowClient().set_registered_model_alias(v.name, "champion", v.version)
    return env


def applicant():
    from mlcore.data.datasets import load_german_credit, PROTECTED_ATTRIBUTES, TARGET
    row = load_german_credit().drop(columns=[TARGET, *PROTECTED_ATTRIBUTES]).iloc[0]
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}


def load(port, clients, total, body):
    lat, errors, lock = [], [0], threading.Lock()
    per = total // clients
    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        for _ in range(per):
            t0 = time.perf_counter()
            conn.request("POST", "/score", body=body, headers={"Content-Type": "application/json"})
            r = conn.getresponse(); r.read()
            mine.append(time.perf_counter() - t0)
            if r.status != 200:
                with lock: errors[0] += 1
        conn.close()
        with lock: lat.extend(mine)
    ts = [threading.Thread(target=worker) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in ts: t.start()
    for t in ts: t.join()
    wall = time.perf_counter() - t0
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
    return {"clients": clients, "requests": len(lat), "errors": errors[0], "p50_ms": q(0.50), "p99_ms": q(0.99), "rps": len(lat) / wall,
            "load": os.getloadavg()[0]}


def run(env, tmp, workers, body):
    from mlcore.ops.cluster import free_port
    port = free_port()
    srv = subprocess.Popen([str(Path(sys.executable).with_name("mlcore")), "serve", "--model", "credit_pd@champion", "--port", str(port), "--workers", str(workers),
                            "--decision-log", f"{tmp}/decisions-{workers}.jsonl"], cwd=ROOT, env={**os.environ, **env},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(240):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2); c.request("GET", "/ready")
                if c.getresponse().status == 200: break
            except OSError: time.sleep(0.5)
        load(port, 8, 400, body)  # warm-up (every worker)
        out = [load(port, c, N, body) for c in (1, 8, 32)]
        logged = len(Path(f"{tmp}/decisions-{workers}.jsonl").read_text().splitlines())
        return out, logged
    finally:
        srv.terminate(); srv.wait(timeout=30)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        env = setup(tmp)
        body = json.dumps(applicant())
        print(f"online scoring, {N} requests per level, single applicant with reason codes, keep-alive, loopback, 2 cores")
        print(f"{'workers':>8} {'clients':>8} {'requests':>9} {'errors':>7} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'load avg':>9}")
        for w in WORKERS:
            res, logged = run(env, tmp, w, body)
            for r in res:
                print(f"{w:>8} {r['clients']:>8} {r['requests']:>9} {r['errors']:>7} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['rps']:>8.1f} {r['load']:>9.2f}")
            print(f"{'':>8} decision log: {logged} lines for {400 + sum(r['requests'] for r in res)} requests (warm-up included)")


if __name__ == "__main__":
    main()
