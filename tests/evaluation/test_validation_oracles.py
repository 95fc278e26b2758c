"""The validation battery against independent implementations (scikit-learn, scipy, statsmodels) and hand-computed cases."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score, brier_score_loss
from statsmodels.stats.proportion import proportion_confint, confint_proportions_2indep
from mlcore.evaluation import battery as V


@pytest.fixture(scope="module")
def sample():
    rng = np.random.default_rng(7)
    n = 600
    x = rng.normal(size=n)
    p = 1 / (1 + np.exp(-(x - 1)))
    y = (rng.uniform(size=n) < p).astype(int)
    return y, np.round(p, 2)  # rounding makes ties, which DeLong must handle with midranks


def naive_delong(y, p):
    "DeLong by its definition: O(m·n) kernel comparisons (an independent implementation)"
    pos, neg = p[y == 1], p[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return psi.mean(), np.sqrt(v10.var(ddof=1) / len(pos) + v01.var(ddof=1) / len(neg))


def test_delong_matches_definition_and_sklearn(sample):
    y, p = sample
    a, se = V.delong_auc(y, p)
    a0, se0 = naive_delong(y, p)
    assert a == pytest.approx(roc_auc_score(y, p), abs=1e-12) and a == pytest.approx(a0, abs=1e-12)
    assert se == pytest.approx(se0, rel=1e-9)
    r = V.auc_ci(y, p)
    z = stats.norm.ppf(0.975)
    assert r["auc_lo"] == pytest.approx(a0 - z * se0) and r["gini_hi"] == pytest.approx(2 * (a0 + z * se0) - 1)


def test_bootstrap_ci_agrees_with_delong(sample):
    y, p = sample
    b, d = V.bootstrap_auc_ci(y, p, n_boot=400, seed=1), V.auc_ci(y, p)
    assert b["auc_lo"] == pytest.approx(d["auc_lo"], abs=0.02) and b["auc_hi"] == pytest.approx(d["auc_hi"], abs=0.02)
    assert V.bootstrap_auc_ci(y, p, n_boot=50, seed=3) == V.bootstrap_auc_ci(y, p, n_boot=50, seed=3)  # repeatable


def test_ks_roc_cap(sample):
    y, p = sample
    from mlcore.stats.metrics import ks
    assert ks(y, p) == pytest.approx(stats.ks_2samp(p[y == 1], p[y == 0]).statistic)
    assert V.accuracy_ratio(y, p) == pytest.approx(2 * roc_auc_score(y, p) - 1, abs=1e-9)
    roc = V.roc_data(y, p)
    assert np.trapezoid(roc.tpr, roc.fpr) == pytest.approx(roc_auc_score(y, p))
    cap = V.cap_data(y, p)
    assert cap.population.is_monotonic_increasing and cap.iloc[-1].tolist() == [1.0, 1.0]


def test_auc_decline_hand_case():
    # ECB example numbers: AUC fell from 0.80 to 0.75 with s = 0.02 -> S = 2.5, p = 1 - Phi(2.5) = 0.00621
    t = V.auc_decline_test(0.75, 0.02, 0.80)
    assert t["statistic"] == pytest.approx(2.5) and t["p_value"] == pytest.approx(0.0062097, abs=1e-6)
    assert V.auc_decline_test(0.85, 0.02, 0.80)["p_value"] > 0.99


@pytest.mark.parametrize("n,d,a", [(100, 30, 0.05), (40, 2, 0.01), (1000, 12, 0.05)])
def test_jeffreys_against_statsmodels_interval(n, d, a):
    # the test rejects at level a exactly when the PD is below the lower bound of the (two-sided 2a) Jeffreys interval
    lo = proportion_confint(d, n, alpha=2 * a, method="jeffreys")[0]
    assert V.jeffreys_test(n, d, lo) == pytest.approx(a, rel=1e-6)
    assert V.jeffreys_test(n, d, lo * 0.9) < a < V.jeffreys_test(n, d, lo * 1.1)


@pytest.mark.parametrize("n,d,pd_", [(100, 30, 0.2), (50, 0, 0.1), (20, 20, 0.9), (300, 90, 0.3)])
def test_binomial_against_scipy(n, d, pd_):
    assert V.binomial_test(n, d, pd_) == pytest.approx(stats.binomtest(d, n, pd_, alternative="greater").pvalue, rel=1e-9)


def test_hosmer_lemeshow_hand_case():
    # groups of 10: (E=2, O=4) -> 4/1.6 = 2.5; (E=5, O=5) -> 0; (E=8, O=6) -> 4/1.6 = 2.5; chi2 = 5 on 1 df
    p = np.repeat([0.2, 0.5, 0.8], 10)
    y = np.r_[np.ones(4), np.zeros(6), np.ones(5), np.zeros(5), np.ones(6), np.zeros(4)]
    hl = V.hosmer_lemeshow(y, p, groups=np.repeat([0, 1, 2], 10))
    assert hl["statistic"] == pytest.approx(5.0) and hl["df"] == 1
    assert hl["p_value"] == pytest.approx(0.0253473, abs=1e-6)
    assert V.hosmer_lemeshow(y, p, groups=3)["statistic"] == pytest.approx(5.0)  # quantile groups find the same three


def test_calibration_table_and_brier(sample):
    y, p = sample
    g = V.assign_grades(p, {"A": 0.1, "B": 0.3, "C": 0.6, "D": 1.0})
    t = V.calibration_table(y, p, g, order=["A", "B", "C", "D"]).set_index("grade")
    ref = pd.DataFrame({"g": g, "y": y, "p": p}).groupby("g").agg(n=("y", "size"), d=("y", "sum"), pd=("p", "mean"))
    for grade, r in ref.iterrows():
        assert (t.loc[grade, "n"], t.loc[grade, "defaults"]) == (r.n, r.d)
        assert t.loc[grade, "pd"] == pytest.approx(r.pd) and t.loc[grade, "odr"] == pytest.approx(r.d / r.n)
    assert t.loc["portfolio", "n"] == len(y)
    assert V.brier(y, p) == pytest.approx(brier_score_loss(y, p))


def test_grades_herfindahl_migration():
    assert list(V.assign_grades([0.0, 0.1, 0.1001, 0.99, 1.0], {"A": 0.1, "B": 0.5, "C": 1.0})) == ["A", "A", "B", "C", "C"]
    h = V.herfindahl(["A"] * 6 + ["B"] * 3 + ["C"])
    assert h["hhi"] == pytest.approx(0.36 + 0.09 + 0.01)
    assert h["hhi_normalised"] == pytest.approx((0.46 - 1 / 3) / (2 / 3))
    before = pd.Series(["A", "B", "B", "C"], index=list("wxyz"))
    after = pd.Series(["A", "C", "B", "C"], index=list("wxyz"))
    m = V.migration_matrix(before, after, order=["A", "B", "C"], normalize=True)
    assert m.loc["B"].tolist() == [0, 0.5, 0.5] and m.loc["A", "A"] == 1


def test_psi_csi_hand_case():
    dev = pd.DataFrame({"s": [0.1] * 50 + [0.9] * 50})
    cur = pd.DataFrame({"s": [0.1] * 40 + [0.9] * 60})
    st = V.stability_table(dev, cur, ["s"], n_bins=2)
    assert st.psi[0] == pytest.approx((0.6 - 0.5) * np.log(0.6 / 0.5) + (0.4 - 0.5) * np.log(0.4 / 0.5))


def test_soundness_iv_by_hand():
    bins = [{"label": "a", "woe": np.log((80 / 200) / (20 / 100)), "events": 20, "non_events": 80},
            {"label": "b", "woe": np.log((120 / 200) / (80 / 100)), "events": 80, "non_events": 120}]
    s = V.soundness({"x": {"kind": "numeric", "bins": bins, "coefficient": -1.0}})
    iv = (0.4 - 0.2) * np.log(0.4 / 0.2) + (0.6 - 0.8) * np.log(0.6 / 0.8)
    assert s.iv[0] == pytest.approx(iv) and s.status[0] == "pass" and bool(s.monotone[0])


def test_fairness_rates_and_gap_ci(sample):
    y, p = sample
    grp = np.where(np.arange(len(y)) % 3 == 0, "a", "b")
    per, gaps = V.fairness_table(y, p, {"g": grp}, cutoff=0.4)
    per = per.set_index("group")
    for g in ("a", "b"):
        m = grp == g
        assert per.loc[g, "approval_rate"] == pytest.approx((p[m] < 0.4).mean())
        assert per.loc[g, "false_rejection_rate"] == pytest.approx((p[m & (y == 0)] >= 0.4).mean())
        assert per.loc[g, "false_approval_rate"] == pytest.approx((p[m & (y == 1)] < 0.4).mean())
    d, lo, hi = V.diff_ci(45, 120, 30, 110, method="wald")
    slo, shi = confint_proportions_2indep(45, 120, 30, 110, method="wald", compare="diff")
    assert (lo, hi) == pytest.approx((slo, shi)) and d == pytest.approx(45 / 120 - 30 / 110)
    r = gaps.set_index("rate").loc["approval_rate"]
    assert r.gap == pytest.approx(abs(per.loc["a", "approval_rate"] - per.loc["b", "approval_rate"]))


def test_gates_and_config_refusals(tmp_path):
    from mlcore.core.config import ConfigError
    cfg = V.load_validation_config("params/credit_pd/thresholds.yaml")
    blocking = {k for k, r in cfg["thresholds"].items() if r.get("blocking")}
    assert {"auc", "score_psi", "jeffreys_portfolio", "soundness"} <= blocking
    f = tmp_path / "t.yaml"
    f.write_text("thresholds:\n  auc: {green: 0.7, amber: 0.6, better: upwards}\n")
    with pytest.raises(ConfigError, match="thresholds.auc.better"): V.load_validation_config(f)
    f.write_text("thresholds: {}\n")
    with pytest.raises(ConfigError, match="no threshold rules"): V.load_validation_config(f)
    g = V.evaluate_gates({"auc": 0.55, "psi": 0.3}, {"auc": {"green": 0.7, "amber": 0.6, "blocking": True},
                                                     "psi": {"better": "lower", "green": 0.1, "amber": 0.25}})
    assert not g["passed"] and g["blocking_failures"] == ["auc"] and g["overall"] == "red"


@pytest.mark.parametrize("x,n", [(0, 10), (3, 40), (20, 20), (57, 300)])
def test_wilson_against_statsmodels(x, n):
    assert V.wilson_ci(x, n) == pytest.approx(proportion_confint(x, n, alpha=0.05, method="wilson"), abs=1e-12)


@pytest.mark.parametrize("x1,n1,x2,n2", [(45, 120, 30, 110), (0, 25, 4, 30), (19, 20, 10, 40), (300, 1000, 280, 900)])
def test_newcombe_gap_against_statsmodels(x1, n1, x2, n2):
    d, lo, hi = V.diff_ci(x1, n1, x2, n2)  # default: Newcombe's hybrid score interval
    slo, shi = confint_proportions_2indep(x1, n1, x2, n2, method="newcomb", compare="diff")
    assert d == pytest.approx(x1 / n1 - x2 / n2) and (lo, hi) == pytest.approx((slo, shi), abs=1e-12)


def test_fairness_against_hand_computation_and_fairlearn():
    "Group rates by hand (boolean masks) and the gaps against fairlearn's own MetricFrame.difference()"
    from fairlearn.metrics import MetricFrame, selection_rate, false_positive_rate, false_negative_rate
    rng = np.random.default_rng(11)
    n = 900
    g = rng.choice(["<25", "25-34", "35-49", "50+"], n, p=[.2, .3, .3, .2])
    p = np.clip(rng.beta(2, 5, n) + 0.08 * (g == "<25"), 0, 1)
    y = (rng.uniform(size=n) < p).astype(int)
    cut = 0.3
    per, gaps = V.fairness_table(y, p, {"age_band": g}, cutoff=cut, min_group=20)
    per = per.set_index("group")
    for grp in np.unique(g):
        m = g == grp
        rej, good, bad = p[m] >= cut, y[m] == 0, y[m] == 1
        hand = {"default_rate": y[m].mean(), "approval_rate": (~rej).mean(),
                "false_rejection_rate": rej[good].mean(), "false_approval_rate": (~rej[bad]).mean()}
        for rate, val in hand.items():
            assert per.loc[grp, rate] == pytest.approx(val, abs=1e-12), (grp, rate)
        x_fr, n_fr = int(rej[good].sum()), int(good.sum())
        assert (per.loc[grp, "false_rejection_rate_lo"], per.loc[grp, "false_rejection_rate_hi"]) == \
            pytest.approx(proportion_confint(x_fr, n_fr, method="wilson"), abs=1e-12)
    # every group is large here, so our gap (highest - lowest group) is fairlearn's between-groups difference
    rejected = (p >= cut).astype(int)
    mf = MetricFrame(metrics={"approval_rate": lambda t, q: 1 - selection_rate(t, q), "false_rejection_rate": false_positive_rate,
                              "false_approval_rate": false_negative_rate, "default_rate": lambda t, q: np.mean(t)},
                     y_true=y, y_pred=rejected, sensitive_features=g)
    gaps = gaps.set_index("rate")
    for rate, diff in mf.difference().items():
        assert gaps.loc[rate, "gap"] == pytest.approx(diff, abs=1e-12), rate
        assert gaps.loc[rate, "gap_lo"] < gaps.loc[rate, "gap"] < gaps.loc[rate, "gap_hi"]
    assert gaps.loc["default_rate", "highest"] == "<25"  # the group whose risk was raised


def test_fairness_small_groups_and_missing_denominators():
    y = np.array([1] * 5 + [0] * 25 + [0] * 10)
    p = np.r_[np.full(5, .8), np.full(25, .1), np.full(10, .6)]
    g = np.array(["a"] * 30 + ["b"] * 10)  # b has no defaulters and only 10 rows
    per, gaps = V.fairness_table(y, p, {"x": g}, cutoff=0.5, min_group=20)
    per = per.set_index("group")
    assert np.isnan(per.loc["b", "false_approval_rate"]) and per.loc["b", "n_bad"] == 0  # no defaulters: no rate, not 0
    assert per.loc["b", "false_rejection_rate"] == 1.0
    assert gaps.empty  # b is below min_group, so no attribute has two comparable groups


def test_migration_hand_case_and_mwb():
    # 10 obligors, grades A (best) .. C; rows = first snapshot
    panel = pd.DataFrame({"loan_id": list(range(10)) * 2, "snapshot_month": ["2024-01"] * 10 + ["2024-02"] * 10,
                          "grade": list("AAAAABBBCC") + list("AAABCABBBC")})
    m = V.snapshot_migration(panel, "loan_id", "snapshot_month", order=["A", "B", "C"])
    assert m["counts"].to_numpy().tolist() == [[3, 1, 1], [1, 2, 0], [0, 1, 1]]
    assert m["rates"].loc["A"].tolist() == pytest.approx([0.6, 0.2, 0.2]) and m["rates"].sum(axis=1).tolist() == pytest.approx([1, 1, 1])
    s = m["summary"]
    assert (s["diagonal"], s["downgrades"], s["upgrades"], s["beyond_one_grade"]) == pytest.approx((0.6, 0.2, 0.2, 0.1))
    # ECB MWB by its formula with 1-based grades i, N_i obligors in grade i, p_ij rates (K = 3)
    N, P, K = m["counts"].to_numpy(float), m["rates"].to_numpy(), 3
    Ni = N.sum(axis=1)
    up = sum(abs(i - j) * Ni[i - 1] * P[i - 1, j - 1] for i in range(1, K) for j in range(i + 1, K + 1))
    mup = sum(max(abs(i - K), abs(i - 1)) * Ni[i - 1] * P[i - 1, i:].sum() for i in range(1, K))
    lo = sum(abs(i - j) * Ni[i - 1] * P[i - 1, j - 1] for i in range(2, K + 1) for j in range(1, i))
    mlo = sum(max(abs(i - K), abs(i - 1)) * Ni[i - 1] * P[i - 1, :i - 1].sum() for i in range(2, K + 1))
    assert s["mwb_upper"] == pytest.approx(up / mup) == pytest.approx(0.75)
    assert s["mwb_lower"] == pytest.approx(lo / mlo) == pytest.approx(2 / 3)
    assert V.migration_summary(pd.DataFrame(np.eye(3) * 4))["mwb_upper"] == 0.0  # nobody moves
    one = V.snapshot_migration(panel[panel.snapshot_month == "2024-01"], "loan_id", "snapshot_month")
    assert one == {"status": "not applicable: one snapshot (2024-01)"}


def test_sample_gates_both_samples():
    rules = {"auc": {"green": 0.7, "amber": 0.6, "blocking": True},
             "fp": {"green": 1, "amber": 1, "blocking": True, "samples": ["test"]}}
    g = V.evaluate_sample_gates({"test": {"auc": 0.75, "fp": 1.0}, "oot": {"auc": 0.55}}, rules)
    assert g["blocking_failures"] == ["auc@oot"] and not g["passed"]
    assert g["findings"].set_index("gate").loc["auc@oot", "sample"] == "oot"
    assert V.evaluate_sample_gates({"test": {"auc": 0.75, "fp": 1.0}}, rules)["passed"]


def test_correlations_against_scipy():
    from mlcore.data.datasets import load_german_credit
    gc = load_german_credit()
    cols = ["duration_in_month", "credit_amount", "age_in_years", "installment_rate_in_percentage_of_disposable_income", "purpose"]
    t = V.correlations(gc, cols, limit=0.3)
    assert "purpose" not in set(t.a) | set(t.b) and len(t) == 6  # 4 numeric characteristics -> 6 pairs
    for r in t.itertuples():
        rho = stats.spearmanr(gc[r.a], gc[r.b]).statistic
        assert r.rho == pytest.approx(rho, abs=1e-12) and r.above_limit == (abs(rho) > 0.3)
    assert list(t.rho.abs()) == sorted(t.rho.abs(), reverse=True)
