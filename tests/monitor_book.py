"""Test support for monitoring: a baseline PD model with its frozen reference, scoring, and a small stand-in for the
synthetic loan book with the same schema and drift knobs.

The 24-month scenario (tests/monitor/test_monitor_scenario.py) runs on the real generator, `mlcore.data.synthetic.generate_loan_book`.
`standin_book` remains for the quick two-month cases in tests/monitor/test_monitor_job.py and tests/stats/test_drift_engines.py,
which need a break in one month only (the generator's breaks persist from their start month)."""
import math
import numpy as np
import pandas as pd
from scipy.optimize import brentq
from mlcore.data.datasets import load_german_credit, PROTECTED_ATTRIBUTES, TARGET
from mlcore.models.baseline import feature_columns, stratified_split, baseline_pipeline
from mlcore.stats.drift import fit_reference
from mlcore.stats.metrics import gini

GRADE_CUTS = [0, 0.05, 0.10, 0.20, 0.35, 0.55, 1.0]
GRADES = list("ABCDEF")


def months(start: str = "2024-01", n: int = 24) -> list:
    return [str(p) for p in pd.period_range(start, periods=n, freq="M")]


def _raw_pd(df: pd.DataFrame, model, cols: list) -> np.ndarray:
    X = df[cols].copy()
    for c in X.columns:  # a missing categorical value scores as an unseen category (one-hot ignores it)
        if X[c].dtype == object: X[c] = X[c].fillna("__missing__")
    X = X.fillna(X.median(numeric_only=True))
    return np.clip(model.predict_proba(X)[:, 1], 1e-6, 1 - 1e-6)


def _shift(p: np.ndarray, offset: float) -> np.ndarray:
    return 1 / (1 + np.exp(-(np.log(p / (1 - p)) + offset)))


def intercept_offset(df: pd.DataFrame, model, cols: list, rate: float) -> float:
    "Log-odds shift that makes the mean PD over `df` equal `rate` (calibration in the large to a portfolio's rate)"
    p = _raw_pd(df, model, cols)
    return float(brentq(lambda o: _shift(p, o).mean() - rate, -20, 20))


def score_frame(df: pd.DataFrame, model, cols: list, offset: float = 0.0) -> pd.DataFrame:
    "Add pd (shifted by `offset` in log-odds), score (points: 600 at odds 50:1, 20 points to double the odds) and grade"
    p = np.clip(_shift(_raw_pd(df, model, cols), offset), 1e-6, 1 - 1e-6)
    score = 600 + 20 / math.log(2) * (np.log((1 - p) / p) - math.log(50))
    grade = pd.cut(p, GRADE_CUTS, labels=GRADES).astype(str)
    return df.assign(pd=p, score=np.round(score, 1), grade=grade)


def baseline_with_reference(seed: int = 42, calibrate_to: pd.DataFrame | None = None) -> dict:
    """Train the baseline on German credit and freeze the reference over characteristics + score + grade; with
    `calibrate_to` (a book with outcomes), PDs are shifted in log-odds to that book's default rate (`offset`)"""
    gc = load_german_credit()
    cols = feature_columns(gc, TARGET, PROTECTED_ATTRIBUTES)
    num = [c for c in cols if pd.api.types.is_numeric_dtype(gc[c])]
    cat = [c for c in cols if c not in num]
    train, test = stratified_split(gc, TARGET, 0.3, seed)
    model = baseline_pipeline(num, cat, seed=seed).fit(train[cols], train[TARGET])
    offset = 0.0 if calibrate_to is None else intercept_offset(calibrate_to, model, cols, calibrate_to[TARGET].mean())
    scored_train = score_frame(train, model, cols, offset)
    reference = fit_reference(scored_train, cols + ["score", "grade"])
    test_gini = gini(test[TARGET], model.predict_proba(test[cols])[:, 1])
    return {"model": model, "cols": cols, "reference": reference, "test_gini": test_gini, "data": gc, "offset": offset}


def standin_book(n_months: int = 24, rows: int = 1500, seed: int = 0, start: str = "2024-01",
                 population_shift: tuple | None = None,   # (first month index, column, share of rows moved up)
                 unit_change: tuple | None = None,        # (month index, column, factor)
                 missing_spike: tuple | None = None,      # (month index, column, share set missing)
                 concept_drift: tuple | None = None       # (first month index, share of outcomes made random)
                ) -> pd.DataFrame:
    "German credit resampled month by month (schema of the synthetic loan book) with drift knobs"
    rng = np.random.default_rng(seed)
    gc = load_german_credit()
    parts = []
    for i, m in enumerate(months(start, n_months)):
        d = gc.sample(rows, replace=True, random_state=int(rng.integers(1 << 31))).reset_index(drop=True)
        if population_shift and i >= population_shift[0]:
            col, share = population_shift[1], population_shift[2]
            upper = gc[col][gc[col] >= gc[col].quantile(0.75)].to_numpy()
            moved = rng.uniform(size=rows) < share
            d.loc[moved, col] = rng.choice(upper, moved.sum())
        if unit_change and i == unit_change[0]:
            d[unit_change[1]] = d[unit_change[1]] * unit_change[2]
        if missing_spike and i == missing_spike[0]:
            d[missing_spike[1]] = d[missing_spike[1]].astype(object)
            d.loc[rng.uniform(size=rows) < missing_spike[2], missing_spike[1]] = None
        if concept_drift and i >= concept_drift[0]:
            noise = rng.uniform(size=rows) < concept_drift[1]
            d.loc[noise, TARGET] = (rng.uniform(size=noise.sum()) < gc[TARGET].mean()).astype("int64")
        d.insert(0, "snapshot_month", m)
        d.insert(0, "loan_id", np.arange(i * rows, (i + 1) * rows, dtype="int64"))
        parts.append(d)
    return pd.concat(parts, ignore_index=True)
