"""Contract validation throughput and peak memory, pandas vs Spark local[2], on the synthetic loan book.

    python bench/bench_contracts.py --rows 10000000                 # both engines, side by side
    python bench/bench_contracts.py --spark-only --dataset loan_book_100m --driver-memory 2g

Each engine runs in its own process; peak memory is the resident memory of the whole process tree
(Python, and for Spark the JVM and its Python workers). Validation = read Parquet, dataset-level checks
(columns, emptiness, casts), all row rules of params/contracts/loan_book.yaml (24 rules incl. primary key
uniqueness), counts per rule.
"""
import argparse, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from _measure import measure

ROOT = Path(__file__).resolve().parents[1]


def make_input(rows, months, path):
    from mlcore.data.synthetic import generate_loan_book
    book = generate_loan_book(months=months, rows_per_month=rows // months, seed=0)
    book.loc[book.index % 1000 == 0, "credit_amount"] = -1  # 0.1 % broken rows, so the quarantine is not empty
    book.to_parquet(path, partition_cols=["snapshot_month"])
    return len(book)


def pandas_path(path, dataset):
    import time
    from mlcore.data.catalog import validate_dataset
    t = time.perf_counter()
    return validate_dataset(dataset, "pandas", path=path).counts, time.perf_counter() - t


def spark_path(path, dataset, driver_memory):
    from mlcore.data.catalog import validate_dataset
    from mlcore.core.spark import spark_session
    spark = spark_session(master="local[2]", conf={"spark.driver.memory": driver_memory, "spark.sql.shuffle.partitions": "8"})
    import time
    t = time.perf_counter()  # JVM start-up is not counted
    return validate_dataset(dataset, "spark", path=path, spark=spark).counts, time.perf_counter() - t


if __name__ == "__main__":
    a = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("--rows", type=int, default=10_000_000)
    a.add_argument("--months", type=int, default=20)
    a.add_argument("--spark-only", action="store_true")
    a.add_argument("--dataset", default="loan_book", help="catalog dataset whose contract applies")
    a.add_argument("--input", help="Parquet folder to validate (default: generated bench input, or the dataset itself)")
    a.add_argument("--driver-memory", default="2g")
    a = a.parse_args()
    if a.input: path = Path(a.input)
    elif a.dataset != "loan_book":
        from mlcore.data.catalog import dataset, dataset_path
        path = dataset_path(dataset(a.dataset))
    else:
        path = ROOT / "data" / "generated" / f"bench_loan_book_{a.rows}"
        if not path.exists():
            print(f"making the input: {a.rows:,} rows -> {path}", flush=True)
            measure(make_input, a.rows, a.months, str(path))
    out = []
    if not a.spark_only:
        (c, sec), _, peak = measure(pandas_path, str(path), a.dataset)
        out.append(("pandas", c, sec, peak))
    (c, sec), _, peak = measure(spark_path, str(path), a.dataset, a.driver_memory)
    out.append((f"spark local[2] (driver {a.driver_memory})", c, sec, peak))
    print(f"\nContract validation (seconds exclude Spark start-up) of {path.name} ({out[0][1]['rows_in']:,} rows x {len(out[0][1]['rules'])} rules, contract of '{a.dataset}')")
    print(f"{'engine':<32}{'rows in':>14}{'valid':>14}{'quarantined':>12}{'seconds':>10}{'rows/s':>14}{'peak GiB':>10}")
    for e, c, sec, peak in out:
        print(f"{e:<32}{c['rows_in']:>14,}{c['valid']:>14,}{c['quarantined']:>12,}{sec:>10.1f}{c['rows_in'] / sec:>14,.0f}{peak / 2**30:>10.2f}")
    if len(out) == 2: print("identical counts per rule on both engines:", out[0][1] == out[1][1])
