"""24 months of a loan book through the monitor: stable months stay green, a population shift turns exactly its
characteristic amber/red in the month it starts, data-quality breaks are flagged as such, concept drift shows in
backtesting. The book is a stand-in (tests/monitor_book.py) with the synthetic loan book's schema and drift knobs."""
import pandas as pd
import pytest
from monitor_book import baseline_with_reference, months, score_frame, standin_book
from mlcore.monitoring import load_history, monitor_window
from mlcore.monitor_report import publish_window

SHIFT, CENTS, MISSING, CONCEPT = 9, 15, 17, 19   # month indexes where each knob starts


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    b = baseline_with_reference()
    book = standin_book(24, 1500, seed=0, population_shift=(SHIFT, "duration_in_month", 0.5),
                        unit_change=(CENTS, "credit_amount", 100), missing_spike=(MISSING, "savings_account_and_bonds", 0.3),
                        concept_drift=(CONCEPT, 0.7))
    scored = score_frame(book, b["model"], b["cols"])
    hist = tmp_path_factory.mktemp("history")
    results = {}
    for m in months():
        r = monitor_window(scored[scored.snapshot_month == m], b["reference"], m, validation_gini=b["test_gini"],
                           model={"name": "credit_pd", "version": "1"})
        results[m] = (r, publish_window(r, hist))
    return {"results": results, "history": hist, "months": months(), "chars": b["cols"]}


def _table(r):
    return pd.DataFrame(r["stability"]).set_index("column")


def test_schema_of_the_book():
    book = standin_book(2, 50, seed=1)
    assert list(book.columns[:2]) == ["loan_id", "snapshot_month"] and book.loan_id.dtype == "int64"
    assert set(book.snapshot_month) == {"2024-01", "2024-02"} and set(book["default"]) <= {0, 1}
    assert book.shape[1] == 2 + 20 + 1


def test_stable_months_stay_green(scenario):
    for m in scenario["months"][:SHIFT]:
        r, _ = scenario["results"][m]
        t = _table(r)
        assert (t.level == "green").all(), (m, t[t.level != "green"])
        assert r["decision"]["action"] == "none", (m, r["decision"])


def test_population_shift_flags_only_its_characteristic(scenario):
    m = scenario["months"][SHIFT]
    r, _ = scenario["results"][m]
    t = _table(r).loc[scenario["chars"]]
    flagged = t[t.level != "green"]
    assert flagged.index.tolist() == ["duration_in_month"], flagged
    assert flagged.level.iloc[0] in ("amber", "red") and flagged.issue.iloc[0] == "population shift"
    assert r["decision"]["action"] in ("warn", "retrain")
    assert any("duration_in_month" in x for x in r["decision"]["reasons"])


def test_data_quality_breaks_are_flagged_as_such(scenario):
    r, _ = scenario["results"][scenario["months"][CENTS]]
    t = _table(r)
    assert t.issue["credit_amount"] == "data quality: out of range" and t.out_of_range_current["credit_amount"] > 0.9
    assert r["decision"]["action"] == "warn"   # never retrain on a broken feed
    assert any("retraining withheld" in x for x in r["decision"]["reasons"])
    r, _ = scenario["results"][scenario["months"][MISSING]]
    t = _table(r)
    assert t.issue["savings_account_and_bonds"] == "data quality: missing values"
    assert t.missing_current["savings_account_and_bonds"] > 0.2
    assert not t.drop(index=["savings_account_and_bonds"]).issue.str.startswith("data quality").any()
    # the month after a break is clean again
    r, _ = scenario["results"][scenario["months"][CENTS + 1]]
    assert not _table(r).issue.str.startswith("data quality").any()


def test_concept_drift_shows_in_backtesting(scenario):
    before = [scenario["results"][m][0]["backtest"] for m in scenario["months"][:CONCEPT]]
    after = [scenario["results"][m][0]["backtest"] for m in scenario["months"][CONCEPT:]]
    assert all(b["gini_decline"] < 0.10 for i, b in enumerate(before) if i != CENTS), [b["gini_decline"] for b in before]
    assert all(b["gini_decline"] > 0.20 for b in after), [b["gini_decline"] for b in after]
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
