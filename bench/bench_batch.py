"""Batch scoring, Parquet to Parquet, side by side in one run (2 cores).

1. the score job's work on Spark local[2] (`mlcore.inference.batch.score_dataset`: for a Parquet partition, Spark tasks over its
   row groups, each reading with pyarrow, checking rows against the contract and scoring with reason codes through
   `CreditModel.score_arrow`; then the duplicated-key check, reconciliation, atomic publish of scores and quarantine);
2. the same registered model through `mlflow.pyfunc.spark_udf` (the usual way), read -> predict -> write;
3. the floor: one pandas process, read -> `CreditModel.score` -> write;
4. for reference, not a target: one process running the score job's Arrow code (pyarrow read with text
   dictionary-encoded -> `CreditModel.score_arrow` -> write), to show what the 2 Spark cores add over it.
All four write snappy-compressed Parquet (the default of Spark and of pandas/pyarrow). The score job writes more than
the other two (the carried model inputs, the outcome and provenance columns that monitoring reads); the others write
the key and the model's outputs.

Each method runs in its own fresh process (its own JVM for the Spark methods; session start-up is not timed) and is
timed twice: `cold` is its first run in that process (the JVM's JIT compiles Spark's Parquet and Arrow code meanwhile,
what a scheduled job pays every night), `warm` the second. The machine may be shared: the load average is printed
before and after, and the CPU seconds of the process tree (Python, the JVM, Python workers) beside wall time.
Usage: python bench/bench_batch.py [rows]   (default 2,000,000)
"""
import json, os, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHODS = {"job": "score job, Spark local[2] (checks, reasons, reconcile, atomic publish)",
           "udf": "mlflow.pyfunc.spark_udf, Spark local[2]",
           "floor": "pandas floor, one process (read, score, write)",
           "arrow": "for reference: one process, pyarrow read, CreditModel.score_arrow, write"}


def env_for(tmp: Path) -> dict:
    return {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db", "MLCORE_ARTIFACT_ROOT": f"{tmp}/artifacts",
            "MLCORE_RUNS_DIR": f"{tmp}/runs", "MLCORE_AUDIT_LOG": f"{tmp}/audit.jsonl"}


def cpu_seconds():
    "user + system CPU seconds of this process and all its children (the JVM, Python workers)"
    import psutil
    me = psutil.Process()
    return sum(sum(p.cpu_times()[:2]) for p in [me, *me.children(recursive=True)])


def prepare(tmp: Path, rows: int):
    "Train and register the champion, write the loan book partition and a catalog"
    from mlflow.tracking import MlflowClient
    from mlcore.ops.runner import run_job
    res = run_job("train", ROOT / "params" / "credit_pd" / "train.yaml")
    assert res.status == "FINISHED", res.error
    (v,) = MlflowClient().search_model_versions(f"run_id = '{res.run_id}'")
    MlflowClient().set_registered_model_alias(v.name, "champion", v.version)
    from mlcore.data.synthetic import generate_loan_book
    book = generate_loan_book(months=1, rows_per_month=rows, start="2024-12", seed=11)
    book.to_parquet(tmp / "loan_book", partition_cols=["snapshot_month"], index=False)
    (tmp / "catalog.yaml").write_text(
        f"datasets:\n  loan_book: {{format: parquet, path: {tmp/'loan_book'}, partition_by: snapshot_month, "
        f"contract: {ROOT/'params'/'contracts'/'loan_book.yaml'}}}\n"   # as in params/catalog.yaml
        f"  scores: {{format: parquet, path: {tmp/'scores'}, partition_by: snapshot_month}}\n")


def child(method: str, tmp: Path, rows: int):
    "Run one method twice in this fresh process; print {'cold': [s, cpu], 'warm': [s, cpu], ...} as JSON"
    import mlflow
    import pandas as pd
    from mlcore.registry.integrity import load_verified_model
    pyf, mv = load_verified_model("credit_pd@champion")
    cm = pyf.unwrap_python_model().model
    k = cm.state["reasons"]["k"]
    inputs = [c.name for c in pyf.metadata.get_input_schema().inputs]
    part = tmp / "loan_book" / "snapshot_month=2024-12"
    extra = {}
    if method != "floor":
        from mlcore.core.spark import spark_session
        spark = spark_session(master="local[2]", conf={"spark.driver.memory": "2g", "spark.sql.shuffle.partitions": "4"})
        spark.range(10).count()
    if method == "job":
        from mlcore.inference.batch import score_dataset
        def run(i):
            s = score_dataset("credit_pd@champion", "loan_book", "scores", "2024-12", "loan_id", "spark", f"bench-{i}",
                              spark=spark, catalog_file=str(tmp / "catalog.yaml"))
            assert s["rows_in"] == rows and s["rows_scored"] + s["rows_quarantined"] == rows, s
            extra.update(rows_scored=s["rows_scored"], rows_quarantined=s["rows_quarantined"])
    elif method == "udf":
        schema = "pd double, score double, grade string, " + ", ".join(f"reason_{i+1} string" for i in range(k))
        def run(i):
            udf = mlflow.pyfunc.spark_udf(spark, f"models:/{mv.name}/{mv.version}", result_type=schema, env_manager="local")
            sdf = spark.read.parquet(str(part))
            sdf.select("loan_id", udf(*inputs).alias("r")).select("loan_id", "r.*").write.mode("overwrite").parquet(str(tmp / "udf_out"))
    elif method == "arrow":
        import pyarrow as pa, pyarrow.parquet as pq
        strings = [f.name for f in pq.read_schema(next(part.glob("*.parquet"))) if pa.types.is_string(f.type)]
        def run(i):
            t = pq.read_table(part, read_dictionary=strings)
            pq.write_table(cm.score_arrow(t, keep=["loan_id"], dictionary=True), tmp / "arrow_out.parquet", store_schema=False)
    else:
        def run(i):
            df = pd.read_parquet(part)
            pd.concat([df[["loan_id"]], cm.score(df[inputs])], axis=1).to_parquet(tmp / "pandas_out.parquet", index=False)
    out = {}
    for i, name in enumerate(["cold", "warm"]):
        t0, c0 = time.perf_counter(), cpu_seconds()
        run(i)
        out[name] = [time.perf_counter() - t0, cpu_seconds() - c0]
    print("RESULT " + json.dumps({**out, **extra}), flush=True)


def main():
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000
    tmp = Path(tempfile.mkdtemp(prefix="mlcore-bench-batch-"))
    env = {**os.environ, **env_for(tmp)}
    os.environ.update(env_for(tmp))
    prepare(tmp, rows)
    load0 = os.getloadavg()
    res = {}
    for m in METHODS:
        r = subprocess.run([sys.executable, __file__, "--child", m, str(tmp), str(rows)], env=env, capture_output=True, text=True)
        line = [l for l in r.stdout.splitlines() if l.startswith("RESULT ")]
        if r.returncode or not line: sys.exit(f"{m} failed:\n{r.stderr[-4000:]}")
        res[m] = json.loads(line[-1][len("RESULT "):])
    load1 = os.getloadavg()
    print(f"batch scoring with reason codes, {rows:,} rows x 20 characteristics, Parquet -> Parquet, 2 cores; "
          f"score job: {res['job']['rows_scored']:,} scored + {res['job']['rows_quarantined']:,} quarantined")
    print(f"load average (1, 5, 15 min) before: {' '.join(f'{x:.2f}' for x in load0)}; after: {' '.join(f'{x:.2f}' for x in load1)}")
    print(f"{'method':<72} {'run':>4} {'seconds':>8} {'rows/s':>10} {'vs spark_udf':>13} {'vs floor':>9} {'CPU s':>7}")
    for run in ("cold", "warm"):
        for m, name in METHODS.items():
            t, c = res[m][run]
            print(f"{name:<72} {run:>4} {t:>8.1f} {rows/t:>10,.0f} {res['udf'][run][0]/t:>12.2f}x {res['floor'][run][0]/t:>8.2f}x {c:>7.1f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
