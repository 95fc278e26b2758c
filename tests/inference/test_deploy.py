"""Deployment: container and manifests lint, the REST service on a registered model, a real Spark standalone cluster."""
import copy, json, os, posixpath, re, shutil, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest
import yaml
from conftest import ROOT, MLCORE

BIN = Path(sys.executable).parent


def test_dockerfile_passes_hadolint_and_is_non_root_with_java():
    r = subprocess.run([str(BIN / "hadolint"), "deploy/Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "openjdk-17-jre-headless" in text and "\nUSER 10001" in text and 'ENTRYPOINT ["mlcore"]' in text


def test_hadolint_catches_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\nCMD mlcore serve\n")
    r = subprocess.run([str(BIN / "hadolint"), str(bad)], capture_output=True, text=True)
    assert r.returncode != 0 and "DL3007" in r.stdout


def test_kubernetes_manifests_validate_and_have_limits_and_probes():
    files = sorted((ROOT / "deploy" / "k8s").glob("*.yaml"))
    r = subprocess.run([str(BIN / "kubernetes-validate"), "--strict", *map(str, files)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    docs = [d for f in files for d in yaml.safe_load_all(f.read_text())]
    kinds = sorted(d["kind"] for d in docs)
    assert kinds.count("CronJob") == 3 and "Deployment" in kinds and "Service" in kinds
    for d in docs:
        if d["kind"] in ("CronJob", "Deployment"):
            pod = d["spec"]["jobTemplate"]["spec"]["template"]["spec"] if d["kind"] == "CronJob" else d["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True
            for c in pod["containers"]:
                assert c["resources"]["limits"]["memory"] and c["resources"]["limits"]["cpu"]
                if d["kind"] == "Deployment":
                    assert c["livenessProbe"]["httpGet"]["path"] == "/health" and c["readinessProbe"]["httpGet"]["path"] == "/ready"


def test_kubernetes_validate_catches_a_bad_manifest(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicas: two\n"
                   "  selector: {matchLabels: {a: b}}\n  template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: i}]}}\n")
    r = subprocess.run([str(BIN / "kubernetes-validate"), "--strict", str(bad)], capture_output=True, text=True)
    assert r.returncode != 0 and "replicas" in r.stdout + r.stderr


# --- storage: what must outlive a pod is on a PersistentVolumeClaim defined in deploy/k8s ---
K8S = ROOT / "deploy" / "k8s"


def k8s_docs() -> list:
    return [d for f in sorted(K8S.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]


def pod_spec(d: dict) -> dict:
    return d["spec"]["jobTemplate"]["spec"]["template"]["spec"] if d["kind"] == "CronJob" else d["spec"]["template"]["spec"]


def workloads(docs: list) -> list:
    return [d for d in docs if d["kind"] in ("CronJob", "Deployment")]


def image_home() -> str:
    "The project root inside the image: ENV MLCORE_HOME, else WORKDIR, as the Dockerfile sets them"
    text = (ROOT / "deploy" / "Dockerfile").read_text().replace("\\\n", " ")
    home = [m.group(1) for l in text.splitlines() if l.startswith("ENV ") for m in re.finditer(r"\bMLCORE_HOME=(\S+)", l)]
    workdir = [l.split()[1] for l in text.splitlines() if l.startswith("WORKDIR ")]
    return (home or workdir)[-1]


def evidence_paths(d: dict, c: dict) -> dict:
    "What this container writes that is evidence: {what: (absolute path, must be writable)}, from its env, args and the code's defaults"
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    root = env.get("MLCORE_HOME") or image_home()
    at = lambda p: posixpath.normpath(p if p.startswith("/") else posixpath.join(root, p))
    runs = at(env.get("MLCORE_RUNS_DIR") or yaml.safe_load((ROOT / "params" / "settings.yaml").read_text())["paths"]["runs"])
    args, out = c.get("args", []), {}
    if d["kind"] == "CronJob":
        job = "monitor" if args[:2] == ["monitor", "run"] else args[1]
        params = yaml.safe_load((ROOT / args[args.index("-f") + 1]).read_text()) if "-f" in args else {}
        params.update(args[i + 1].split("=", 1) for i, a in enumerate(args) if a in ("-p", "--param"))
        text = (ROOT / "nbs" / "jobs" / f"{job}.ipynb").read_text()   # the lifecycle (audit) is written by governance and the workflows
        writes_audit = "mlcore.registry.governance" in text or "mlcore.workflows." in text
        out["runs folder"] = (runs, True)
        out["audit log"] = (at(env.get("MLCORE_AUDIT_LOG") or "audit/lifecycle.jsonl"), writes_audit)
        if job == "monitor": out["monitoring history"] = (at(params.get("history_dir", "monitoring")), True)
    elif args[:1] == ["serve"]:
        log = args[args.index("--decision-log") + 1] if "--decision-log" in args else posixpath.join(runs, "decisions", "credit_pd.jsonl")
        out["decision log"] = (at(log), True)
    return out


def mount_of(path: str, c: dict):
    "The volume mount holding `path` (the deepest mount point above it), or None"
    ms = [m for m in c.get("volumeMounts", []) if path == m["mountPath"].rstrip("/") or path.startswith(m["mountPath"].rstrip("/") + "/")]
    return max(ms, key=lambda m: len(m["mountPath"]), default=None)


def storage_problems(docs: list) -> list:
    "Evidence paths not on a writable PersistentVolumeClaim defined in deploy/k8s"
    claims = {d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"}
    probs = []
    for d in workloads(docs):
        vols = {v["name"]: v for v in pod_spec(d).get("volumes", [])}
        for c in pod_spec(d)["containers"]:
            for what, (path, rw) in evidence_paths(d, c).items():
                where = f"{d['metadata']['name']}/{c['name']}: {what} {path}"
                m = mount_of(path, c)
                if m is None: probs.append(f"{where}: not on a volume (the container's own filesystem)"); continue
                pvc = vols[m["name"]].get("persistentVolumeClaim")
                if pvc is None: probs.append(f"{where}: on {set(vols[m['name']]) - {'name'}} volume '{m['name']}', not a claim")
                elif pvc["claimName"] not in claims: probs.append(f"{where}: claim {pvc['claimName']} is not defined in deploy/k8s")
                elif rw and (m.get("readOnly") or pvc.get("readOnly")): probs.append(f"{where}: mounted read-only")
    return probs


def claim_problems(docs: list) -> list:
    "Claims used but not defined (or defined but unused); ReadWriteOnce claims shared by replicas or by several workloads; one decision-log file per pod"
    claims = {d["metadata"]["name"]: d for d in docs if d["kind"] == "PersistentVolumeClaim"}
    used, probs = {}, []
    for d in workloads(docs):
        pod, name = pod_spec(d), d["metadata"]["name"]
        for v in pod.get("volumes", []):
            if "persistentVolumeClaim" not in v: continue
            cn = v["persistentVolumeClaim"]["claimName"]
            used.setdefault(cn, []).append(name)
            modes = set(claims.get(cn, {}).get("spec", {}).get("accessModes", []))
            if d["kind"] == "Deployment" and d["spec"].get("replicas", 1) > 1 and "ReadWriteMany" not in modes:
                probs.append(f"{name}: {d['spec']['replicas']} replicas share claim {cn} with access modes {sorted(modes)}")
        if d["kind"] == "Deployment" and d["spec"].get("replicas", 1) > 1:
            for c in pod["containers"]:
                pod_vars = {e["name"] for e in c.get("env", []) if e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name"}
                for what, (path, _) in evidence_paths(d, c).items():
                    m = mount_of(path, c) or {}
                    if not any(f"$({v})" in path or f"$({v})" in m.get("subPathExpr", "") for v in pod_vars):
                        probs.append(f"{name}/{c['name']}: {what} {path} is one file for all replicas (name it after the pod)")
    probs += [f"claim {cn} used by {ws} is not defined in deploy/k8s" for cn, ws in used.items() if cn not in claims]
    probs += [f"claim {cn} is defined but no workload mounts it" for cn in claims if cn not in used]
    probs += [f"ReadWriteOnce claim {cn} is mounted by several workloads {ws}" for cn, ws in used.items()
              if cn in claims and "ReadWriteMany" not in claims[cn]["spec"]["accessModes"] and len(ws) > 1]
    if not used: probs.append("no workload mounts a PersistentVolumeClaim")
    return probs


def test_evidence_is_on_persistent_volume_claims_not_emptydir():
    "Runs folders, monitoring history, audit log and decision log (paths from env, args, params and the image's root) live on claims"
    docs = k8s_docs()
    assert storage_problems(docs) == []
    found = {what for d in workloads(docs) for c in pod_spec(d)["containers"] for what in evidence_paths(d, c)}
    assert found == {"runs folder", "audit log", "monitoring history", "decision log"}
    train = next(d for d in docs if d["metadata"]["name"] == "mlcore-credit-pd-train")
    assert evidence_paths(train, pod_spec(train)["containers"][0])["audit log"] == ("/app/audit/lifecycle.jsonl", True)  # train registers models
    for d in workloads(docs):   # the checker sees an emptyDir swapped in for any claim
        for v in pod_spec(d).get("volumes", []):
            if "persistentVolumeClaim" not in v: continue
            bad = copy.deepcopy(docs)
            (w,) = [x for x in bad if x["metadata"]["name"] == d["metadata"]["name"] and x["kind"] == d["kind"]]
            (bv,) = [x for x in pod_spec(w)["volumes"] if x["name"] == v["name"]]
            del bv["persistentVolumeClaim"]; bv["emptyDir"] = {}
            assert any("emptyDir" in p and v["name"] in p for p in storage_problems(bad)), (d["metadata"]["name"], v["name"])
    for d in workloads(docs):  # emptyDir is for scratch only
        scratch = {v["name"] for v in pod_spec(d)["volumes"] if "emptyDir" in v}
        assert {m["mountPath"] for c in pod_spec(d)["containers"] for m in c["volumeMounts"] if m["name"] in scratch} <= {"/tmp"}


def test_claims_exist_and_replicas_do_not_share_a_read_write_once_claim():
    docs = k8s_docs()
    assert claim_problems(docs) == []
    serve = next(d for d in docs if d["kind"] == "Deployment")
    assert serve["spec"]["replicas"] > 1
    (cn,) = [v["persistentVolumeClaim"]["claimName"] for v in pod_spec(serve)["volumes"] if "persistentVolumeClaim" in v]
    bad = copy.deepcopy(docs)
    next(d for d in bad if d["kind"] == "PersistentVolumeClaim" and d["metadata"]["name"] == cn)["spec"]["accessModes"] = ["ReadWriteOnce"]
    assert any("replicas share claim" in p for p in claim_problems(bad))
    bad = copy.deepcopy(docs)
    c = pod_spec(next(d for d in bad if d["kind"] == "Deployment"))["containers"][0]
    c["args"] = [re.sub(r"\$\(\w+\)", "credit_pd", a) for a in c["args"]]
    assert any("one file for all replicas" in p for p in claim_problems(bad))
    bad = [d for d in copy.deepcopy(docs) if not (d["kind"] == "PersistentVolumeClaim" and d["metadata"]["name"] == cn)]
    assert any(f"claim {cn} used by" in p for p in claim_problems(bad))


def test_monitor_cronjob_uses_the_exit_code_door_and_fails_at_once_on_a_verdict():
    "`mlcore monitor run`: 10 (warn) and 20 (retrain) fail the Job without a retry; 1 and 3 are retried per backoffLimit"
    from mlcore.commands.main import _parser
    from mlcore.monitor.window import EXIT_NOTHING, EXIT_WARN, EXIT_RETRAIN
    from mlcore.ops.runner import EXIT_FAILED, EXIT_USAGE, EXIT_ENV, EXIT_KILLED
    text = (K8S / "cronjob-monitor.yaml").read_text()
    (d,) = [d for d in yaml.safe_load_all(text) if d and d["kind"] == "CronJob"]
    job = d["spec"]["jobTemplate"]["spec"]
    pod = job["template"]["spec"]
    (c,) = pod["containers"]
    assert c["args"] == ["monitor", "run", "-f", "params/credit_pd/monitor.yaml"]
    a = _parser().parse_args(c["args"])
    assert a.func.__name__ == "_cmd_monitor_run" and (ROOT / a.params_file).is_file()
    assert pod["restartPolicy"] == "Never" and job["backoffLimit"] >= 1     # podFailurePolicy needs Never

    def first_rule(code):   # rules apply in order; the first whose exit codes match decides (none: the failure counts, a retry)
        for r in job.get("podFailurePolicy", {}).get("rules", []):
            e = r.get("onExitCodes")
            if e and e.get("containerName") in (None, c["name"]) and (code in e["values"]) == (e["operator"] == "In"): return r
    for code in (EXIT_WARN, EXIT_RETRAIN):
        r = first_rule(code)
        assert r is not None and r["action"] == "FailJob" and r["onExitCodes"]["containerName"] == "monitor", code
    for code in (EXIT_FAILED, EXIT_ENV):
        assert first_rule(code) is None or first_rule(code)["action"] == "Count", code
    header = "\n".join(l for l in text.splitlines() if l.startswith("#"))
    assert "mlcore monitor run" in header
    for code in (EXIT_NOTHING, EXIT_WARN, EXIT_RETRAIN, EXIT_FAILED, EXIT_USAGE, EXIT_ENV, EXIT_KILLED):
        assert re.search(rf"(?<!\d){code} = ", header), code


@pytest.fixture(scope="module")
def champion(tmp_path_factory):
    "Train the credit PD model on the bundled data once for this module, and make it champion"
    import mlflow
    from mlflow.tracking import MlflowClient
    from mlcore.ops.runner import run_job
    d = tmp_path_factory.mktemp("serving")
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{d}/mlflow.db", "MLCORE_ARTIFACT_ROOT": str(d / "artifacts"),
           "MLCORE_RUNS_DIR": str(d / "runs")}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items(): mp.setenv(k, v)
        mp.delenv("MLFLOW_RUN_ID", raising=False)
        mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"]); mlflow.set_registry_uri(env["MLFLOW_TRACKING_URI"])
        res = run_job("train", ROOT / "params" / "credit_pd" / "train.yaml")
        assert res.status == "FINISHED", res.error
        (v,) = MlflowClient().search_model_versions(f"run_id = '{res.run_id}'")
        if "mlcore.artifact_sha256" not in (v.tags or {}):
            from mlcore.registry.integrity import seal_model_version
            seal_model_version(v.name, v.version)
        MlflowClient().set_registered_model_alias(v.name, "champion", v.version)
        yield v, {**os.environ, **env}


def applicant():
    from mlcore.data.datasets import load_german_credit, PROTECTED_ATTRIBUTES, TARGET
    row = load_german_credit().drop(columns=[TARGET, *PROTECTED_ATTRIBUTES]).iloc[0]
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}


@pytest.mark.slow
def test_service_scores_champion_and_refuses_bad_input(champion, tmp_path):
    champion, _ = champion
    from fastapi.testclient import TestClient
    from mlcore.inference.serving import app_from_registry
    log = tmp_path / "decisions.jsonl"
    client = TestClient(app_from_registry("credit_pd@champion", log))
    assert client.get("/ready").json()["model"]["version"] == str(champion.version)
    a = applicant()
    r = client.post("/score", json=a)
    assert r.status_code == 200, r.text
    body = r.json()
    assert 0 < body["decision"]["pd"] < 1 and body["model"]["name"] == "credit_pd" and body["model"]["version"] == str(champion.version)
    cases = {"missing": ({k: v for k, v in a.items() if k != "duration_in_month"}, "duration_in_month"),
             "wrong type": ({**a, "credit_amount": "lots"}, "credit_amount"),
             "unknown field": ({**a, "age_in_years": 40}, "age_in_years"),
             "bool for int": ({**a, "duration_in_month": True}, "duration_in_month")}
    for name, (payload, field) in cases.items():
        r = client.post("/score", json=payload)
        assert r.status_code == 422, name
        assert field in [e["field"] for e in r.json()["errors"]], (name, r.json())
    assert client.post("/score", content=b"[1, 2").status_code == 400
    assert client.post("/score", json=[a]).status_code == 422
    r = client.post("/score/batch", json={"applicants": [a, a, a]})
    assert r.status_code == 200 and len(r.json()["decisions"]) == 3
    assert client.post("/score/batch", json={"applicants": [a] * 101}).status_code == 413
    lines = [json.loads(l) for l in log.read_text().splitlines()]
    assert len(lines) == 4 and all(l["version"] == str(champion.version) for l in lines)
    assert str(a["credit_amount"]) not in log.read_text() and a["purpose"] not in log.read_text()
    schema = client.get("/openapi.json").json()
    assert "/score" in schema["paths"] and "/score/batch" in schema["paths"]


@pytest.mark.slow
def test_mlcore_serve_on_loopback(champion, tmp_path):
    "`mlcore serve --workers 2`: every worker loads the verified model; loopback only; one decision log"
    champion, store = champion
    from mlcore.ops.cluster import free_port
    port = free_port()
    p = subprocess.Popen([MLCORE, "serve", "--model", "credit_pd@champion", "--port", str(port), "--workers", "2", "--decision-log", str(tmp_path / "d.jsonl")], cwd=ROOT,
                         env=store, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(240):   # the parent verifies the model, then each worker loads it: allow for a loaded machine
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as r:
                    if r.status == 200: break
            except OSError: time.sleep(0.5)
            if p.poll() is not None: pytest.fail(f"service exited: {p.stdout.read()[-2000:]}")
        else: pytest.fail("service never became ready")
        req = urllib.request.Request(f"http://127.0.0.1:{port}/score", data=json.dumps(applicant()).encode(),
                                     headers={"Content-Type": "application/json"})
        for _ in range(20):   # new connections: both workers answer
            with urllib.request.urlopen(req, timeout=10) as r: assert 0 < json.load(r)["decision"]["pd"] < 1
        lines = [json.loads(l) for l in (tmp_path / "d.jsonl").read_text().splitlines()]   # whole lines, none interleaved
        assert len(lines) == 20 and {l["status"] for l in lines} == {"ok"}
        import psutil
        listening = {c.laddr.ip for c in psutil.Process(p.pid).net_connections() if c.status == "LISTEN"}
        assert listening == {"127.0.0.1"}
    finally:
        p.terminate(); p.wait(timeout=30)


CLUSTER_SCRIPT = r'''
import json, sys
import pandas as pd
from mlcore.inference.batch import score_dataset
from mlcore.ops.cluster import StandaloneCluster
from mlcore.core.spark import spark_session, stop_spark
cat, out = sys.argv[1], sys.argv[2]
conf = {"spark.executor.memory": "512m", "spark.cores.max": "2", "spark.sql.shuffle.partitions": "4"}
def run(master, output):
    spark = spark_session(master=master, conf=conf)
    s = score_dataset("credit_pd@champion", "loan_book", output, "2024-12", "loan_id", "spark", f"run-{output}", spark=spark, catalog_file=cat)
    sc = spark.sparkContext
    executors = sc._jsc.sc().getExecutorMemoryStatus().size() - 1       # block managers other than the driver's
    stop_spark()
    return s, executors
local, local_exec = run("local[2]", "scores_local")
with StandaloneCluster(workers=2, cores=1, memory="1g") as c:
    remote, remote_exec = run(c.url, "scores_cluster")
    apps = c.status()["completedapps"] + c.status()["activeapps"]
a = pd.read_parquet(f"{out}/scores_local/snapshot_month=2024-12").sort_values("loan_id").reset_index(drop=True)
b = pd.read_parquet(f"{out}/scores_cluster/snapshot_month=2024-12").sort_values("loan_id").reset_index(drop=True)
cols = [c for c in a.columns if c not in ("run_id", "scored_at")]
print(json.dumps({"rows": [local["rows_scored"], remote["rows_scored"]], "quarantined": [local["rows_quarantined"], remote["rows_quarantined"]],
                  "identical": bool(a[cols].equals(b[cols])), "local_executors": local_exec, "cluster_executors": remote_exec,
                  "cluster_app_cores": max(x["cores"] for x in apps)}))
'''


@pytest.mark.spark
@pytest.mark.slow
def test_score_job_on_standalone_cluster_same_as_local(champion, book):
    "A real master and two workers on loopback: the score job by configuration alone, executors on the workers, same output as local"
    _, env = champion
    d, cat = book
    text = (d / "catalog.yaml").read_text()
    (d / "catalog_cluster.yaml").write_text(text + f"  scores_local: {{format: parquet, path: {d / 'scores_local'}, partition_by: snapshot_month}}\n"
                                           f"  scores_cluster: {{format: parquet, path: {d / 'scores_cluster'}, partition_by: snapshot_month}}\n")
    r = subprocess.run([sys.executable, "-c", CLUSTER_SCRIPT, str(d / "catalog_cluster.yaml"), str(d)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["rows"] == [397, 397] and res["quarantined"] == [3, 3] and res["identical"] is True
    assert res["local_executors"] == 0 and res["cluster_executors"] == 2 and res["cluster_app_cores"] == 2


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    "A small synthetic loan book (3 months) with corrupted rows, and a catalog pointing at temporary folders"
    from mlcore.data.synthetic import generate_loan_book
    d = tmp_path_factory.mktemp("book")
    df = generate_loan_book(months=3, rows_per_month=400, start="2024-10", seed=3)
    last = df.index[df.snapshot_month == "2024-12"]
    df.loc[last[0], "purpose"] = "spaceship"                 # unknown category
    df.loc[last[1], "duration_in_month"] = 999               # out of range
    df.loc[last[2], "credit_amount"] = None                  # missing
    df.to_parquet(d / "loan_book", partition_cols=["snapshot_month"], index=False)
    cat = d / "catalog.yaml"
    cat.write_text(f"datasets:\n  loan_book: {{format: parquet, path: {d / 'loan_book'}, partition_by: snapshot_month}}\n"
                   f"  scores: {{format: parquet, path: {d / 'scores'}, partition_by: snapshot_month}}\n")
    return d, str(cat)


@pytest.mark.spark
@pytest.mark.slow
def test_batch_scores_same_on_pandas_and_spark_and_reruns_replace(champion, book, spark):
    import pandas as pd
    from mlcore.inference.batch import score_dataset
    d, cat = book
    a = score_dataset("credit_pd@champion", "loan_book", "scores", "", "loan_id", "pandas", "run-pandas", catalog_file=cat, carry=["default"])
    assert (a["partition"], a["rows_in"], a["rows_quarantined"]) == ("2024-12", 400, 3)
    assert a["rows_scored"] + a["rows_quarantined"] == a["rows_in"]
    p = pd.read_parquet(d / "scores" / "snapshot_month=2024-12").sort_values("loan_id").reset_index(drop=True)
    q = pd.read_parquet(d / "scores" / "_quarantine" / "snapshot_month=2024-12").sort_values("loan_id")
    assert sorted(q.quarantine_reason) == ["credit_amount.not_null", "duration_in_month.range", "purpose.allowed"]
    assert {"pd", "score", "grade", "reason_1", "model_name", "model_version", "run_id", "scored_at", "default"} <= set(p.columns)
    b = score_dataset("credit_pd@champion", "loan_book", "scores", "2024-12", "loan_id", "spark", "run-spark", spark=spark, catalog_file=cat, carry=["default"])
    assert {k: b[k] for k in ("rows_in", "rows_scored", "rows_quarantined")} == {k: a[k] for k in ("rows_in", "rows_scored", "rows_quarantined")}
    s = pd.read_parquet(d / "scores" / "snapshot_month=2024-12").sort_values("loan_id").reset_index(drop=True)
    assert len(s) == len(p) == 397                                    # rerun replaced the partition, no duplicates
    assert (s.pd - p.pd).abs().max() < 1e-9
    assert (s.grade == p.grade).all() and (s.reason_1 == p.reason_1).all() and (s.reason_4 == p.reason_4).all()
    qs = pd.read_parquet(d / "scores" / "_quarantine" / "snapshot_month=2024-12")
    assert sorted(qs.quarantine_reason) == sorted(q.quarantine_reason)


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.parametrize("plan", ["parquet row groups", "spark dataframe"])
def test_spark_batch_checks_keys_on_staged_output_and_skips_empty_quarantine(champion, spark, tmp_path, monkeypatch, plan):
    "Both Spark plans score without a key shuffle, find duplicated keys in the staged output and score again exactly; a clean partition gets an empty quarantine"
    import pandas as pd
    import mlcore.inference.batch as batch
    from mlcore.data.synthetic import generate_loan_book
    if plan == "spark dataframe": monkeypatch.setattr(batch, "_parquet_plan", lambda *a, **k: None)  # as for CSV or cast inputs
    df = generate_loan_book(months=2, rows_per_month=300, start="2025-01", seed=5)
    df = df.astype({"loan_id": "Int64", "credit_amount": "Int64"})   # integers with gaps stay integers (else the catalog must cast)
    jan = df.index[df.snapshot_month == "2025-01"]
    df.loc[jan[1], "loan_id"] = df.loc[jan[0], "loan_id"]           # a key twice, both copies valid
    df.loc[jan[3], "loan_id"] = df.loc[jan[2], "loan_id"]           # a key twice, one copy breaks the contract
    df.loc[jan[3], "credit_amount"] = None
    df.loc[jan[4], "loan_id"] = pd.NA                                # no key
    df.loc[jan[5], "purpose"] = "spaceship"                          # an unknown category
    df.to_parquet(tmp_path / "book", partition_cols=["snapshot_month"], index=False, row_group_size=100)  # 3 row groups: 3 tasks
    cat = tmp_path / "catalog.yaml"
    cat.write_text(f"datasets:\n  book: {{format: parquet, path: {tmp_path / 'book'}, partition_by: snapshot_month, "
                   f"contract: {ROOT / 'params' / 'contracts' / 'loan_book.yaml'}}}\n"   # as in params/catalog.yaml
                   f"  out: {{format: parquet, path: {tmp_path / 'out'}, partition_by: snapshot_month}}\n")
    def run(engine, month):
        s = batch.score_dataset("credit_pd@champion", "book", "out", month, "loan_id", engine, f"run-{engine}", spark=spark, catalog_file=str(cat))
        got = (pd.read_parquet(tmp_path / "out" / f"snapshot_month={month}").sort_values("loan_id").reset_index(drop=True),
               pd.read_parquet(tmp_path / "out" / "_quarantine" / f"snapshot_month={month}"))
        return s, got
    (sp, (ss, sq)), (pp, (ps, pq)) = run("spark", "2025-01"), run("pandas", "2025-01")
    assert sp["plan"] == "spark dataframe, exact key check"           # the fast plan found the duplicates; the exact plan published
    assert (sp["rows_in"], sp["rows_scored"], sp["rows_quarantined"]) == (pp["rows_in"], pp["rows_scored"], pp["rows_quarantined"]) == (300, 294, 6)
    assert ss.loan_id.tolist() == ps.loan_id.tolist() and ss.loan_id.is_unique
    assert (ss.pd == ps.pd).all() and (ss.reason_1 == ps.reason_1).all()
    key = lambda q: sorted(zip(q.loan_id.astype("Int64").astype(str), q.quarantine_reason))
    assert key(sq) == key(pq)
    assert sorted(sq.quarantine_reason) == ["loan_id.not_null", "loan_id.unique", "loan_id.unique", "loan_id.unique",
                                            "loan_id.unique;credit_amount.not_null", "purpose.allowed"]
    (s, (ss, sq)), (p, (ps, pq)) = run("spark", "2025-02"), run("pandas", "2025-02")   # clean: one plan, one pass
    assert s["plan"] == plan and (s["rows_scored"], s["rows_quarantined"]) == (p["rows_scored"], p["rows_quarantined"]) == (300, 0)
    assert ss.columns.tolist() == ps.columns.tolist() and ss.loan_id.tolist() == ps.loan_id.tolist()
    pd.testing.assert_frame_equal(ss.drop(columns=["run_id", "scored_at"]), ps.drop(columns=["run_id", "scored_at"]), check_dtype=False)
    s, (ss, sq) = run("spark", "2025-02")
    assert len(sq) == 0 and sq.columns.tolist() == pq.columns.tolist()      # an empty quarantine with its columns
    assert not [x for x in (tmp_path / "out").rglob(".*") if x.name.startswith((".staging", ".part-", ".replaced"))]  # nothing left behind


@pytest.mark.slow
def test_failed_batch_write_publishes_nothing(champion, book, monkeypatch):
    import pandas as pd
    from mlcore.inference.batch import score_dataset
    d, cat = book
    before = pd.read_parquet(d / "scores" / "snapshot_month=2024-12")
    def disk_full(self, path, *a, **k):
        Path(path).write_bytes(b"PAR1 half a file")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(pd.DataFrame, "to_parquet", disk_full)
    with pytest.raises(OSError, match="No space left"):
        score_dataset("credit_pd@champion", "loan_book", "scores", "2024-11", "loan_id", "pandas", "run-fail", catalog_file=cat)
    with pytest.raises(OSError, match="No space left"):
        score_dataset("credit_pd@champion", "loan_book", "scores", "2024-12", "loan_id", "pandas", "run-fail2", catalog_file=cat)
    monkeypatch.undo()
    names = sorted(x.name for x in (d / "scores").iterdir())
    assert names == ["_quarantine", "snapshot_month=2024-12"]          # no 2024-11, no staging left behind
    assert pd.read_parquet(d / "scores" / "snapshot_month=2024-12").equals(before)  # the old partition is intact


# --- performance paths: same answers as the reference paths ---
def _noisy_book(n, seed):
    "Synthetic applicants with missing values, unseen categories and special/extreme numbers sprinkled in"
    import numpy as np
    from mlcore.data.synthetic import generate_loan_book
    df = generate_loan_book(months=1, rows_per_month=n, start="2024-12", seed=seed)
    rng = np.random.default_rng(seed)
    for c in df.columns.drop(["loan_id", "snapshot_month", "default"]):
        m = rng.random(len(df)) < 0.03
        if df[c].dtype == object: df.loc[m, c] = None if rng.random() < 0.5 else "never seen"
        else: df[c] = df[c].astype(float).mask(m, np.nan if rng.random() < 0.5 else -1e9)
    return df


@pytest.mark.slow
def test_row_scorer_matches_pandas_on_random_rows(champion):
    "The service's fast path gives the pandas path's PD, score, grade and reasons on thousands of random rows"
    import numpy as np
    from mlcore.registry.integrity import load_verified_model
    from mlcore.inference.serving import RowScorer, decisions, row_scorer
    pyf, _ = load_verified_model("credit_pd@champion")
    cm = pyf.unwrap_python_model().model
    assert isinstance(row_scorer(pyf), RowScorer)
    df = _noisy_book(3000, seed=5)
    X = df[cm.state["characteristics"]]
    got, exp = row_scorer(pyf).decisions(X.to_dict("records")), decisions(cm.score(X))
    np.testing.assert_allclose([g["pd"] for g in got], [e["pd"] for e in exp], rtol=0, atol=1e-12)
    np.testing.assert_allclose([g["score"] for g in got], [e["score"] for e in exp], rtol=0, atol=1e-9)
    assert [g["grade"] for g in got] == [e["grade"] for e in exp]
    assert [g["reasons"] for g in got] == [e["reasons"] for e in exp]
    assert sum(len(e["reasons"]) for e in exp) > 3000 and len({e["grade"] for e in exp}) > 3   # a test that can fail


@pytest.mark.spark
@pytest.mark.slow
def test_spark_reasons_break_ties_like_pandas(champion, spark):
    "Two characteristics losing exactly the same points: Spark orders the reasons as pandas does (model order)"
    import copy
    import numpy as np
    from mlcore.registry.integrity import load_verified_model
    from mlcore.models.credit import CreditModel
    cm = load_verified_model("credit_pd@champion")[0].unwrap_python_model().model
    st = copy.deepcopy(cm.state)
    a = st["characteristics"][1]
    spec = copy.deepcopy(next(s for s in st["binning"] if s["name"] == a)); spec["name"] = "twin"
    st["characteristics"].insert(0, "twin"); st["binning"].insert(0, spec)
    st["scorecard"]["coef"]["twin"] = st["scorecard"]["coef"][a]; st["reasons"]["texts"]["twin"] = "twin of " + a
    tw = CreditModel(st)
    df = _noisy_book(500, seed=8)
    df["twin"] = df[a]
    X = df[["loan_id", *st["characteristics"]]]
    exp = tw.score(X)
    got = tw.spark_score(spark.createDataFrame(X), keep=["loan_id"]).toPandas()
    got = got.set_index("loan_id").loc[X["loan_id"]].reset_index(drop=True)
    np.testing.assert_allclose(got["pd"], exp["pd"], rtol=0, atol=1e-9)
    cols = ["grade", *[f"reason_{i+1}" for i in range(st["reasons"]["k"])]]
    assert (got[cols].to_numpy() == exp[cols].to_numpy()).all()
    both = exp[cols[1:]].apply(lambda r: "twin of " + a in set(r) and cm.state["reasons"]["texts"][a] in set(r), axis=1)
    assert both.sum() > 10                                                        # ties really happened


@pytest.mark.spark
def test_input_checks_agree_on_pandas_arrow_and_spark(spark):
    "The filter that picks rows to score is true exactly where the reasons are empty, and pandas, Arrow and Spark give the same reasons"
    import pandas as pd, pyarrow as pa
    from mlcore.data.contracts import contract_from_dict, ok_rows_arrow
    from mlcore.inference.batch import input_checks_spark, input_reasons
    ct = contract_from_dict({"columns": {"amount": {"type": "float", "nullable": False, "min": 1, "max": 100, "finite": True},
                                         "n": {"type": "int", "nullable": False, "min": 0}, "note": {"type": "str", "nullable": False},
                                         "purpose": {"type": "str", "nullable": False, "allowed": ["car", "tv"]}}})
    d = pd.DataFrame({"amount": [5.0, 500.0, None, 7.0, float("nan"), float("inf"), 1.0, 100.0, 2.0],
                      "n": [1, 2, 3, None, 5, 6, -1, 0, 2.5], "purpose": ["car", "yacht", "tv", None, "tv", "car", "car", "tv", "tv"],
                      "note": ["x", None, "y", "z", "w", "v", "u", "t", "s"]})
    sdf = spark.createDataFrame(d)
    ok, why = input_checks_spark(sdf, ct)
    got = sdf.select(why.alias("why"), ok.alias("ok")).toPandas()
    want = input_reasons(d, ct)
    assert got.why.tolist() == want.tolist() == ["", "amount.range;note.not_null;purpose.allowed", "amount.not_null", "n.not_null;purpose.not_null",
                                                 "amount.not_null", "amount.finite", "n.range", "", "n.type"]
    assert got.ok.tolist() == (want == "").tolist() == ok_rows_arrow(pa.Table.from_pandas(d, preserve_index=False), ct).tolist()


@pytest.mark.slow
def test_tampered_or_unsealed_model_is_refused(champion):
    "Integrity runs last in this module: it tampers with the champion's files"
    import mlflow
    from mlflow.tracking import MlflowClient
    from mlcore.registry.integrity import ModelIntegrityError, load_verified_model
    from mlcore.inference.serving import app_from_registry
    champion, _ = champion
    c = MlflowClient()
    mlflow.pyfunc.load_model(f"models:/credit_pd/{champion.version}")  # MLflow's own loader writes bookkeeping into the store
    model, mv = load_verified_model("credit_pd@champion")                 # ... which the seal must tolerate
    assert str(mv.version) == str(champion.version)
    # a version registered without a seal is refused
    c.create_model_version("credit_pd", c.get_model_version_download_uri("credit_pd", champion.version), champion.run_id)
    with pytest.raises(ModelIntegrityError, match="never sealed"): load_verified_model("credit_pd/2")
    # change one byte of the stored model files: refused by the loader and by the service
    store = Path(c.get_model_version_download_uri("credit_pd", champion.version).replace("file://", ""))
    pkl = next(p for p in store.rglob("*") if p.is_file() and p.suffix in (".pkl", ".skops", ".json") and "model" in p.name)
    pkl.write_bytes(pkl.read_bytes() + b"\0")
    with pytest.raises(ModelIntegrityError, match="does not match"): load_verified_model("credit_pd@champion")
    with pytest.raises(ModelIntegrityError): app_from_registry("credit_pd@champion")
