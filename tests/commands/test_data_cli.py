"""`mlcore data` end to end: a corrupted German credit copy is quarantined exactly, with reasons."""
import pandas as pd
from conftest import cli
from datakit import corrupted_german_credit


def test_validate_quarantines_exactly_the_bad_rows(tmp_path, store):
    raw, bad_rows = corrupted_german_credit(tmp_path / "gc.csv")
    r = cli("data", "validate", "german_credit", "--input", str(tmp_path / "gc.csv"), "--output", str(tmp_path / "out"), env=store)
    assert r.returncode == 1, r.stderr
    assert "rows in 1,001, valid 991, quarantined 10" in r.stdout and "quarantined share 1.00% is above the limit 0.00%" in r.stderr
    q = pd.read_csv(tmp_path / "out" / "quarantine.csv", dtype=str, keep_default_na=False)
    expected = raw.loc[bad_rows]
    key = lambda df: sorted(map(tuple, df[list(raw.columns)].to_numpy().tolist()))
    assert key(q) == key(expected)
    assert "purpose.allowed" in set(q._broken_rules) and "row.unique" in set(q._broken_rules)
    valid = pd.read_parquet(tmp_path / "out" / "valid.parquet")
    assert len(valid) == 991
    r = cli("data", "validate", "german_credit", "--input", str(tmp_path / "gc.csv"), "--output", str(tmp_path / "o2"),
            "--max-quarantined-share", "0.02", env=store)
    assert r.returncode == 0, r.stderr


def test_dataset_level_failure_exits_1(tmp_path, store):
    (tmp_path / "x.csv").write_text("a;b\n1;2\n")
    r = cli("data", "validate", "german_credit", "--input", str(tmp_path / "x.csv"), "--output", str(tmp_path / "o"), env=store)
    assert r.returncode == 1 and "FAILED: dataset 'german_credit', column 'status_of_existing_checking_account'" in r.stderr
    assert not (tmp_path / "o").exists()


def test_list_describe_profile(tmp_path, store):
    r = cli("data", "list", env=store)
    assert r.returncode == 0 and "german_credit" in r.stdout and "loan_book" in r.stdout
    r = cli("data", "describe", "german_credit", env=store)
    assert r.returncode == 0 and "size_bytes:" in r.stdout and "last_modified:" in r.stdout and "creditability" in r.stdout
    r = cli("data", "profile", "german_credit", "--html", str(tmp_path / "p.html"), env=store)
    assert r.returncode == 0 and "missing_share" in r.stdout and "<table" in (tmp_path / "p.html").read_text()
    r = cli("data", "describe", "german_credt", env=store)
    assert r.returncode == 2 and "did you mean 'german_credit'" in r.stderr
