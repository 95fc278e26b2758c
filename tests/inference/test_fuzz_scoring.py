"""Property-based: batch scoring (row checks and score_pandas) and the REST service (FastAPI TestClient) with random
types, NaN/inf, huge values, empty frames, unicode categories, duplicated keys, missing and extra columns/fields.
Every row is scored with a finite PD equal to the PD of its clean twin, or quarantined with a reason; every request
is answered 200 or a 4xx naming the field; never a 5xx, never a traceback from inside a library."""
import json, math
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, strategies as st
from fuzzkit import figures_fixture
from mlcore.data.datasets import load_german_credit, PROTECTED_ATTRIBUTES
from mlcore.models.scorecard import ScorecardModel
from mlcore.models.credit import CreditModel, CreditPDModel
from mlcore.data.contracts import input_contract
from mlcore.inference.serving import create_app
from mlcore.inference.batch import input_reasons, score_pandas

TALLY, figures = figures_fixture(__file__)
BOUNDS = {"duration_in_month": [1, 120], "credit_amount": [1, 1000000], "installment_rate_in_percentage_of_disposable_income": [1, 4]}



@pytest.fixture(scope="module")
def model():
    "A small fitted scorecard (5 characteristics of the German credit data) with its input contract"
    gc = load_german_credit()
    cols = ["duration_in_month", "credit_amount", "installment_rate_in_percentage_of_disposable_income", "purpose",
            "status_of_existing_checking_account"]
    sc = ScorecardModel(min_iv=0.0, protected=PROTECTED_ATTRIBUTES).fit(gc[cols], gc["default"])
    cm = CreditModel.build(sc, list("ABCDEFG"), [0.03, 0.06, 0.10, 0.18, 0.30, 0.50], {c: f"Reason {c}" for c in cols}, 3)
    contract = input_contract(gc[cols], BOUNDS)
    rows = gc[cols].assign(loan_id=np.arange(len(gc)))
    return cm, contract, rows


WEIRD = [None, np.nan, np.inf, -np.inf, 1e308, -1e308, 2**63, 2**80, 0, -1, 7, 7.0, 2.5, True, "", " ", "12", "1e3", "NaN",
         "inf", "x", "Zürich", "東京", "radio/television", "car (new)", "\x00", "🙂", b"bytes", [1], {"a": 1}]


@st.composite
def frames(draw, rows):
    "Rows of real applicants with some cells replaced by junk, some columns dropped or added, keys duplicated"
    n = draw(st.integers(0, 12))
    df = rows.sample(n, random_state=draw(st.integers(0, 10**6))).reset_index(drop=True).astype(object)
    for _ in range(draw(st.integers(0, 6))):
        if n == 0: break
        df.iat[draw(st.integers(0, n - 1)), draw(st.integers(0, df.shape[1] - 1))] = draw(st.sampled_from(WEIRD))
    if n and draw(st.booleans()):  # duplicated keys
        df.loc[draw(st.integers(0, n - 1)), "loan_id"] = df.loc[draw(st.integers(0, n - 1)), "loan_id"]
    if draw(st.integers(0, 9)) == 0: df = df.drop(columns=draw(st.sampled_from(list(df.columns))))
    if draw(st.booleans()): df["extra ü"] = [draw(st.sampled_from(WEIRD))] * len(df)
    if draw(st.booleans()):  # typed as a file reader would give them, where possible
        df = df.infer_objects()
    return df


def clean_twin(df, contract):
    "The same rows with values in their canonical types (numbers as float, categories as text)"
    out = df[list(contract.columns)].copy()
    for c, col in contract.columns.items():
        out[c] = pd.to_numeric(out[c], errors="coerce").astype(float) if col.type != "str" else out[c].astype(str)
    return out


@given(st.data())
def test_batch_scoring_scores_or_quarantines_every_row(model, data):
    cm, contract, rows = model
    df = data.draw(frames(rows))
    TALLY["batch frames tried"] += 1
    TALLY["batch rows tried"] += len(df)
    info = {"name": "m", "version": "1", "run_id": "r", "scored_at": "now"}
    try: scored, quarantined = score_pandas(cm, df, contract, "loan_id", info)
    except KeyError as e:
        TALLY["batch clear errors"] += 1
        assert any(f"'{c}'" in str(e) for c in [*contract.columns, "loan_id"]), e   # names the missing column
        assert any(c not in df.columns for c in [*contract.columns, "loan_id"])
        return
    assert len(scored) + len(quarantined) == len(df)
    assert (quarantined["quarantine_reason"].str.len() > 0).all()
    assert np.isfinite(scored["pd"].to_numpy(dtype=float)).all() and scored["pd"].between(0, 1).all()
    assert not scored["loan_id"].duplicated().any()                         # a duplicated key is never scored twice
    dup = df["loan_id"].duplicated(keep=False) & df["loan_id"].notna()
    assert quarantined["quarantine_reason"].str.contains("loan_id.unique").sum() == dup.sum()
    good = df[(input_reasons(df, contract) == "") & ~dup & df["loan_id"].notna()]
    twin = cm.predict_pd(clean_twin(good, contract))
    assert np.allclose(scored["pd"].to_numpy(dtype=float), twin), "a row was scored differently from its clean twin"
    TALLY["batch rows scored"] += len(scored); TALLY["batch rows quarantined"] += len(quarantined)


@pytest.mark.spark
def test_spark_quarantines_the_same_keys_and_rows(model, spark):
    "Duplicated and missing keys and bad cells: the Spark path quarantines the same rows with the same reasons"
    from mlcore.inference.batch import score_spark
    cm, contract, rows = model
    df = rows.head(8).copy()
    df.loc[1, "loan_id"] = df.loc[0, "loan_id"]; df["loan_id"] = df["loan_id"].astype("float64"); df.loc[2, "loan_id"] = np.nan
    df.loc[3, "credit_amount"] = -5; df.loc[4, "purpose"] = "東京"; df.loc[0, "duration_in_month"] = 999
    info = {"name": "m", "version": "1", "run_id": "r", "scored_at": "now"}
    s1, q1 = score_pandas(cm, df, contract, "loan_id", info)
    s2, q2 = score_spark(cm, spark.createDataFrame(df), contract, "loan_id", info)
    s2, q2 = s2.toPandas(), q2.toPandas()
    assert sorted(q1.quarantine_reason) == sorted(q2.quarantine_reason) and len(q1) == 5
    assert np.allclose(s1.sort_values("loan_id").pd, s2.sort_values("loan_id").pd)


# --- the REST service ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client(model, tmp_path_factory):
    from fastapi.testclient import TestClient
    from mlcore.inference.serving import DecisionLog
    cm, contract, rows = model
    log = DecisionLog(tmp_path_factory.mktemp("fuzz-serving") / "d.jsonl", key="k")
    app = create_app(_Pyfunc(cm), contract,
                     {"name": "m", "version": "1", "alias": None, "run_id": "r"}, log, max_batch=5)
    return TestClient(app, raise_server_exceptions=False), contract, rows


class _Pyfunc:
    "What mlflow.pyfunc.load_model returns, reduced to predict"
    def __init__(self, cm): self.m = CreditPDModel(cm)
    def predict(self, df): return self.m.predict(None, df)


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False, allow_infinity=False),
                         st.text(max_size=8), st.sampled_from(["radio/television", "car (new)", "no checking account", "東京", ""]))
json_values = st.recursive(json_scalars, lambda c: st.lists(c, max_size=2) | st.dictionaries(st.text(max_size=4), c, max_size=2), max_leaves=4)


@st.composite
def applicants(draw, rows, contract):
    rec = {k: (v.item() if hasattr(v, "item") else v) for k, v in rows.drop(columns="loan_id").iloc[draw(st.integers(0, len(rows) - 1))].items()}
    for _ in range(draw(st.integers(0, 3))):
        k = draw(st.sampled_from(list(contract.columns) + ["extra", "ünïcode"]))
        if draw(st.integers(0, 4)) == 0: rec.pop(k, None)
        else: rec[k] = draw(json_values)
    return rec


def names_fields(body, sent: dict | None = None) -> bool:
    errs = body.get("errors") or []
    return bool(errs) and all(isinstance(e.get("field"), str) and e["field"] and e.get("problem") for e in errs)


@given(st.data())
def test_service_answers_200_or_4xx_naming_the_field(client, data):
    c, contract, rows = client
    kind = data.draw(st.sampled_from(["one", "one", "batch", "raw"]))
    TALLY["requests tried"] += 1
    if kind == "one":
        rec = data.draw(applicants(rows, contract))
        r = c.post("/score", json=rec)
    elif kind == "batch":
        recs = data.draw(st.lists(st.one_of(applicants(rows, contract), json_values), min_size=0, max_size=7))
        r = c.post("/score/batch", json=data.draw(st.sampled_from([{"applicants": recs}, recs, {"applicants": recs, "x": 1}])))
    else:
        body = data.draw(st.one_of(st.binary(max_size=40), st.sampled_from([b"", b"{", b"null", b"NaN", b'{"a": NaN}', b"1e999",
                                                                            b'{"duration_in_month": Infinity}', "\ufeff{}".encode()])))
        r = c.post(data.draw(st.sampled_from(["/score", "/score/batch"])), content=body, headers={"Content-Type": "application/json"})
    assert r.status_code < 500, (r.status_code, r.text)
    if r.status_code == 200:
        TALLY["requests scored"] += 1
        out = r.json()
        for d in out.get("decisions") or [out["decision"]]:
            assert math.isfinite(d["pd"]) and 0 < d["pd"] < 1 and d["grade"]
    else:
        TALLY["requests refused with a 4xx naming the field"] += 1
        assert 400 <= r.status_code < 500 and names_fields(r.json()), r.text


def test_service_refuses_nan_and_infinity_in_json(client):
    "Python's json module reads NaN/Infinity: they must be refused as not finite, not scored"
    c, contract, rows = client
    rec = {k: (v.item() if hasattr(v, "item") else v) for k, v in rows.drop(columns="loan_id").iloc[0].items()}
    body = json.dumps({**rec, "credit_amount": float("nan")})
    r = c.post("/score", content=body.encode(), headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "credit_amount"
    r = c.post("/score", json={**rec, "credit_amount": 10**30})
    assert r.status_code == 422 and "above the maximum" in r.text
