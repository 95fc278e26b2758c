"""Test data shared by the data tests and the data command-line tests."""
import pandas as pd
from mlcore.data.datasets import german_credit_path


def corrupted_german_credit(path):
    "German credit with nine corrupted rows and one duplicate; returns the raw frame written"
    raw = pd.read_csv(german_credit_path(), dtype=str, keep_default_na=False)
    edits = {3: ("purpose", "yacht"), 10: ("credit_amount", "-500"), 20: ("credit_amount", "5000000"),
             30: ("duration_in_month", "999"), 40: ("age_in_years", "17"), 41: ("age_in_years", "101"),
             50: ("creditability", ""), 60: ("creditability", "maybe"), 80: ("duration_in_month", "0")}
    for i, (c, val) in edits.items(): raw.loc[i, c] = val
    raw = pd.concat([raw, raw.iloc[[70]]], ignore_index=True)
    raw.to_csv(path, index=False)
    return raw, sorted(edits) + [len(raw) - 1]
