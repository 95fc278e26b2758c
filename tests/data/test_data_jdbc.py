"""SQL datasets through JDBC on Spark: the xerial SQLite JDBC driver (Debian: libxerial-sqlite-jdbc-java + -jni).

The session-scoped `spark` fixture has no JDBC jar and a JVM starts once per process, so the Spark side runs
in a subprocess with its own session (`spark.jars`)."""
import json, subprocess, sys, textwrap
from pathlib import Path
import pandas as pd
import pytest

JAR = "/usr/share/java/xerial-sqlite-jdbc.jar"
if not Path(JAR).exists():
    pytest.skip(f"no SQLite JDBC driver at {JAR} (apt-get install libxerial-sqlite-jdbc-java libxerial-sqlite-jdbc-jni)",
                allow_module_level=True)

MONTHS = [f"2024-{m:02d}" for m in range(1, 13)]


def _catalog(tmp_path: Path) -> Path:
    db = tmp_path / "db.sqlite"
    cat = tmp_path / "catalog.yaml"
    common = f"""    format: sql
    url: sqlite:///{db}
    jdbc_url: jdbc:sqlite:{db}
    options: {{driver: org.sqlite.JDBC}}
"""
    cat.write_text("datasets:\n"
                   f"  loans:\n{common}    table: loans\n    partition_by: snapshot_month\n"
                   f"  missing:\n{common}    table: no_such_table\n")
    return cat


def _frame() -> pd.DataFrame:
    # values exact in float32: SQLite REAL comes back through the xerial driver as Spark float
    return pd.DataFrame({"id": range(24), "snapshot_month": [MONTHS[i % 12] for i in range(24)],
                         "amount": [i + 0.5 for i in range(24)]})


def _rows(df) -> list:
    return sorted((int(r["id"]), str(r["snapshot_month"]), float(r["amount"])) for _, r in df.iterrows())


SCRIPT = textwrap.dedent("""
    import json, sys
    import pandas as pd, sqlalchemy as sa
    from mlcore.core.spark import spark_session
    from mlcore.data.catalog import load, save
    jar, cat, db, months = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    spark = spark_session(master="local[2]", conf={"spark.jars": jar, "spark.ui.enabled": "false"})
    rows = lambda df: sorted([int(r["id"]), str(r["snapshot_month"]), float(r["amount"])] for r in df.collect())
    tables = lambda: sorted(r[0] for r in sa.create_engine(f"sqlite:///{db}").connect().execute(
        sa.text("SELECT name FROM sqlite_master WHERE type='table'")))
    out = {"loaded": rows(load("loans", engine="spark", spark=spark, catalog=cat))}
    # partitions: one value, a range, a list of more than ten values
    out["one"] = rows(load("loans", engine="spark", spark=spark, partitions="2024-03", catalog=cat))
    out["range"] = rows(load("loans", engine="spark", spark=spark, partitions=("2024-02", "2024-05"), catalog=cat))
    out["list"] = rows(load("loans", engine="spark", spark=spark, partitions=months[:11], catalog=cat))
    try:
        load("missing", engine="spark", spark=spark, catalog=cat); out["bad"] = None
    except Exception as e: out["bad"] = str(e).splitlines()[0]
    # Spark save twice: replaces, leaves no staging table, no duplicates
    df = load("loans", engine="spark", spark=spark, catalog=cat).where("id < 10")
    df = spark.createDataFrame(df.toPandas())  # detach from the table it replaces
    save("loans", df, catalog=cat); save("loans", df, catalog=cat)
    out["tables"] = tables()
    out["after_save"] = rows(load("loans", engine="spark", spark=spark, catalog=cat))
    print("RESULT " + json.dumps(out))
""")


@pytest.fixture(scope="module")
def jdbc(tmp_path_factory):
    from mlcore.data.catalog import save
    tmp = tmp_path_factory.mktemp("jdbc")
    cat = _catalog(tmp)
    save("loans", _frame(), catalog=cat)
    save("loans", _frame(), catalog=cat)  # pandas save twice: replaced, not appended
    # pandas reads of the same table, before Spark replaces it
    pd_rows = {"loaded": _pd_rows(cat), "one": _pd_rows(cat, partitions="2024-03"),
               "range": _pd_rows(cat, partitions=("2024-02", "2024-05")), "list": _pd_rows(cat, partitions=MONTHS[:11])}
    r = subprocess.run([sys.executable, "-c", SCRIPT, JAR, str(cat), str(tmp / "db.sqlite"), json.dumps(MONTHS)],
                       capture_output=True, text=True, timeout=600)
    line = [l for l in r.stdout.splitlines() if l.startswith("RESULT ")]
    err = "\n".join(l for l in r.stderr.splitlines() if not l.lstrip().startswith("at ") and "WARN" not in l)
    assert r.returncode == 0 and line, err[-4000:]
    return cat, json.loads(line[0][len("RESULT "):]), pd_rows


def _pd_rows(cat, **kw):
    from mlcore.data.catalog import load
    return [list(t) for t in _rows(load("loans", catalog=cat, **kw))]


def test_pandas_save_spark_load_same_rows(jdbc):
    cat, out, pd_rows = jdbc
    assert out["loaded"] == pd_rows["loaded"] == [list(t) for t in _rows(_frame())]  # 24 rows: two pandas saves replaced


def test_partitions_same_rows_on_pandas_and_spark(jdbc):
    cat, out, pd_rows = jdbc
    full = [list(t) for t in _rows(_frame())]
    for k in ("one", "range", "list"): assert out[k] == pd_rows[k], k
    assert out["one"] == [r for r in full if r[1] == "2024-03"] and len(out["one"]) == 2
    assert out["range"] == [r for r in full if "2024-02" <= r[1] <= "2024-05"] and len(out["range"]) == 8
    assert out["list"] == [r for r in full if r[1] in MONTHS[:11]] and len(out["list"]) == 22


def test_spark_save_replaces_atomically(jdbc):
    cat, out, _ = jdbc
    assert out["tables"] == ["loans"]  # no staging table left
    assert out["after_save"] == [list(t) for t in _rows(_frame()) if t[0] < 10]  # rerun did not duplicate rows
    from mlcore.data.catalog import load
    assert len(load("loans", catalog=cat)) == 10  # pandas sees the Spark-written table


def test_bad_table_names_the_dataset(jdbc):
    cat, out, _ = jdbc
    assert out["bad"] and "'missing'" in out["bad"] and "no_such_table" in out["bad"], out["bad"]
    from mlcore.data.catalog import load
    with pytest.raises(Exception, match=r"dataset 'missing'.*no_such_table"):
        load("missing", catalog=cat)
