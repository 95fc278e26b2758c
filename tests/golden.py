"""The golden record of the credit PD flow: what `make run` produces (bins, points table, coefficients' results,
model choice, validation values and gate verdicts, the scored partition, the monitor's verdict and exit code) as plain
data, so that a restructure can prove the results unchanged.

    .venv/bin/python tests/golden.py            # `make golden`: run the flow in a scratch copy, write tests/golden/credit_pd.json
    tests/project/test_golden.py                        # runs the flow again and compares, floats to 1e-12

The flow runs in a throwaway project (`MLCORE_HOME`: a copy of params/, nbs/jobs/ and the bundled data) with its own
MLflow store, runs folder and audit log, so it never touches the project's own."""
import hashlib, io, json, os, shutil, subprocess, sys, tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "credit_pd.json"
MLCORE = str(Path(sys.executable).with_name("mlcore"))
COPY = ["params", "nbs/jobs", "data/german_credit.csv", "data/README.md", "settings.ini"]
TOL = 1e-12
PROVENANCE = ("run_id", "scored_at")   # differ on every run by design


def project_copy(dest: Path) -> Path:
    "A scratch project holding what the jobs read"
    for p in COPY:
        src, dst = ROOT / p, dest / p
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dst)
    return dest


def flow_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLCORE_"))}
    return env | {"MLCORE_HOME": str(home), "MLFLOW_TRACKING_URI": f"sqlite:///{home}/mlflow.db",
                  "MLCORE_ARTIFACT_ROOT": str(home / "mlartifacts"), "MLCORE_RUNS_DIR": str(home / "runs"),
                  "MLCORE_AUDIT_LOG": str(home / "audit" / "lifecycle.jsonl")}


STEPS = [  # (user, command, the exit codes that are the flow working)
    ("demo-trainer", ["run", "generate", "-f", "params/synthetic/generate.yaml"], {0}),
    ("demo-trainer", ["run", "train", "-f", "params/credit_pd/train.yaml"], {0}),
    ("demo-validator", ["run", "validate", "-f", "params/credit_pd/validate.yaml"], {0}),
    ("demo-approver", ["approve", "credit_pd", "challenger", "--by", "demo-approver", "--comment", "golden record"], {0}),
    ("demo-scheduler", ["run", "score", "-f", "params/credit_pd/score.yaml"], {0}),
    ("demo-scheduler", ["monitor", "run", "-f", "params/credit_pd/monitor.yaml"], {0, 10, 20}),
]


def run_flow(home: Path) -> int:
    "Run the make-run flow in `home`; returns the monitor's exit code"
    env = flow_env(home)
    for user, cmd, ok in STEPS:
        r = subprocess.run([MLCORE, *cmd], cwd=home, env=env | {"MLCORE_USER": user}, capture_output=True, text=True,
                           timeout=900)
        if r.returncode not in ok:
            raise RuntimeError(f"mlcore {' '.join(cmd)} exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r.returncode


def _csv(text: str) -> list:
    import pandas as pd
    d = pd.read_csv(io.StringIO(text))
    return d.astype(object).where(d.notna(), None).to_dict("records")


def _scored(folder: Path) -> dict:
    import pandas as pd
    d = pd.read_parquet(folder).sort_values("loan_id").reset_index(drop=True)
    floats = [c for c in d.columns if pd.api.types.is_float_dtype(d[c])]
    rest = d.drop(columns=[*floats, *PROVENANCE]).astype(str)
    return {"rows": len(d), "columns": list(d.columns), "digest": hashlib.sha256(rest.to_csv(index=False).encode()).hexdigest(),
            **{c: d[c].tolist() for c in floats}}


def extract(home: Path, monitor_exit: int) -> dict:
    "The golden figures from the scratch project's store and outputs"
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    import mlflow
    from mlflow.tracking import MlflowClient
    uri = f"sqlite:///{home}/mlflow.db"
    c = MlflowClient(tracking_uri=uri, registry_uri=uri)
    mlflow.set_tracking_uri(uri)
    exp = c.get_experiment_by_name("credit_pd").experiment_id

    def last(job):
        return c.search_runs([exp], f"tags.`mlcore.job` = '{job}'", order_by=["start_time DESC"], max_results=1)[0]

    def text(run, path):
        return Path(c.download_artifacts(run.info.run_id, path, tempfile.mkdtemp())).read_text()

    train, val, mon = last("train"), last("validate"), last("monitor")
    summary = json.loads(text(val, "validation/summary.json"))
    result = json.loads(text(mon, "monitoring/result.json"))
    return {
        "train": {"metrics": train.data.metrics, "model_type": train.data.tags["mlcore.model_type"],
                  "binning": json.loads(text(train, "model/binning.json")),
                  "master_scale": json.loads(text(train, "model/master_scale.json")),
                  "points_table": _csv(text(train, "model/points_table.csv")),
                  "iv_selection": _csv(text(train, "binning/iv_selection.csv")),
                  "calibration_checks": json.loads(text(train, "calibration/checks.json")),
                  "comparison": _csv(text(train, "comparison.csv"))},
        "validate": {k: summary[k] for k in ("passed", "overall", "blocking_failures", "values", "calibration")} |
                    {"findings": [{k: f[k] for k in ("rule", "light", "blocking", "value")} for f in summary["findings"]]},
        "score": _scored(home / "data" / "generated" / "scored" / "credit_pd"),
        "monitor": {"exit_code": monitor_exit, "decision": result["decision"], "backtest": result.get("backtest"),
                    "stability": [{k: s[k] for k in ("column", "psi", "level", "issue")} for s in result["stability"]]},
    }


def produce(workdir: Path) -> dict:
    "Run the flow in a scratch project under `workdir` and extract its golden figures"
    home = project_copy(workdir / "project")
    return extract(home, run_flow(home))


def differences(expected, actual, path: str = "", tol: float = TOL) -> list:
    "Where `actual` differs from `expected`: floats beyond `tol` (relative, or absolute below 1), anything else at all"
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = [f"{path}.{k}: missing" for k in expected if k not in actual]
        out += [f"{path}.{k}: unexpected" for k in actual if k not in expected]
        return out + [d for k in expected if k in actual for d in differences(expected[k], actual[k], f"{path}.{k}", tol)]
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual): return [f"{path}: {len(actual)} items, expected {len(expected)}"]
        return [d for i, (e, a) in enumerate(zip(expected, actual)) for d in differences(e, a, f"{path}[{i}]", tol)]
    if isinstance(expected, bool) != isinstance(actual, bool): return [f"{path}: {actual!r}, expected {expected!r}"]
    num = (int, float)
    if isinstance(expected, num) and isinstance(actual, num) and not isinstance(expected, bool) and not isinstance(actual, bool):
        if expected != expected and actual != actual: return []   # both NaN
        return [] if abs(expected - actual) <= tol * max(1.0, abs(expected), abs(actual)) else [f"{path}: {actual!r}, expected {expected!r}"]
    return [] if expected == actual else [f"{path}: {actual!r}, expected {expected!r}"]


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d:
        record = produce(Path(d))
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN.relative_to(ROOT)}: monitor exit code {record['monitor']['exit_code']}, "
          f"{record['score']['rows']} scored rows, validation passed={record['validate']['passed']}")
