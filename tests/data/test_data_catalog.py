"""Catalog: typed German credit on both engines, partitions on Spark, atomic saves that never publish half a dataset."""
import pandas as pd
import pytest
from mlcore.data.catalog import load, save
from mlcore.data.datasets import load_german_credit


def test_load_german_credit_is_the_typed_frame():
    pd.testing.assert_frame_equal(load("german_credit"), load_german_credit())


@pytest.mark.spark
def test_spark_load_and_partitions(spark, tmp_path):
    sp = load("german_credit", engine="spark", spark=spark)
    assert dict(sp.dtypes)["credit_amount"] == "bigint" and sp.columns[-1] == "default"
    pd.testing.assert_frame_equal(sp.toPandas(), load_german_credit())
    cat = tmp_path / "catalog.yaml"
    cat.write_text(f"datasets:\n  book: {{format: parquet, path: {tmp_path}/book, partition_by: m}}\n")
    df = pd.DataFrame({"id": range(8), "m": ["2024-01", "2024-02", "2024-03", "2024-04"] * 2})
    save("book", spark.createDataFrame(df), catalog=cat)
    one = load("book", "spark", partitions="2024-02", spark=spark, catalog=cat)
    assert sorted(r.id for r in one.collect()) == [1, 5]
    rng = load("book", "spark", partitions=("2024-02", "2024-03"), spark=spark, catalog=cat).toPandas()
    assert sorted(rng.id) == [1, 2, 5, 6] and set(rng.m) == {"2024-02", "2024-03"}
    assert sorted(load("book", partitions=["2024-01", "2024-04"], catalog=cat).id) == [0, 3, 4, 7]


def test_failed_save_keeps_the_old_dataset(tmp_path):
    cat = tmp_path / "catalog.yaml"
    cat.write_text(f"datasets:\n  t: {{format: parquet, path: {tmp_path}/t, partition_by: m}}\n")
    save("t", pd.DataFrame({"x": [1, 2], "m": ["a", "b"]}), catalog=cat)
    bad = pd.DataFrame({"x": [object(), object()], "m": ["a", "c"]})  # cannot be written as Parquet
    with pytest.raises(Exception): save("t", bad, catalog=cat)
    assert sorted(load("t", catalog=cat).x) == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalog.yaml", "t"]
