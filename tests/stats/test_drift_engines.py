"""pandas and Spark give identical bin counts and statistics for the same frozen reference; both agree with a
hand computation and with Evidently's PSI given the same bins."""
import math
import numpy as np
import pandas as pd
import pytest
from mlcore.data.datasets import load_german_credit
from mlcore.stats.drift import bin_labels, drift_table, fit_reference, psi, spark_summarise, stability, summarise


@pytest.fixture(scope="module")
def frames():
    "German credit as reference; a shifted, messy current window (NaN, None, unseen category, out of range)"
    gc = load_german_credit()
    ref_df = gc.iloc[:600].assign(rate=lambda d: d.credit_amount / d.duration_in_month)
    cur = gc.iloc[600:].assign(rate=lambda d: d.credit_amount / d.duration_in_month).reset_index(drop=True)
    cur["credit_amount"] = cur.credit_amount.astype(float)
    cur.loc[::7, "credit_amount"] = np.nan                      # missing numeric values
    cur.loc[::11, "credit_amount"] *= 100                       # out of range (unit change)
    cur.loc[::5, "purpose"] = None                              # missing categorical values
    cur.loc[::13, "purpose"] = "spaceship"                      # unseen category
    cur.loc[3, "rate"] = np.inf
    cols = ["duration_in_month", "credit_amount", "age_in_years", "rate", "purpose", "housing", "job"]
    return fit_reference(ref_df, cols), cur[cols]


def test_hand_computation():
    # two bins, shares 0.6/0.4 against 0.4/0.6
    assert math.isclose(psi([60, 40], [40, 60]), (0.4 - 0.6) * math.log(0.4 / 0.6) + (0.6 - 0.4) * math.log(0.6 / 0.4))
    ref = fit_reference(pd.DataFrame({"x": [1.0, 2, 3, 4, 5, 6, 7, 8]}), ["x"], n_bins=2)
    assert ref["x"]["edges"] == [4.5] and ref["x"]["counts"] == [4, 4, 0]
    t = stability(ref, pd.DataFrame({"x": [1.0, 2, 3, 9, 9, 9, 9, 9, 9, 9]}))
    hand = (0.3 - 0.5) * math.log(0.3 / 0.5) + (0.7 - 0.5) * math.log(0.7 / 0.5) + 0  # empty missing bin in both
    assert math.isclose(t.psi[0], hand, rel_tol=1e-9)


def test_evidently_psi_on_the_same_bins(frames):
    from evidently.legacy.calculations.stattests.psi import _psi
    from evidently.legacy.core import ColumnType
    ref, _ = frames
    gc = load_german_credit()
    cur = gc.iloc[600:].reset_index(drop=True)
    cur.loc[cur.index % 3 == 0, "duration_in_month"] += 12   # some drift so the numbers are not trivially 0
    for c in ["duration_in_month", "age_in_years", "purpose", "housing"]:
        spec = ref[c]
        labels = bin_labels(spec)
        counts_cur = summarise(cur, {c: spec})[c]["counts"]
        keep = [i for i, (a, b) in enumerate(zip(spec["counts"], counts_cur)) if a and b]   # Evidently floors empty bins differently
        to_labels = lambda counts: pd.Series([labels[i] for i in keep for _ in range(counts[i])])
        ev, _ = _psi(to_labels(spec["counts"]), to_labels(counts_cur), ColumnType.Categorical, 0.1)
        ours = psi([spec["counts"][i] for i in keep], [counts_cur[i] for i in keep])
        assert math.isclose(ours, ev, rel_tol=1e-9), (c, ours, ev)


@pytest.mark.spark
def test_spark_and_pandas_identical(frames, spark):
    ref, cur = frames
    sdf = spark.createDataFrame(cur.astype({"credit_amount": "float64", "rate": "float64"}).replace({np.nan: None})
                                .assign(credit_amount=cur.credit_amount))   # keep NaN in a double column: Spark NaN
    by_pandas, by_spark = summarise(cur, ref), spark_summarise(sdf, ref)
    assert by_spark == by_pandas
    assert by_pandas["purpose"]["counts"][-2] > 0 and by_pandas["purpose"]["counts"][-1] > 0      # other, missing
    assert by_pandas["credit_amount"]["counts"][-1] > 0 and by_pandas["credit_amount"]["above"] > 0
    pd.testing.assert_frame_equal(stability(ref, sdf), drift_table(ref, by_pandas))
    pd.testing.assert_frame_equal(stability(ref, sdf), stability(ref, cur))


@pytest.mark.spark
def test_spark_one_aggregation_no_python_udf(frames, spark):
    ref, cur = frames
    sdf = spark.createDataFrame(cur.head(50).replace({np.nan: None}))
    from mlcore.stats.drift import _spark_column_aggs
    aggs = [a for c, s in ref.items() for a in _spark_column_aggs(c, s)]
    plan = sdf.agg(*aggs)._jdf.queryExecution().executedPlan().toString()
    assert "PythonUDF" not in plan and "BatchEvalPython" not in plan and "ArrowEvalPython" not in plan
    assert plan.count("HashAggregate") <= 2    # partial + final: one pass over the data


@pytest.mark.spark
def test_monitor_window_same_on_both_engines(spark, tmp_path):
    from monitor_book import baseline_with_reference, score_frame, standin_book
    from mlcore.monitor.window import load_window, monitor_window
    b = baseline_with_reference()
    book = score_frame(standin_book(2, 600, seed=7, missing_spike=(1, "savings_account_and_bonds", 0.3)), b["model"], b["cols"])
    path = tmp_path / "scored.parquet"
    book.to_parquet(path)
    pdf, w1 = load_window(str(path), "", "snapshot_month", engine="pandas")
    sdf, w2 = load_window(str(path), "", "snapshot_month", engine="spark", spark=spark)
    assert w1 == w2 == "2024-02"
    a = monitor_window(pdf, b["reference"], w1, target="default", validation_gini=b["test_gini"])
    s = monitor_window(sdf, b["reference"], w2, target="default", validation_gini=b["test_gini"])
    pd.testing.assert_frame_equal(pd.DataFrame(a["stability"]), pd.DataFrame(s["stability"]))
    assert a["distributions"] == s["distributions"] and a["decision"] == s["decision"]
    assert math.isclose(a["backtest"]["gini"], s["backtest"]["gini"])
