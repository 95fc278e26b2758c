"""The fixed cost of a job: a no-op job notebook (import mlflow, log one metric) through `mlcore run`, against a plain
Python script making the same MLflow calls; median of N runs each (default 5), on a throwaway SQLite store, 2 cores.

The job's time is broken down with the steps the runner records in run.json (`timings`) and papermill's timestamps in the
executed notebook:
- python start and imports (the `mlcore` process until the runner starts: the CLI, the runner, mlflow);
- parameters (reading and checking them against the notebook's parameters cell);
- store checks, stale-run repair, opening the run (schema check of the tracking store, the run, its tags and params);
- kernel start (papermill's start to the first cell), cells (the notebook's own cells: imports in the kernel, the run,
  the metric), and papermill's own work around them (reading and saving the notebook, kernel shutdown);
- closing (logging the executed notebook, run.json and params.yaml, ending the run) and process exit: the rest.
It prints PASS when the median overhead is 3.0 s or less, else FAIL.
Usage: python bench/bench_runner.py [runs]
"""
import json, os, statistics, subprocess, sys, tempfile, time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TARGET = 3.0
NOOP = {"cells": [
    {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": ['use_case: str = "bench"  # MLflow experiment'],
     "outputs": [], "execution_count": None},
    {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
     "source": ["import mlflow\n", "from mlcore.core.tracking import start_job_run, end_job_run\n",
                'run = start_job_run(use_case, "noop")\n', 'mlflow.log_metric("x", 1.0)\n', "end_job_run()"]}],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    "nbformat": 4, "nbformat_minor": 5}
PLAIN = ("import mlflow\n"
         "mlflow.set_experiment('bench-plain')\n"
         "with mlflow.start_run():\n"
         "    mlflow.log_metric('x', 1.0)\n")


def timed(cmd, env):
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if r.returncode: sys.exit(f"{cmd} failed:\n{r.stderr[-3000:]}")
    return time.perf_counter() - t


def notebook_phases(runs_dir: Path) -> tuple:
    "(kernel start, cells) in seconds from the newest executed noop notebook's papermill metadata"
    nb = json.loads(max(runs_dir.glob("noop/*/noop.ipynb"), key=lambda p: p.stat().st_mtime).read_text())
    ts = lambda s: datetime.fromisoformat(s).timestamp()
    start = ts(nb["metadata"]["papermill"]["start_time"])
    cells = [c["metadata"]["papermill"] for c in nb["cells"] if c["cell_type"] == "code"]
    first = ts(cells[0]["start_time"])
    return first - start, sum(ts(c["end_time"]) - ts(c["start_time"]) for c in cells)


def recorded_steps(runs_dir: Path) -> dict:
    "The runner's recorded steps of the newest noop run, in seconds"
    rj = json.loads(max(runs_dir.glob("noop/*/run.json"), key=lambda p: p.stat().st_mtime).read_text())
    return rj["timings"]


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    tmp = Path(tempfile.mkdtemp(prefix="mlcore-bench-runner-"))
    (tmp / "jobs").mkdir()
    (tmp / "jobs" / "noop.ipynb").write_text(json.dumps(NOOP))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db", "MLCORE_ARTIFACT_ROOT": f"{tmp}/artifacts",
           "MLCORE_RUNS_DIR": f"{tmp}/runs", "MLCORE_JOBS_DIR": str(tmp / "jobs"), "MLCORE_AUDIT_LOG": f"{tmp}/audit.jsonl"}
    timed([str(BIN / "mlcore"), "run", "noop"], env)                      # creates the store's schema; not counted
    timed([sys.executable, "-c", PLAIN], env)
    job, plain, steps = [], [], []
    for _ in range(n):
        job.append(timed([str(BIN / "mlcore"), "run", "noop"], env))
        k, c = notebook_phases(tmp / "runs")
        st = recorded_steps(tmp / "runs")
        paper = st.pop("kernel and notebook (papermill)")
        st |= {"kernel start": k, "cells (imports in the kernel, the run)": c, "papermill around them": paper - k - c}
        st["closing the run and process exit"] = job[-1] - sum(st.values())
        steps.append(st)
        plain.append(timed([sys.executable, "-c", PLAIN], env))
    med = lambda v: statistics.median(v)
    overhead = med(job) - med(plain)
    print(f"job overhead: no-op job through `mlcore run` vs a plain script with the same MLflow calls; median of {n}; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"  mlcore run noop            {med(job):6.2f} s   (runs: {', '.join(f'{x:.2f}' for x in job)})")
    print(f"  plain script               {med(plain):6.2f} s   (runs: {', '.join(f'{x:.2f}' for x in plain)})")
    print(f"  overhead                   {overhead:6.2f} s   target <= {TARGET:.1f} s: {'PASS' if overhead <= TARGET else 'FAIL'}")
    print("breakdown of the job's time, median per step (the plain script pays its own python start, mlflow import and run):")
    for k in steps[0]: print(f"  {k:<50} {med([st[k] for st in steps]):6.2f} s")


if __name__ == "__main__":
    main()
