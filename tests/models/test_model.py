"""Credit PD modelling: estimator checks, optbinning as oracle, sample design, faithful reasons, Spark parity, pyfunc."""
import warnings
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
from sklearn.utils.estimator_checks import check_estimator, parametrize_with_checks
from mlcore.models.binning import WoEBinner, fit_binning, bin_index
from mlcore.models.scorecard import ScorecardModel
from mlcore.models.challenger import ChallengerModel
from mlcore.models.credit import CreditModel, log_credit_model
from mlcore.models.selection import split_sample
from mlcore.data.datasets import load_german_credit, PROTECTED_ATTRIBUTES, GERMAN_CREDIT_NUMERIC, GERMAN_CREDIT_CATEGORICAL

GRADES, CUTOFFS = list("ABCDEFG"), [0.03, 0.06, 0.10, 0.18, 0.30, 0.50]


def book(n=2000, seed=0):
    "A frame with the synthetic loan book's schema: loan_id, snapshot_month, the 20 German attributes, default"
    rng = np.random.default_rng(seed)
    gc = load_german_credit()
    df = gc.sample(n, replace=True, random_state=seed).reset_index(drop=True)
    months = pd.period_range("2023-01", periods=12, freq="M").astype(str)
    df.insert(0, "snapshot_month", np.sort(rng.choice(months, n)))
    df.insert(0, "loan_id", np.arange(n))
    return df


@pytest.fixture(scope="module")
def gc():
    return load_german_credit()


@pytest.fixture(scope="module")
def fitted(gc):
    X, y = gc.drop(columns="default"), gc["default"]
    texts = {c: f"Reason: {c}" for c in X.columns if c not in PROTECTED_ATTRIBUTES}
    sc = ScorecardModel(protected=PROTECTED_ATTRIBUTES).fit(X, y)
    ch = ChallengerModel(protected=PROTECTED_ATTRIBUTES, n_iter=2, cv=2, seed=3).fit(X, y)
    return {"scorecard": CreditModel.build(sc, GRADES, CUTOFFS, texts, 4, {"intercept": 0.05, "slope": 0.9}, PROTECTED_ATTRIBUTES),
            "challenger": CreditModel.build(ch, GRADES, CUTOFFS, texts, 4, None, PROTECTED_ATTRIBUTES,
                                            {"pdo": 20, "base_score": 600, "base_odds": 50})}


# --- scikit-learn estimator checks (all of them for the binner and the scorecard) ---
@parametrize_with_checks([WoEBinner(), ScorecardModel(min_iv=0.0)])
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(estimator)


def test_challenger_estimator_checks():
    "The challenger runs a search inside fit: all checks, in one go, with the smallest budget"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = check_estimator(ChallengerModel(n_iter=1, cv=2), on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in res if r["status"] == "failed"]
    assert not failed, failed


def test_set_output_pandas(gc):
    X = gc[["duration_in_month", "purpose"]]
    W = WoEBinner().set_output(transform="pandas").fit(X, gc["default"]).transform(X)
    assert isinstance(W, pd.DataFrame) and list(W.columns) == list(X.columns) and W.index.equals(X.index)


# --- optbinning as oracle ---
IV_TOL = 0.01  # stated tolerance: IV within 1% (relative) of optbinning's for every characteristic


def test_binning_against_optbinning(gc):
    "Same bins as optbinning (same partition of the training rows) and IV within IV_TOL, characteristic by characteristic"
    from optbinning import OptimalBinning
    y = gc["default"].to_numpy()
    same, rows = [], []
    for c in GERMAN_CREDIT_NUMERIC + GERMAN_CREDIT_CATEGORICAL:
        ours = fit_binning(gc[c], y, min_bin_size=0.05)
        numeric = c in GERMAN_CREDIT_NUMERIC
        ob = OptimalBinning(c, dtype="numerical" if numeric else "categorical", min_bin_size=0.05,
                            monotonic_trend="auto_asc_desc" if numeric else None).fit(gc[c].to_numpy(), y)
        iv = ob.binning_table.build().loc["Totals", "IV"]
        rows.append((c, ours["iv"], iv))
        assert abs(ours["iv"] - iv) <= IV_TOL*iv + 1e-9, (c, ours["iv"], iv)
        if numeric:
            rates = [b["defaults"]/b["count"] for b in ours["bins"][:-2] if b["count"]]
            assert rates == sorted(rates, reverse=ours["trend"] == "descending"), (c, rates)
            a, b = bin_index(gc[c], ours), ob.transform(gc[c].to_numpy(), metric="indices")
            partition_same = len(set(zip(a, b))) == len(set(a)) == len(set(b))  # a one-to-one map between bins
        else:
            partition_same = sorted(map(sorted, ours["categories"])) == sorted(sorted(map(str, g)) for g in ob.splits)
        if partition_same: same.append(c)
    print("characteristic, IV ours, IV optbinning:", *(f"{c} {a:.6f} {b:.6f}" for c, a, b in rows), sep="\n  ")
    # all 20 are the same on German credit today; allow two to differ (ties the CP solver may break the other way)
    assert len(same) >= 18, sorted(set(GERMAN_CREDIT_NUMERIC + GERMAN_CREDIT_CATEGORICAL) - set(same))


def test_special_and_missing_bins():
    x = pd.Series([-1.0]*30 + list(range(100)) + [np.nan]*20, name="x")
    y = np.r_[np.ones(30), (np.arange(100) > 60).astype(float), np.zeros(20)]
    s = fit_binning(x, y, special_values=[-1], min_bin_size=0.05)
    special, missing = s["bins"][-2], s["bins"][-1]
    assert (special["count"], special["defaults"], missing["count"]) == (30, 30, 20)
    assert s["trend"] == "ascending"
    assert sum(b["count"] for b in s["bins"]) == 150  # nothing lost


# --- sample design ---
def test_out_of_time_split_on_book_schema():
    df = book(1200)
    s = split_sample(df, "default", "out_of_time", 0.3, seed=1, time_column="snapshot_month", oot_from="2023-10")
    assert s["oot"]["snapshot_month"].min() >= "2023-10" and s["train"]["snapshot_month"].max() < "2023-10"
    assert len(s["train"]) + len(s["test"]) + len(s["oot"]) == len(df)
    assert abs(s["train"]["default"].mean() - s["test"]["default"].mean()) < 0.01


# --- reasons ---
def _value_in_bin(spec, i):
    "A raw value that falls in bin i of a characteristic"
    if spec["kind"] == "numeric":
        e = spec["edges"]
        return e[i] if i < len(e) else (e[-1] + 1 if e else 0.0) if i == len(e) else spec["special_values"][0]
    return spec["categories"][i][0]


def _gains_of_reasons(cm, X):
    "Reasons per row and the score gained by moving each reason's raw input (alone) to its characteristic's best bin"
    from mlcore.models.reasons import best_bins
    reasons, base = cm.reasons(X), cm.score(X)["score"].to_numpy()
    specs = {s["name"]: s for s in cm.state["binning"]}
    best = dict(zip(cm.state["characteristics"], best_bins(cm.state["binning"])))
    moved, where = [], []
    for r in range(len(X)):
        for c in (c for c in reasons[r] if c is not None):
            m = X.iloc[[r]].copy()
            m[c] = _value_in_bin(specs[c], best[c])
            assert bin_index(m[c], specs[c])[0] == best[c]
            moved.append(m); where.append(r)
    gain = cm.score(pd.concat(moved, ignore_index=True))["score"].to_numpy() - base[where]
    out, i = [], 0
    for r in range(len(X)):
        n = sum(1 for c in reasons[r] if c is not None)
        out.append(gain[i:i+n]); i += n
    return out


def test_scorecard_reasons_are_faithful(fitted, gc):
    "Scorecard, every row: moving the top reason's characteristic to its best bin raises the score more than any lower-ranked one"
    gains = _gains_of_reasons(fitted["scorecard"], gc.drop(columns="default").sample(200, random_state=5).reset_index(drop=True))
    checked = 0
    for r, g in enumerate(gains):
        if len(g) < 2: continue
        assert g[0] > 0 and (g[0] >= g[1:] - 1e-9).all(), (r, g)
        assert (g[:-1] >= g[1:] - 1e-9).all(), (r, g)  # and the whole ranking holds
        checked += 1
    assert checked > 100


# SHAP attributions need not rank the single-characteristic gains under interactions: measured share on German credit
# (all 1,000 rows, the fixture's challenger) is about 0.7; the bound leaves room for library and platform noise.
CHALLENGER_TOP_FAITHFUL = 0.6


def test_challenger_reasons_faithfulness_share(fitted, gc):
    "Challenger (SHAP): share of rows whose top reason gains most when moved to its best bin, measured and bounded"
    gains = [g for g in _gains_of_reasons(fitted["challenger"], gc.drop(columns="default")) if len(g) >= 2]
    top = np.mean([g[0] > 0 and (g[0] >= g[1:] - 1e-9).all() for g in gains])
    ranking = np.mean([(g[:-1] >= g[1:] - 1e-9).all() for g in gains])
    print(f"challenger SHAP reasons on German credit: {len(gains)} rows with >= 2 reasons; top reason gains most in "
          f"{top:.3f}, whole top-4 ranking in the order of the gains in {ranking:.3f}")
    assert len(gains) > 900 and top >= CHALLENGER_TOP_FAITHFUL, (top, ranking)


@pytest.mark.parametrize("kind", ["scorecard", "challenger"])
def test_contributions_are_additive(fitted, gc, kind):
    "Contributions + reference score = score per row; for the challenger SHAP + base = raw margin (1e-6 log-odds)"
    from mlcore.models.reasons import best_reference, tree_contributions
    cm = fitted[kind]
    X = gc.drop(columns="default")
    c, out = cm.contributions(X), cm.score(X)
    np.testing.assert_allclose(c.sum(axis=1), out["score"], rtol=0, atol=1e-9 if kind == "scorecard" else 1e-4)
    if kind == "challenger":
        W = cm._woe_matrix(X)
        phi, base = tree_contributions(cm._explainer, W)
        np.testing.assert_allclose(phi.sum(1) + base, cm.challenger.decision_function(W), rtol=0, atol=1e-6)
        np.testing.assert_allclose(base, cm.challenger.decision_function(best_reference(cm.state["binning"]))[0], atol=1e-6)
    # the first reason is the most negative contribution
    first = c.drop(columns="reference_score").idxmin(axis=1).map(cm.state["reasons"]["texts"])
    has = out["reason_1"] != ""
    assert has.mean() > 0.9 and (out["reason_1"][has] == first[has]).all()


def test_protected_never_inputs_nor_reasons(fitted, gc):
    X = gc.drop(columns="default").head(200)
    for cm in fitted.values():
        assert not set(cm.state["characteristics"]) & set(PROTECTED_ATTRIBUTES)
        used = {c for row in cm.reasons(X) for c in row if c}
        assert used and not used & set(PROTECTED_ATTRIBUTES)
        # changing protected attributes changes nothing
        X2 = X.assign(personal_status_and_sex="female : divorced/separated/married", age_in_years=99, foreign_worker="no")
        pd.testing.assert_frame_equal(cm.score(X), cm.score(X2))
    sc = ScorecardModel(min_iv=0.0).fit(gc.drop(columns="default"), gc["default"])  # protected not excluded on purpose
    with pytest.raises(ValueError, match="protected attribute"):
        CreditModel.build(sc, GRADES, CUTOFFS, {c: "x" for c in gc.columns}, protected=PROTECTED_ATTRIBUTES)


def test_scorecard_points_add_up_and_grades(fitted, gc):
    cm = fitted["scorecard"]
    X = gc.drop(columns="default").head(50)
    t = cm.points_table()
    pts = sum(t[t.characteristic == s["name"]]["points"].to_numpy()[bin_index(X[s["name"]], s)] for s in cm.state["binning"])
    out = cm.score(X)
    np.testing.assert_allclose(pts, out["score"], atol=1e-9)
    assert (out["grade"] == pd.cut(out["pd"], [0, *CUTOFFS, 1], labels=GRADES).astype(str)).all()


# --- Spark parity ---
@pytest.mark.spark
@pytest.mark.parametrize("kind", ["scorecard", "challenger"])
def test_spark_matches_pandas(spark, fitted, kind):
    cm = fitted[kind]
    df = book(400, seed=2)
    df["duration_in_month"] = df["duration_in_month"].astype(float)
    df.loc[:9, "duration_in_month"] = np.nan        # missing
    df.loc[10:19, "purpose"] = "space travel"       # unseen category
    df.loc[20:24, "savings_account_and_bonds"] = None
    sdf = spark.createDataFrame(df)
    got = cm.spark_score(sdf, keep=["loan_id"]).toPandas().sort_values("loan_id").reset_index(drop=True)
    exp = cm.score(df)
    assert len(got) == len(df)
    np.testing.assert_allclose(got["pd"], exp["pd"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(got["score"], exp["score"], rtol=0, atol=1e-6)
    cols = ["grade"] + [f"reason_{i}" for i in range(1, 5)]
    mism = (got[cols].to_numpy() != exp[cols].to_numpy()).any(axis=1)
    assert not mism.any(), pd.concat([got[cols][mism], exp[cols][mism]], axis=1).head()


# --- MLflow pyfunc ---
@pytest.mark.parametrize("kind", ["scorecard", "challenger"])
def test_pyfunc_round_trip(store, fitted, gc, kind):
    import mlflow
    from mlflow.models import Model, infer_signature
    from mlflow.tracking import MlflowClient
    X = gc.drop(columns=["default", *PROTECTED_ATTRIBUTES])
    with mlflow.start_run():
        info = log_credit_model(fitted[kind], X, f"pd_{kind}")
    loaded = mlflow.pyfunc.load_model(f"models:/pd_{kind}/{info.registered_model_version}")
    out = loaded.predict(X.head(10))
    pd.testing.assert_frame_equal(out, fitted[kind].score(X.head(10)))
    v = MlflowClient().get_model_version(f"pd_{kind}", str(info.registered_model_version))
    assert v.tags["mlcore.trained_by"] and v.tags["mlcore.model_type"] == kind
    # privacy: the stored input example is synthetic, not an applicant; the signature is what real rows give
    path = mlflow.artifacts.download_artifacts(info.model_uri)
    example = Model.load(path).load_input_example(path)
    assert len(example) and list(example.columns) == list(X.columns)
    assert example.merge(gc.drop_duplicates(), how="inner", on=list(X.columns)).empty, "input example holds a data row"
    assert loaded.metadata.get_input_schema().to_dict() == infer_signature(X.head(50)).inputs.to_dict()
    reqs = (Path(path) / "requirements.txt").read_text()
    assert ("shap==" in reqs) == (kind == "challenger"), reqs


# --- privacy of the training job's evidence ---
def _tables_with_data_columns(nb_path, columns):
    "Outputs of an executed notebook that are tables with applicant characteristics as column headers"
    import re, nbformat
    found = []
    for i, cell in enumerate(nbformat.read(nb_path, as_version=4).cells):
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            html = data.get("text/html", "")
            headers = set(re.findall(r"<th[^>]*>([^<]+)</th>", html))
            first = (data.get("text/plain", "") or out.get("text", "")).splitlines()[:1]
            headers |= set(first[0].split()) if first else set()
            if len(headers & set(columns)) >= 3: found.append((i, sorted(headers & set(columns))))
    return found


@pytest.mark.slow
def test_train_job_shows_and_logs_no_applicant_rows(store, gc):
    "The executed train notebook prints no raw rows; the run's CSV artifacts and the model's input example hold no data row"
    import mlflow
    from mlflow.models import Model
    from mlcore.ops.runner import run_job
    res = run_job("train", Path(__file__).parents[2] / "params" / "credit_pd" / "train.yaml",
                  overrides=["search_iter=1", "search_cv=2", "calibration_cv=2"])
    assert res.status == "FINISHED", res.error
    cols = [c for c in gc.columns if c != "default"]
    assert not _tables_with_data_columns(res.notebook, cols)
    import nbformat  # the check itself catches a df.head()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("df.head()", outputs=[nbformat.v4.new_output(
        "execute_result", {"text/html": gc.head()._repr_html_(), "text/plain": repr(gc.head())}, execution_count=1)])])
    nbformat.write(nb, Path(res.run_dir) / "probe.ipynb")
    assert _tables_with_data_columns(Path(res.run_dir) / "probe.ipynb", cols)
    root = Path(mlflow.artifacts.download_artifacts(run_id=res.run_id))
    for f in root.rglob("*.csv"):
        t = pd.read_csv(f)
        shared = [c for c in t.columns if c in cols]
        assert len(shared) < 3 or t.merge(gc[shared].drop_duplicates(), how="inner", on=shared).empty, f
    models = mlflow.search_logged_models(experiment_ids=[res.experiment_id], filter_string=f"source_run_id = '{res.run_id}'", output_format="list")
    assert len(models) == 2  # the chosen model and the other one
    for m in models:
        path = mlflow.artifacts.download_artifacts(m.model_uri)
        ex = Model.load(path).load_input_example(path)
        assert ex is not None and ex.merge(gc.drop_duplicates(), how="inner", on=list(ex.columns)).empty, m.name
    assert len(list(root.rglob("*.csv"))) >= 5
