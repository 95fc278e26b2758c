"""Batch scoring, Parquet to Parquet, side by side in one run (2 cores).

1. the score job's work on Spark local[2] (`mlcore.batch.score_dataset`: contract checks, scorecard compiled to
   Spark SQL with reason codes, reconciliation, atomic publish);
2. the same registered model through `mlflow.pyfunc.spark_udf` (the usual way), read -> predict -> write;
3. the floor: one pandas process, read -> `CreditModel.score` -> write.
All three write snappy-compressed Parquet (the default of Spark and of pandas/pyarrow); Spark runs with
spark.sql.shuffle.partitions=4 (no contender shuffles). The machine may be shared: the load average is printed
before and after, and the CPU seconds of the whole process tree (Python, the JVM, Python workers) beside wall time.
Usage: python bench/bench_batch.py [rows]   (default 2,000,000)
"""
import os, sys, tempfile, time
from pathlib import Path
import pandas as pd
import psutil

ROOT = Path(__file__).resolve().parents[1]
ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000


def cpu_seconds():
    "user + system CPU seconds of this process and all its children (the JVM, Python workers)"
    me = psutil.Process()
    return sum(sum(p.cpu_times()[:2]) for p in [me, *me.children(recursive=True)])


def main():
    tmp = Path(tempfile.mkdtemp(prefix="mlcore-bench-batch-"))
    os.environ.update({"MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db", "MLCORE_ARTIFACT_ROOT": f"{tmp}/artifacts",
                       "MLCORE_RUNS_DIR": f"{tmp}/runs", "MLCORE_AUDIT_LOG": f"{tmp}/audit.jsonl"})
    from mlflow.tracking import MlflowClient
    from mlcore.runner import run_job
    res = run_job("train", ROOT / "params" / "credit_pd" / "train.yaml")
    assert res.status == "FINISHED", res.error
    (v,) = MlflowClient().search_model_versions(f"run_id = '{res.run_id}'")
    MlflowClient().set_registered_model_alias(v.name, "champion", v.version)
    from mlcore.synthetic import generate_loan_book
    book = generate_loan_book(months=1, rows_per_month=ROWS, start="2024-12", seed=11)
    book.to_parquet(tmp / "loan_book", partition_cols=["snapshot_month"], index=False)
    del book
    cat = tmp / "catalog.yaml"
    cat.write_text(f"datasets:\n  loan_book: {{format: parquet, path: {tmp/'loan_book'}, partition_by: snapshot_month}}\n"
                   f"  scores: {{format: parquet, path: {tmp/'scores'}, partition_by: snapshot_month}}\n")
    from mlcore.spark import spark_session
    from mlcore.integrity import load_verified_model
    import mlflow
    spark = spark_session(master="local[2]", conf={"spark.driver.memory": "2g", "spark.sql.shuffle.partitions": "4"})
    spark.range(10).count()  # JVM warm
    rows, cpu = {}, {}
    load0 = os.getloadavg()
    # 1. the score job on Spark
    from mlcore.batch import score_dataset
    t0, c0 = time.perf_counter(), cpu_seconds()
    s = score_dataset("credit_pd@champion", "loan_book", "scores", "2024-12", "loan_id", "spark", "bench", spark=spark, catalog_file=str(cat))
    rows["score job, Spark local[2] (SQL, reasons, checks, reconcile, atomic publish)"] = time.perf_counter() - t0
    cpu["score job, Spark local[2] (SQL, reasons, checks, reconcile, atomic publish)"] = cpu_seconds() - c0
    assert s["rows_in"] == ROWS
    # 2. mlflow.pyfunc.spark_udf
    pyf, mv = load_verified_model("credit_pd@champion")
    k = pyf.unwrap_python_model().model.state["reasons"]["k"]
    inputs = [c.name for c in pyf.metadata.get_input_schema().inputs]
    schema = "pd double, score double, grade string, " + ", ".join(f"reason_{i+1} string" for i in range(k))
    t0, c0 = time.perf_counter(), cpu_seconds()
    udf = mlflow.pyfunc.spark_udf(spark, f"models:/{mv.name}/{mv.version}", result_type=schema, env_manager="local")
    sdf = spark.read.parquet(str(tmp / "loan_book" / "snapshot_month=2024-12"))
    out = sdf.select("loan_id", udf(*inputs).alias("r")).select("loan_id", "r.*")
    out.write.mode("overwrite").parquet(str(tmp / "udf_out"))
    rows["mlflow.pyfunc.spark_udf, Spark local[2]"] = time.perf_counter() - t0
    cpu["mlflow.pyfunc.spark_udf, Spark local[2]"] = cpu_seconds() - c0
    spark.stop()
    # 3. pandas floor
    cm = pyf.unwrap_python_model().model
    t0, c0 = time.perf_counter(), cpu_seconds()
    df = pd.read_parquet(tmp / "loan_book" / "snapshot_month=2024-12")
    scored = pd.concat([df[["loan_id"]], cm.score(df[inputs])], axis=1)
    scored.to_parquet(tmp / "pandas_out.parquet", index=False)
    rows["pandas floor, one process (read, score, write)"] = time.perf_counter() - t0
    cpu["pandas floor, one process (read, score, write)"] = cpu_seconds() - c0
    floor = rows["pandas floor, one process (read, score, write)"]
    udf_t = rows["mlflow.pyfunc.spark_udf, Spark local[2]"]
    print(f"batch scoring with reason codes (k={k}), {ROWS:,} rows x 20 characteristics, Parquet -> Parquet, 2 cores")
    print(f"load average (1, 5, 15 min) before: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}; after: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(f"{'method':<78} {'seconds':>8} {'rows/s':>10} {'vs spark_udf':>13} {'vs floor':>9} {'CPU s':>7}")
    for name, t in rows.items():
        print(f"{name:<78} {t:>8.1f} {ROWS/t:>10,.0f} {udf_t/t:>12.2f}x {floor/t:>8.2f}x {cpu[name]:>7.1f}")


if __name__ == "__main__":
    main()
