"""Property-based: contracts and the data checked against them. Any contract mapping is a Contract or a ConfigError
naming the key; any frame is split into valid + quarantined rows (nothing lost, valid rows really valid) or refused
with a ContractError naming the column; Spark agrees with pandas on the counts."""
import re
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st
from fuzzkit import N, figures_fixture
from mlcore.core.config import ConfigError
from mlcore.data.contracts import ContractError, cast_to_contract, contract_from_dict, validate

TALLY, figures = figures_fixture(__file__)



CONTRACT = {"dataset": "fuzz", "primary_key": ["id"],
            "columns": {"id": {"type": "int", "nullable": False, "min": 1},
                        "amount": {"type": "float", "nullable": False, "min": 0, "max": 1e6},
                        "n": {"type": "int", "min": 0, "max": 10},
                        "city": {"type": "str", "allowed": ["Zürich", "São Paulo", "東京"]},
                        "code": {"type": "str", "pattern": r"[A-Z]{2}\d"}},
            "rules": [{"name": "amount_per_n", "check": "amount <= 1000 * n or is_null(n)"}]}
C = contract_from_dict(CONTRACT, "fuzz.yaml")

WEIRD = [None, np.nan, np.inf, -np.inf, 1e308, -1e308, 2**63, 2**64, -2**70, 0, -1, 3, 3.0, 2.5, 1e-300, True, False,
         "", " ", "12", " 7 ", "1.5", "1e5", "NaN", "inf", "x", "Zürich", "東京", "São Paulo", "AB1", "ab1", "\x00", "🙂", "1,5"]
GOOD = {"id": st.integers(1, 5), "amount": st.floats(0, 1e6), "n": st.integers(0, 10),
        "city": st.sampled_from(["Zürich", "São Paulo", "東京"]), "code": st.sampled_from(["AB1", "ZZ9"])}


@st.composite
def frames(draw, full=False):
    "Frames with the contract's columns (some missing, some extra), each clean, typed-but-wrong or random junk"
    n = draw(st.integers(1 if full else 0, 8))
    cols = {}
    for c in CONTRACT["columns"]:
        kind = draw(st.sampled_from(["good"] * 5 + ["junk", "strings"] + ([] if full else ["missing"])))
        if kind == "missing": continue
        if kind == "good": cols[c] = draw(st.lists(st.one_of(GOOD[c], st.none()), min_size=n, max_size=n))
        elif kind == "junk": cols[c] = draw(st.lists(st.sampled_from(WEIRD), min_size=n, max_size=n))
        else: cols[c] = [None if v is None else str(v) for v in draw(st.lists(st.one_of(GOOD[c], st.none()), min_size=n, max_size=n))]
    if draw(st.booleans()): cols["extra ü"] = draw(st.lists(st.sampled_from(WEIRD), min_size=n, max_size=n))
    df = pd.DataFrame(cols, index=pd.RangeIndex(n) if not draw(st.booleans()) else [f"r{i % 3}" for i in range(n)])
    return df


def check_valid_rows(v: pd.DataFrame):
    "Valid rows really meet the contract"
    assert v["id"].notna().all() and (v["id"] >= 1).all() and not v["id"].duplicated().any()
    assert v["amount"].notna().all() and v["amount"].between(0, 1e6).all()
    assert v["n"].dropna().between(0, 10).all()
    assert v["city"].dropna().isin(["Zürich", "São Paulo", "東京"]).all()
    assert all(re.fullmatch(r"[A-Z]{2}\d", x) for x in v["code"].dropna())
    assert ((v["amount"] <= 1000 * v["n"]) | v["n"].isna()).all()


@given(frames())
def test_any_frame_is_split_or_refused_naming_the_column(df):
    TALLY["frames tried"] += 1
    try:
        typed = cast_to_contract(df, C)
        res = validate(typed, C, log=False)
    except ContractError as e:
        TALLY["frames clear errors"] += 1
        assert e.dataset == "fuzz" and (e.column is None or e.column in CONTRACT["columns"]), e
        assert e.column is None or f"column '{e.column}'" in str(e)
        return
    TALLY["frames split"] += 1
    c = res.counts
    assert c["rows_in"] == len(df) == c["valid"] + c["quarantined"] == len(res.valid) + len(res.quarantine)
    check_valid_rows(res.valid)
    assert (res.quarantine["_broken_rules"] != "").all()
    TALLY["rows quarantined"] += c["quarantined"]


ckeys = st.sampled_from(["type", "nullable", "min", "max", "allowed", "pattern", "description", "typo"])
cvals = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=6),
                  st.sampled_from(["int", "float", "str", "[", "(?P<", r"\d+", "no"]), st.lists(st.text(max_size=3), max_size=3))
contracts = st.fixed_dictionaries({}, optional={
    "dataset": st.one_of(st.text(max_size=5), st.integers()),
    "columns": st.one_of(st.dictionaries(st.sampled_from(["id", "amount", "ü"]),
                                         st.one_of(st.none(), st.dictionaries(ckeys, cvals, max_size=3), cvals), max_size=3),
                         st.lists(st.text(max_size=3), max_size=2), st.text(max_size=3)),
    "primary_key": st.one_of(st.lists(st.sampled_from(["id", "nope"]), max_size=2), st.text(max_size=3), st.integers()),
    "unique_rows": st.one_of(st.booleans(), st.text(max_size=3)),
    "rules": st.one_of(st.lists(st.one_of(st.fixed_dictionaries({"name": st.text(max_size=4), "check": st.sampled_from(
        ["id > 0", "id >", "nope < 1", "__import__('os')", "id in [1, 2]", "amount / id > 1", "1"])}), st.integers(), st.text(max_size=3)),
        max_size=2), st.text(max_size=3)),
    "extra": st.integers()})


@given(contracts)
def test_any_contract_mapping_is_checked(d):
    TALLY["contracts tried"] += 1
    try: c = contract_from_dict(d, "c.yaml")
    except ConfigError as e:
        TALLY["contracts clear errors"] += 1
        assert "c.yaml" in str(e) and e.key in str(e), e
        return
    # an accepted contract is usable: validating a frame of nulls works or names a column
    df = pd.DataFrame({k: [None, None] for k in c.columns})
    for col in c.columns.values():
        assert isinstance(col.nullable, bool) and col.type in ("int", "float", "str")
        assert col.allowed is None or isinstance(col.allowed, list)
        if col.pattern is not None: re.compile(col.pattern)
    try: validate(cast_to_contract(df, c), c, log=False)
    except ContractError: pass


@pytest.mark.spark
def test_spark_agrees_with_pandas_on_fuzzed_frames(spark):
    "A few fuzzed frames that pandas accepts, through the Spark compile of the same contract"
    from pyspark.sql import types as T
    schema = T.StructType([T.StructField("id", T.StringType()), T.StructField("amount", T.StringType()),
                           T.StructField("n", T.StringType()), T.StructField("city", T.StringType()),
                           T.StructField("code", T.StringType())])
    tried = 0

    @settings(max_examples=max(2, N // 30))
    @given(frames(full=True))
    def one(df):
        nonlocal tried
        if any(c not in df.columns for c in CONTRACT["columns"]) or len(df) == 0: return
        raw = df[list(CONTRACT["columns"])].astype(object).where(df.notna(), None).map(lambda v: None if v is None else str(v))
        try: want = validate(cast_to_contract(raw.reset_index(drop=True), C), C, log=False).counts
        except ContractError: want = None
        sdf = spark.createDataFrame(raw.values.tolist(), schema)
        try: got = validate(cast_to_contract(sdf, C, "spark"), C, "spark", log=False).counts
        except ContractError: got = None
        tried += 1
        TALLY["spark frames tried"] += 1
        if want is None or got is None:
            assert want is got is None, (want, got)
        else:
            assert {k: got[k] for k in ("rows_in", "valid", "quarantined")} == {k: want[k] for k in ("rows_in", "valid", "quarantined")}
    one()
    assert tried > 0
