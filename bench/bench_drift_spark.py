"""Spark path of the drift counter at scale: PSI/CSI of 20 characteristics on N rows (default 100M) generated
inside Spark (nothing is collected but the counts), local[2], driver memory bounded to 1 GB.
Prints rows per second and the peak resident memory of the driver JVM and of this Python process.

    make bench-drift-100m
    .venv/bin/python bench/bench_drift_spark.py --rows 10000000
"""
import argparse, resource, threading, time
import numpy as np
import pandas as pd
import psutil
from mlcore.stats.drift import drift_table, fit_reference, spark_summarise
from mlcore.core.spark import spark_session, stop_spark

N_COLS = 20


def jvm_peak(stop: threading.Event, out: dict):
    me = psutil.Process()
    while not stop.is_set():
        for p in me.children(recursive=True):
            try:
                if "java" in p.name(): out["jvm"] = max(out.get("jvm", 0), p.memory_info().rss)
            except psutil.Error: pass
        time.sleep(0.5)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000_000)
    ap.add_argument("--driver-memory", default="1g")
    ap.add_argument("--master", default="local[2]")
    a = ap.parse_args()
    stop, peak = threading.Event(), {}
    threading.Thread(target=jvm_peak, args=(stop, peak), daemon=True).start()
    rng = np.random.default_rng(1)
    ref_df = pd.DataFrame({f"x{i:02d}": rng.normal(i, 1 + i / 10, 100_000) for i in range(N_COLS)})
    reference = fit_reference(ref_df, list(ref_df.columns), n_bins=10)
    spark = spark_session(master=a.master, conf={"spark.driver.memory": a.driver_memory, "spark.sql.shuffle.partitions": "2",
                                                 "spark.ui.enabled": "false"})
    from pyspark.sql import functions as F
    parts = max(2, a.rows // 5_000_000)
    sdf = spark.range(0, a.rows, 1, parts).select(
        *[(F.randn(100 + i) * (1 + i / 10) + i + (0.3 if i % 5 == 0 else 0.0)).alias(f"x{i:02d}") for i in range(N_COLS)])
    t = time.perf_counter()
    sums = spark_summarise(sdf, reference)
    secs = time.perf_counter() - t
    table = drift_table(reference, sums)
    stop.set(); time.sleep(0.6)
    assert table.n_current.eq(a.rows).all()
    print(f"Spark drift counter: {a.rows:,} rows x {N_COLS} characteristics, {a.master}, driver memory {a.driver_memory}")
    print(f"  time {secs:.1f} s  ->  {a.rows / secs:,.0f} rows/s  ({a.rows * N_COLS / secs:,.0f} values/s)")
    print(f"  peak RSS: driver JVM {peak.get('jvm', 0) / 2**20:,.0f} MB, Python {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")
    print(f"  max CSI {table.psi.max():.3f} (x00/x05/x10/x15 shifted by 0.3)")
    stop_spark()


if __name__ == "__main__":
    main()
