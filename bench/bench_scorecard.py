"""Scorecard benchmark: training on 1M rows x 20 characteristics of the synthetic loan book (ours vs optbinning
BinningProcess + logistic regression by hand, same run), then scoring with reason codes on pandas and on Spark local[2].

The synthetic loan book (mlcore.data.synthetic.generate_loan_book, catalog dataset loan_book) has exactly 20 characteristics,
the German credit attributes (7 numeric, 13 categorical). Training bins and fits all 20 to measure the 1M x 20 workload;
3 of them are protected attributes that a real model excludes, so the scoring section uses the other 17.

Run: make bench-model   (or: .venv/bin/python bench/bench_scorecard.py --rows 1000000)
Every training method runs in a fresh child process; its peak memory is the peak resident set size (VmHWM, reset
after the data is loaded) during the fit, and the data's own footprint is printed beside it.
"""
import argparse, multiprocessing as mp, os, sys, tempfile, time, warnings
from pathlib import Path
import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")
CHARS = None  # set in main: the 20 German credit attributes


def make_rows(n: int, seed: int = 0) -> pd.DataFrame:
    "About n rows of the synthetic loan book: 24 monthly snapshots of n // 24 loans each"
    from mlcore.data.synthetic import generate_loan_book
    return generate_loan_book(months=24, rows_per_month=max(n // 24, 1), seed=seed)


def _rss(field: str) -> float:
    "VmRSS / VmHWM of this process in MiB"
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"): return int(line.split()[1]) / 1024
    return float("nan")


def _train(method: str, path: str, q):
    from mlcore.data.datasets import GERMAN_CREDIT_NUMERIC, GERMAN_CREDIT_CATEGORICAL
    chars = GERMAN_CREDIT_NUMERIC + GERMAN_CREDIT_CATEGORICAL
    df = pd.read_parquet(path)
    X, y = df[chars], df["default"].to_numpy()
    base = _rss("VmRSS")
    try: Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS counter (Linux)
    except OSError: pass
    t0, c0 = time.perf_counter(), time.process_time()
    if method == "mlcore ScorecardModel":
        from mlcore.models.scorecard import ScorecardModel
        m = ScorecardModel(min_bin_size=0.05, min_iv=0.0, max_corr=1.0).fit(X, y)
        n_bins = sum(len(s["bins"]) - 2 for s in m.binner_.binning_)
        iv = m.binner_.iv_.to_dict()
        auc_p = m.predict_proba(X)[:, 1]
    else:
        from optbinning import BinningProcess
        from sklearn.linear_model import LogisticRegression
        bp = BinningProcess(chars, categorical_variables=GERMAN_CREDIT_CATEGORICAL, min_bin_size=0.05,
                            binning_fit_params={c: {"monotonic_trend": "auto_asc_desc"} for c in GERMAN_CREDIT_NUMERIC})
        W = bp.fit_transform(X, y, metric="woe")
        lr = LogisticRegression(C=1.0, max_iter=1000).fit(W, y)
        n_bins = sum(len(bp.get_binned_variable(c).binning_table.build()) - 3 for c in chars)
        iv = {c: float(bp.get_binned_variable(c).binning_table.build().loc["Totals", "IV"]) for c in chars}
        auc_p = lr.predict_proba(W)[:, 1]
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    from mlcore.stats.metrics import auc
    q.put({"method": method, "wall_s": wall, "cpu_s": cpu, "peak_rss_mib": _rss("VmHWM"), "data_rss_mib": base, "bins": n_bins,
           "train_auc": auc(y, auc_p), "iv": iv})


def train_side_by_side(path: str) -> pd.DataFrame:
    rows = []
    ctx = mp.get_context("spawn")
    for method in ["mlcore ScorecardModel", "optbinning BinningProcess + LogisticRegression"]:
        q = ctx.Queue()
        p = ctx.Process(target=_train, args=(method, path, q)); p.start()
        rows.append(q.get()); p.join()
    return pd.DataFrame(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--challenger-rows", type=int, default=None, help="rows scored by the challenger (default: all)")
    a = ap.parse_args()
    from mlcore.data.datasets import GERMAN_CREDIT_NUMERIC, GERMAN_CREDIT_CATEGORICAL, PROTECTED_ATTRIBUTES
    chars = GERMAN_CREDIT_NUMERIC + GERMAN_CREDIT_CATEGORICAL
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (shared: wall times include waiting; "
          f"cpu_s is this process's own CPU time); python {sys.version.split()[0]}")
    t0 = time.perf_counter()
    df = make_rows(a.rows)
    tmp = tempfile.mkdtemp(prefix="bench_scorecard_")
    path = f"{tmp}/book.parquet"
    df.to_parquet(path, index=False)
    print(f"data: synthetic loan book, {len(df):,} rows x {len(chars)} characteristics ({len(GERMAN_CREDIT_NUMERIC)} numeric, "
          f"{len(GERMAN_CREDIT_CATEGORICAL)} categorical; {df['default'].mean():.3f} default rate), made in {time.perf_counter()-t0:.1f} s")

    print("\n== training: binning + logistic regression on all 20 characteristics (each in a fresh process) ==")
    t = train_side_by_side(path)
    print(t.drop(columns="iv").to_string(index=False, float_format=lambda v: f"{v:,.3f}"))
    ours, ob = t["iv"].iloc[0], t["iv"].iloc[1]
    rel = pd.Series({c: abs(ours[c] - ob[c]) / ob[c] if ob[c] > 0 else abs(ours[c] - ob[c]) for c in chars})
    print(f"IV ours vs optbinning on this book: max relative difference {rel.max():.2%} ({rel.idxmax()}), "
          f"{(rel <= 0.01).sum()} of {len(chars)} within 1%; load average {os.getloadavg()[0]:.1f}")

    print("\n== scoring with reason codes (k=4), models without the 3 protected attributes (17 characteristics) ==")
    from mlcore.models.scorecard import ScorecardModel
    from mlcore.models.challenger import ChallengerModel
    from mlcore.models.credit import CreditModel
    texts = {c: f"Reason: {c}" for c in chars if c not in PROTECTED_ATTRIBUTES}
    grades, cutoffs = list("ABCDEFG"), [0.03, 0.06, 0.10, 0.18, 0.30, 0.50]
    X, y = df[chars], df["default"]
    sc = ScorecardModel(protected=PROTECTED_ATTRIBUTES).fit(X, y)
    sample = df.sample(min(50_000, len(df)), random_state=1)
    ch = ChallengerModel(protected=PROTECTED_ATTRIBUTES, n_iter=2, cv=2).fit(sample[chars], sample["default"])
    models = {"scorecard": CreditModel.build(sc, grades, cutoffs, texts, 4, None, PROTECTED_ATTRIBUTES),
              "challenger": CreditModel.build(ch, grades, cutoffs, texts, 4, None, PROTECTED_ATTRIBUTES,
                                              {"pdo": 20, "base_score": 600, "base_odds": 50})}
    res = []
    for name, cm in models.items():
        n = len(df) if name == "scorecard" else min(a.challenger_rows or len(df), len(df))
        part = df.head(n)
        cm.score(part.head(10))  # warm-up: imports (shap, numba) and the cached explainer are not per-row costs
        t0, c0 = time.perf_counter(), time.process_time()
        out = cm.score(part)
        w, c = time.perf_counter() - t0, time.process_time() - c0
        assert len(out) == n
        res.append({"model": name, "engine": "pandas", "rows": n, "wall_s": w, "driver_cpu_s": c, "rows_per_s": n / w,
                    "load_avg": os.getloadavg()[0]})
    from mlcore.core.spark import spark_session, stop_spark
    spark = spark_session(master="local[2]", conf={"spark.driver.memory": "4g", "spark.sql.shuffle.partitions": "2"})
    sdf = spark.read.parquet(path).repartition(2).cache()
    sdf.count()
    for name, cm in models.items():
        n = len(df) if name == "scorecard" else min(a.challenger_rows or len(df), len(df))
        part = sdf if n == len(df) else sdf.limit(n).repartition(2).cache()
        part.count()
        t0 = time.perf_counter()
        cm.spark_score(part, keep=["loan_id"]).write.format("noop").mode("overwrite").save()
        w = time.perf_counter() - t0
        res.append({"model": name, "engine": "spark local[2]", "rows": n, "wall_s": w, "driver_cpu_s": float("nan"), "rows_per_s": n / w,
                    "load_avg": os.getloadavg()[0]})
    stop_spark()
    print(pd.DataFrame(res).to_string(index=False, float_format=lambda v: f"{v:,.1f}"))
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print("\nscorecard on Spark: SQL compiled from the fitted state; challenger on Spark: mapInPandas (Arrow), "
          "reasons by SHAP TreeExplainer (one thread per worker).")


if __name__ == "__main__":
    main()
