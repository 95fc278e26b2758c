"""Soak the REST scoring service: `mlcore serve` on loopback under a steady, moderate load for a while.

Starts `mlcore serve --model MODEL` on 127.0.0.1 (a free port) with the current environment (so the configured MLflow
store must hold the model: run `make run` first), sends single and batch scoring requests from a few keep-alive clients
at a target rate (90% valid applicants, 10% broken ones that must be refused with 422), samples the server's RSS, stops
the server and prints the figures. Exit code 1 when any request failed, any 5xx came back, a broken applicant was not
refused, or RSS grew by more than --rss-bound-mb between the end of the warm-up and the end.

    python bench/soak_serving.py --seconds 300 --rate 40 --clients 4      # `make soak`
"""
import argparse, http.client, json, os, random, signal, socket, subprocess, sys, threading, time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def applicants(n: int = 200, seed: int = 0) -> list:
    "Valid applicants (model inputs of the bundled German credit data, protected attributes and target dropped)"
    from mlcore.data.datasets import load_german_credit, PROTECTED_ATTRIBUTES, TARGET
    df = load_german_credit().drop(columns=[TARGET, *PROTECTED_ATTRIBUTES]).sample(n, random_state=seed)
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in df.to_dict("records")]


def broken(a: dict, rng: random.Random) -> dict:
    "One applicant made invalid in one of a few ways"
    k = rng.choice(["duration_in_month", "credit_amount", "purpose"])
    return rng.choice([{**a, k: None}, {**a, k: "lots"}, {**a, "unexpected_field": 1}, {**a, "duration_in_month": 10**9}])


def rss_mb(pid: int) -> float:
    "Resident memory of the server process and its children, in MB"
    import psutil
    p = psutil.Process(pid)
    return sum(q.memory_info().rss for q in [p, *p.children(recursive=True)]) / 2**20


def start_server(model: str, port: int, log_dir: Path) -> subprocess.Popen:
    mlcore = str(Path(sys.executable).with_name("mlcore"))
    out = open(log_dir / "server.log", "w")
    p = subprocess.Popen([mlcore, "serve", "--model", model, "--port", str(port), "--decision-log", str(log_dir / "decisions.jsonl")],
                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if p.poll() is not None: raise RuntimeError(f"mlcore serve exited ({p.returncode}): {(log_dir / 'server.log').read_text()[-2000:]}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2); c.request("GET", "/ready")
            if c.getresponse().status == 200: return p
        except OSError: time.sleep(0.5)
    stop_server(p); raise RuntimeError("mlcore serve did not become ready within 180 s")


def stop_server(p: subprocess.Popen):
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
        try: p.wait(timeout=30)
        except subprocess.TimeoutExpired: os.killpg(p.pid, signal.SIGKILL); p.wait()


def soak(port: int, pid: int, seconds: float, rate: float, clients: int, warmup: float, batch_share: float = 0.1) -> dict:
    "Drive the service for `seconds`; returns the figures"
    pool = applicants()
    stop, lock = time.monotonic() + seconds, threading.Lock()
    f = {"requests": 0, "ok": 0, "refused_as_expected": 0, "errors": 0, "status_5xx": 0, "unexpected": [], "latency_ms": []}
    per_client = rate / clients

    def client(i):
        rng, conn = random.Random(i), http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        nxt = time.monotonic()
        while (now := time.monotonic()) < stop:
            if now < nxt: time.sleep(nxt - now)
            nxt += 1 / per_client
            bad = rng.random() < 0.1
            if rng.random() < batch_share:
                recs = [rng.choice(pool) for _ in range(rng.randint(2, 20))]
                if bad: recs[-1] = broken(recs[-1], rng)
                path, body = "/score/batch", {"applicants": recs}
            else:
                a = rng.choice(pool)
                path, body = "/score", broken(a, rng) if bad else a
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
                r = conn.getresponse(); text = r.read(); status = r.status
            except OSError as e:
                conn.close(); conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                status, text = None, str(e).encode()
            ms = (time.perf_counter() - t0) * 1000
            with lock:
                f["requests"] += 1; f["latency_ms"].append(ms)
                if status is not None and status >= 500: f["status_5xx"] += 1
                if status == (422 if bad else 200): f["ok" if not bad else "refused_as_expected"] += 1
                else:
                    f["errors"] += 1
                    if len(f["unexpected"]) < 5: f["unexpected"].append(f"{path} -> {status}: {text[:200]!r}")

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads: t.start()
    time.sleep(min(warmup, seconds / 2))
    f["rss_start_mb"] = rss_mb(pid)
    samples = [(round(time.monotonic() - stop + seconds, 1), round(f["rss_start_mb"], 1))]
    while time.monotonic() < stop:
        time.sleep(min(10, max(0.1, stop - time.monotonic())))
        samples.append((round(time.monotonic() - stop + seconds, 1), round(rss_mb(pid), 1)))
    for t in threads: t.join(timeout=60)
    f["rss_end_mb"] = rss_mb(pid)
    lat = sorted(f.pop("latency_ms")) or [0.0]
    f.update(p50_ms=round(lat[len(lat) // 2], 2), p99_ms=round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 2),
             rss_samples=samples, seconds=seconds, rate_target=rate, clients=clients)
    return f


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="credit_pd@champion")
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--rate", type=float, default=40, help="target requests per second over all clients")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--warmup", type=float, default=15, help="seconds of load before the starting RSS is taken")
    ap.add_argument("--rss-bound-mb", type=float, default=50)
    ap.add_argument("--log-dir", default=None, help="server log and decision log (default: a temporary folder)")
    a = ap.parse_args(argv)
    import tempfile
    log_dir = Path(a.log_dir or tempfile.mkdtemp(prefix="mlcore-soak-")); log_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = start_server(a.model, port, log_dir)
    import psutil
    procs = [psutil.Process(server.pid), *psutil.Process(server.pid).children(recursive=True)]
    listening = sorted({c.laddr.ip for q in procs for c in q.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN})
    try: f = soak(port, server.pid, a.seconds, a.rate, a.clients, a.warmup)
    finally: stop_server(server)
    growth = f["rss_end_mb"] - f["rss_start_mb"]
    f.update(listening=listening, rss_growth_mb=round(growth, 1), rss_bound_mb=a.rss_bound_mb, rss_start_mb=round(f["rss_start_mb"], 1),
             rss_end_mb=round(f["rss_end_mb"], 1), achieved_rate=round(f["requests"] / a.seconds, 1))
    print(f"soak {a.seconds:.0f} s against mlcore serve --model {a.model} on 127.0.0.1:{port}, {a.clients} clients, "
          f"target {a.rate:g} req/s")
    print(f"  requests {f['requests']:,} ({f['achieved_rate']} req/s): ok {f['ok']:,}, broken refused with 422 "
          f"{f['refused_as_expected']:,}, errors {f['errors']}, 5xx {f['status_5xx']}")
    print(f"  server listens on: {', '.join(listening)}")
    print(f"  latency p50 {f['p50_ms']} ms, p99 {f['p99_ms']} ms")
    print(f"  server RSS after warm-up {f['rss_start_mb']} MB, at end {f['rss_end_mb']} MB: growth {f['rss_growth_mb']} MB "
          f"(bound {a.rss_bound_mb:g} MB)")
    for u in f["unexpected"]: print("  unexpected:", u)
    print("FIGURES " + json.dumps({k: v for k, v in f.items() if k != "rss_samples"}))
    ok = f["errors"] == 0 and f["status_5xx"] == 0 and growth < a.rss_bound_mb and f["requests"] > 0 and listening == ["127.0.0.1"]
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
