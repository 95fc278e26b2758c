"""Synthetic loan book generator throughput: pandas (in memory, then Parquet) and Spark local[2] (Parquet by executors).

    python bench/bench_generator.py --rows 10000000 [--engines pandas,spark]
"""
import argparse, shutil, sys, tempfile
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from _measure import measure


def pandas_path(rows, months, out):
    from mlcore.data.synthetic import generate_loan_book
    import time
    t = time.perf_counter()
    book = generate_loan_book(months=months, rows_per_month=rows // months, seed=0)
    book.to_parquet(out, partition_cols=["snapshot_month"])
    return len(book), time.perf_counter() - t


def spark_path(rows, months, out):
    from mlcore.core.spark import spark_session
    from mlcore.data.synthetic import generate_loan_book_spark
    import time
    spark = spark_session(master="local[2]", conf={"spark.driver.memory": "2g"})
    t = time.perf_counter()  # JVM start-up is not counted
    return generate_loan_book_spark(spark, out, months=months, rows_per_month=rows // months, seed=0)["rows"], time.perf_counter() - t


if __name__ == "__main__":
    a = argparse.ArgumentParser(description=__doc__)
    a.add_argument("--rows", type=int, default=10_000_000)
    a.add_argument("--months", type=int, default=20)
    a.add_argument("--engines", default="pandas,spark")
    a = a.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_generator_"))
    rows_out = []
    try:
        for e in a.engines.split(","):
            fn = {"pandas": pandas_path, "spark": spark_path}[e]
            (n, sec), _, peak = measure(fn, a.rows, a.months, str(tmp / e))
            rows_out.append((e, n, sec, n / sec, peak / 2**30))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nGenerator (seconds exclude Spark start-up): {a.rows:,} rows, {a.months} months, 23 columns, written as Parquet partitioned by snapshot_month")
    print(f"{'engine':<16}{'rows':>14}{'seconds':>10}{'rows/s':>14}{'peak GiB':>10}")
    for e, n, sec, rps, gib in rows_out:
        print(f"{e + (' local[2]' if e == 'spark' else ''):<16}{n:>14,}{sec:>10.1f}{rps:>14,.0f}{gib:>10.2f}")
