"""24 months of the synthetic loan book (`mlcore.data.synthetic.generate_loan_book`) through the monitor: stable months stay
green, a population shift turns exactly its characteristic amber/red in the month it starts, data-quality breaks are
flagged as such, concept drift shows in backtesting.

The generator's drift persists from its start month (a quality break too: the feed stays broken until fixed), and a
broken feed withholds retraining, so the quality breaks get books of their own: in the main book they would mask the
concept drift, and the unit change would mask the missing-value spike."""
import pandas as pd
import pytest
from monitor_book import baseline_with_reference, months, score_frame
from mlcore.monitor.window import load_history, monitor_window
from mlcore.monitor.report import publish_window
from mlcore.data.synthetic import generate_loan_book

START, ROWS = "2024-01", 4000   # ~5% default rate: ~200 defaults a month, enough for a stable Gini
SHIFT, CONCEPT = 9, 19          # month indexes where the population shift and the concept drift start
BREAK, QUALITY_MONTHS = 2, 4    # quality-break books: the break starts in month BREAK and persists
MONTHS = months(START, 24)
BREAKS = {"unit": {"column": "credit_amount", "kind": "unit", "factor": 100},   # amounts in cents
          "missing": {"column": "savings_account_and_bonds", "kind": "missing", "share": 0.3}}


DRIFT = {"population_shift": {"column": "duration_in_month", "start": MONTHS[SHIFT], "factor": 1.2},
         # the checking account's effect on default reverses: the model's strongest characteristic now misleads
         "concept_drift": {"column": "status_of_existing_checking_account", "start": MONTHS[CONCEPT], "factor": -1.0}}


@pytest.fixture(scope="module")
def book():
    return generate_loan_book(24, ROWS, start=START, seed=0, drift=DRIFT)


@pytest.fixture(scope="module")
def baseline(book):
    "The German credit baseline calibrated in the large to the book's default rate before the drift (as a bank would)"
    return baseline_with_reference(calibrate_to=book[book.snapshot_month < MONTHS[SHIFT]])


def _monitor(book, b, ms):
    scored = score_frame(book, b["model"], b["cols"], b["offset"])
    return {m: monitor_window(scored[scored.snapshot_month == m], b["reference"], m, target="default", validation_gini=b["test_gini"],
                              model={"name": "credit_pd", "version": "1"}) for m in ms}


@pytest.fixture(scope="module")
def scenario(book, baseline, tmp_path_factory):
    hist = tmp_path_factory.mktemp("history")
    results = {m: (r, publish_window(r, hist)) for m, r in _monitor(book, baseline, MONTHS).items()}
    return {"results": results, "history": hist, "months": MONTHS, "chars": baseline["cols"]}


@pytest.fixture(scope="module")
def quality(baseline):
    "One short book per quality break: {kind: {month: result}}"
    ms = MONTHS[:QUALITY_MONTHS]
    return {k: _monitor(generate_loan_book(QUALITY_MONTHS, 3000, start=START, seed=1,
                                           drift={"quality_break": dict(s, start=ms[BREAK])}), baseline, ms)
            for k, s in BREAKS.items()}


def _table(r):
    return pd.DataFrame(r["stability"]).set_index("column")


def test_schema_of_the_book():
    book = generate_loan_book(2, 50, start=START, seed=1)
    assert list(book.columns[:2]) == ["loan_id", "snapshot_month"] and book.loan_id.dtype == "int64"
    assert set(book.snapshot_month) == {"2024-01", "2024-02"} and set(book["default"]) <= {0, 1}
    assert book.shape[1] == 2 + 20 + 1


def test_stable_months_stay_green(scenario):
    for m in scenario["months"][:SHIFT]:
        r, _ = scenario["results"][m]
        t = _table(r)
        assert (t.level == "green").all(), (m, t[t.level != "green"])
        assert r["decision"]["action"] == "none", (m, r["decision"])


def test_uncalibrated_pd_is_sent_back_in_every_stable_month(book):
    "German credit's 30% default rate applied to a 5% book: the PD over-estimates five-fold, and the monitor says so"
    raw = baseline_with_reference()
    for m, r in _monitor(book, raw, MONTHS[:3]).items():
        bt, d = r["backtest"], r["decision"]
        assert bt["calibration_ratio"] < 0.3 and bt["direction"] == "PD too high", (m, bt["calibration_ratio"])
        assert d["action"] == "retrain" and d["exit_code"] == 20, (m, d)
        assert any(x.startswith("PD over-estimates the default rate") for x in d["reasons"]), (m, d)
        assert any("fail the two-sided Jeffreys test" in x for x in d["reasons"]), (m, d)


def test_population_shift_flags_only_its_characteristic(scenario):
    m = scenario["months"][SHIFT]
    r, _ = scenario["results"][m]
    t = _table(r).loc[scenario["chars"]]
    flagged = t[t.level != "green"]
    assert flagged.index.tolist() == ["duration_in_month"], flagged
    assert flagged.level.iloc[0] in ("amber", "red") and flagged.issue.iloc[0] == "population shift"
    assert r["decision"]["action"] in ("warn", "retrain")
    assert any("duration_in_month" in x for x in r["decision"]["reasons"])
    # the month before is still clean
    assert (_table(scenario["results"][scenario["months"][SHIFT - 1]][0]).level == "green").all()


def test_unit_change_is_flagged_as_data_quality(quality):
    "credit_amount in cents from month BREAK on"
    res = quality["unit"]
    for i, (m, r) in enumerate(res.items()):
        t = _table(r)
        if i < BREAK:
            assert not t.issue.str.startswith("data quality").any(), (m, t[t.issue != ""])
            continue
        # from its start month on, for as long as the feed stays broken
        assert t.issue["credit_amount"] == "data quality: out of range" and t.out_of_range_current["credit_amount"] > 0.9, m
        # the other characteristics are clean (the score follows the broken amounts out of its range: a consequence)
        others = t[t.role == "characteristic"].drop(index=["credit_amount"])
        assert not others.issue.str.startswith("data quality").any(), (m, others[others.issue != ""])
        assert r["decision"]["action"] == "warn", (m, r["decision"])   # never retrain on a broken feed
        assert any("retraining withheld" in x for x in r["decision"]["reasons"]), (m, r["decision"])


def test_missing_value_spike_is_flagged_as_data_quality(quality):
    "30% of savings_account_and_bonds missing from month BREAK on"
    res = quality["missing"]
    for i, (m, r) in enumerate(res.items()):
        t = _table(r)
        if i < BREAK:
            assert not t.issue.str.startswith("data quality").any(), (m, t[t.issue != ""])
            continue
        assert t.issue["savings_account_and_bonds"] == "data quality: missing values", m
        assert t.missing_current["savings_account_and_bonds"] > 0.2, m
        assert not t.drop(index=["savings_account_and_bonds"]).issue.str.startswith("data quality").any(), (m, t[t.issue != ""])
        assert r["decision"]["action"] == "warn", (m, r["decision"])
        assert any("savings_account_and_bonds (missing values)" in x for x in r["decision"]["reasons"]), (m, r["decision"])


def test_concept_drift_shows_in_backtesting(scenario):
    before = [scenario["results"][m][0]["backtest"] for m in scenario["months"][:CONCEPT]]
    after = [scenario["results"][m][0]["backtest"] for m in scenario["months"][CONCEPT:]]
    assert all(b["gini_decline"] < 0.10 for b in before), [b["gini_decline"] for b in before]
    assert all(b["gini_decline"] > 0.20 for b in after), [b["gini_decline"] for b in after]
    assert all(b["defaults"] >= 100 for b in before + after), [b["defaults"] for b in before + after]
    for m in scenario["months"][CONCEPT:]:
        d = scenario["results"][m][0]["decision"]
        assert d["action"] == "retrain" and any("below validation" in x for x in d["reasons"]), d


def test_history_and_reports_per_month(scenario):
    h = load_history(scenario["history"], "credit_pd")
    assert h.window.tolist() == scenario["months"]
    assert (h.action.iloc[:SHIFT] == "none").all() and (h.action.iloc[CONCEPT:] == "retrain").all()
    assert h.gini.iloc[CONCEPT:].max() < h.gini.iloc[:SHIFT].min()       # the trend is queryable
    for m in scenario["months"]:
        page = scenario["results"][m][1]["report"].read_text()
        assert f"window {m}" in page and page.count("data:image/png;base64,") >= 2
