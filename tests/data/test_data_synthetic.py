"""Synthetic loan book: schema, determinism, drift, and the Spark path writing the same rows as the pandas path."""
import pandas as pd
import pytest
from mlcore.data.datasets import load_german_credit
from mlcore.data.synthetic import generate_loan_book, generate_loan_book_spark


def test_schema_matches_german_credit():
    book, gc = generate_loan_book(months=2, rows_per_month=3000, seed=5), load_german_credit()
    assert list(book.columns) == ["loan_id", "snapshot_month"] + list(gc.columns)
    assert book.dtypes.drop(["loan_id", "snapshot_month"]).to_dict() == gc.dtypes.to_dict()
    assert book.loan_id.dtype == "int64" and book.loan_id.is_unique
    for c in gc.select_dtypes("object"): assert set(book[c]) <= set(gc[c]), c
    assert set(book["default"]) == {0, 1} and 0.03 < book["default"].mean() < 0.08


def test_deterministic_for_a_seed_and_different_across_seeds():
    a, b = generate_loan_book(months=2, rows_per_month=500, seed=7), generate_loan_book(months=2, rows_per_month=500, seed=7)
    pd.testing.assert_frame_equal(a, b)
    c = generate_loan_book(months=2, rows_per_month=500, seed=8)
    assert not a.drop(columns="loan_id").equals(c.drop(columns="loan_id"))


def test_drift_knobs():
    base = generate_loan_book(months=4, rows_per_month=20_000, seed=2)
    drifted = generate_loan_book(months=4, rows_per_month=20_000, seed=2, drift={
        "concept_drift": {"start": "2023-03", "intercept_shift": 1.0},
        "quality_break": {"column": "credit_amount", "start": "2023-04", "kind": "unit", "factor": 0.001}})
    before = base.snapshot_month < "2023-03"
    pd.testing.assert_frame_equal(drifted[before], base[before])
    late = ~before
    assert drifted[late]["default"].mean() > 1.8 * base[late]["default"].mean()
    apr = drifted.snapshot_month == "2023-04"
    assert drifted[apr].credit_amount.median() < 30 < base[apr].credit_amount.median()
    with pytest.raises(ValueError, match="did you mean 'concept_drift'"): generate_loan_book(drift={"concept_drfit": {}})


@pytest.mark.spark
def test_spark_path_writes_the_same_rows(spark, tmp_path):
    drift = {"population_shift": {"column": "purpose", "start": "2023-02", "label": "education", "share": 0.3},
             "quality_break": {"column": "age_in_years", "start": "2023-03", "kind": "missing", "share": 0.1}}
    info = generate_loan_book_spark(spark, tmp_path / "book", months=3, total_rows=3000, seed=4, drift=drift)
    assert info["rows"] == 3000 and sorted(p.name for p in (tmp_path / "book").iterdir() if p.is_dir()) == \
        ["snapshot_month=2023-01", "snapshot_month=2023-02", "snapshot_month=2023-03"]
    ref = generate_loan_book(months=3, rows_per_month=1000, seed=4, drift=drift)
    got = spark.read.parquet(str(tmp_path / "book")).toPandas()[ref.columns].sort_values("loan_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, ref)
    assert [p.name for p in tmp_path.iterdir()] == ["book"]  # nothing left aside
