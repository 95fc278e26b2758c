"""Contracts: the same verdict row by row on pandas and Spark, SQL semantics checked against SQLite, dataset-level errors."""
import sqlite3
import numpy as np
import pandas as pd
import pytest
from mlcore.data.catalog import save, validate_dataset
from mlcore.data.contracts import ContractError, cast_to_contract, compile_rule, contract_from_dict, to_pandas, validate
from mlcore.data.datasets import german_credit_path
from mlcore.data.synthetic import generate_loan_book
from datakit import corrupted_german_credit


def canon(df):
    "Rows as sorted tuples with engine-specific missing values and number types made equal"
    def v(x):
        if x is None or (not isinstance(x, str) and pd.isna(x)): return None
        if isinstance(x, (float, np.floating)) and float(x).is_integer(): return int(x)
        return x.item() if hasattr(x, "item") else x
    return sorted((tuple(v(x) for x in r) for r in df.itertuples(index=False)), key=repr)


@pytest.mark.spark
def test_german_credit_split_identical_on_pandas_and_spark(spark, tmp_path):
    raw, bad_rows = corrupted_german_credit(tmp_path / "gc.csv")
    p = validate_dataset("german_credit", "pandas", path=tmp_path / "gc.csv")
    s = validate_dataset("german_credit", "spark", path=tmp_path / "gc.csv", spark=spark)
    assert p.counts == s.counts
    assert (p.counts["rows_in"], p.counts["quarantined"], p.counts["valid"]) == (1001, 10, 991)
    assert sorted(p.quarantine.index) == bad_rows
    assert canon(p.quarantine) == canon(s.quarantine.toPandas())
    assert canon(p.valid) == canon(s.valid.toPandas())
    rules = dict(zip(p.quarantine.index, p.quarantine._broken_rules))
    assert rules[3] == "purpose.allowed" and rules[10] == "credit_amount.range"
    assert rules[20] == "credit_amount.range;amount_per_month_plausible"
    assert rules[50] == "creditability.not_null" and rules[60] == "creditability.allowed"
    assert rules[1000] == "row.unique" and rules[40] == rules[41] == "age_in_years.range"


@pytest.mark.spark
def test_loan_book_split_identical_on_pandas_and_spark(spark, tmp_path):
    drift = {"quality_break": [{"column": "credit_amount", "start": "2023-03", "kind": "missing", "share": 0.05},
                               {"column": "duration_in_month", "start": "2023-04", "kind": "unit", "factor": 5}]}
    book = generate_loan_book(months=4, rows_per_month=1500, seed=3, drift=drift)
    book.loc[[5, 17], "loan_id"] = book.loc[4, "loan_id"]  # three rows share a key
    book.loc[9, "purpose"] = "spaceship"
    book.to_parquet(tmp_path / "book", partition_cols=["snapshot_month"])
    p = validate_dataset("loan_book", "pandas", path=tmp_path / "book")
    s = validate_dataset("loan_book", "spark", path=tmp_path / "book", spark=spark)
    assert p.counts == s.counts
    r = p.counts["rules"]
    assert r["primary_key.unique"] == 3 and r["purpose.allowed"] == 1
    assert r["credit_amount.not_null"] > 50 and r["duration_in_month.range"] > 0
    cols = list(p.quarantine.columns)
    assert canon(p.quarantine) == canon(s.quarantine.toPandas()[cols])
    assert canon(p.valid) == canon(s.valid.toPandas()[list(p.valid.columns)])


def test_rule_semantics_match_sqlite():
    "Three-valued logic, division by zero and `in` agree with SQL CHECK semantics (SQLite as the oracle)"
    rng = np.random.default_rng(0)
    n = 300
    df = pd.DataFrame({"a": rng.integers(-3, 4, n).astype(float), "b": rng.integers(-2, 3, n).astype(float),
                       "g": rng.choice(["x", "y", "z"], n).astype(object)})
    df.loc[rng.random(n) < 0.2, "a"] = np.nan
    df.loc[rng.random(n) < 0.2, "g"] = None
    rules = ["a / b >= 1 or g == 'x'", "not (a > 0 and b < 0)", "a + b * 2 != 1", "g in ['x', 'y'] or a <= -2",
             "g not in ['z'] and not_null(a)", "is_null(a) or -a < b", "0 <= a < 2"]
    con = sqlite3.connect(":memory:")
    df.to_sql("t", con, index=False)
    for r in rules:
        mine = (~to_pandas(compile_rule(r, list(df.columns)), df)).fillna(False).astype(bool).tolist()
        sql = (r.replace("==", "=").replace("['x', 'y']", "('x', 'y')").replace("['z']", "('z')")
                .replace("not_null(a)", "a IS NOT NULL").replace("is_null(a)", "a IS NULL").replace("0 <= a < 2", "0 <= a AND a < 2"))
        oracle = [bool(x) for (x,) in con.execute(f"SELECT COALESCE(NOT ({sql}), 0) FROM t")]
        assert mine == oracle, r


def test_dataset_level_failures_name_dataset_column_expectation(tmp_path):
    raw = pd.read_csv(german_credit_path(), dtype=str, keep_default_na=False)
    cases = {
        "missing": (raw.drop(columns="housing").to_csv(index=False), "column 'housing': column is missing (expected str)"),
        "delimiter": (raw.to_csv(index=False, sep=";"), "wrong delimiter? expected ','"),
        "uncastable": (raw.assign(age_in_years=raw.age_in_years.where(raw.index != 5, "forty")).to_csv(index=False),
                       "column 'age_in_years': cannot be cast to int: 1 value(s) such as ['forty']"),
        "header_only": (",".join(raw.columns) + "\n", "the data is empty"),
        "empty": ("", "the file is empty"),
    }
    for name, (text, msg) in cases.items():
        f = tmp_path / f"{name}.csv"
        f.write_text(text)
        with pytest.raises(ContractError) as e: validate_dataset("german_credit", path=f)
        assert "dataset 'german_credit'" in str(e.value) and msg in str(e.value), (name, str(e.value))
    with pytest.raises(FileNotFoundError, match="does not exist"): validate_dataset("german_credit", path=tmp_path / "nope.csv")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00garbage\x00\xff" * 10)
    with pytest.raises(ContractError, match="unreadable file|column is missing"): validate_dataset("german_credit", path=tmp_path / "bin.csv")


@pytest.mark.spark
def test_dataset_level_failures_on_spark(spark, tmp_path):
    raw = pd.read_csv(german_credit_path(), dtype=str, keep_default_na=False)
    f = tmp_path / "x.csv"
    raw.assign(credit_amount=raw.credit_amount.where(raw.index != 9, "12.5")).to_csv(f, index=False)
    with pytest.raises(ContractError, match="column 'credit_amount': cannot be cast to int: 1 value"): validate_dataset("german_credit", "spark", path=f, spark=spark)
    raw.drop(columns="job").to_csv(f, index=False)
    with pytest.raises(ContractError, match="column 'job': column is missing"): validate_dataset("german_credit", "spark", path=f, spark=spark)
    f.write_text(",".join(raw.columns) + "\n")
    with pytest.raises(ContractError, match="the data is empty"): validate_dataset("german_credit", "spark", path=f, spark=spark)


def test_counts_logged_to_mlflow(store):
    import mlflow
    toy = contract_from_dict({"dataset": "toy", "columns": {"x": {"type": "int", "min": 0}}})
    df = cast_to_contract(pd.DataFrame({"x": ["1", "-1", "2"]}), toy)
    with mlflow.start_run() as run: validate(df, toy)
    m = mlflow.get_run(run.info.run_id).data.metrics
    assert (m["contract.toy.rows_in"], m["contract.toy.valid"], m["contract.toy.quarantined"], m["contract.toy.rule.x.range"]) == (3, 2, 1, 1)
