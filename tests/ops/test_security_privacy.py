"""Artifacts of the real flow (train, validate, score, monitor) carry no raw applicant rows nor protected attributes per row."""
import pandas as pd
import pytest
from mlcore.data.datasets import load_german_credit, PROTECTED_ATTRIBUTES
from mlcore.ops.privacy import PrivacyError, check_run, scan_run

pytestmark = pytest.mark.slow


def _data(flow, job):
    "The input dataset of a job: German credit for train/validate, the loan book for score/monitor"
    return load_german_credit() if job in ("train", "validate") else pd.read_parquet(flow["book"])


@pytest.mark.parametrize("job", ["validate", "score", "monitor"])
def test_job_artifacts_show_no_personal_rows(use_flow, job):
    res = check_run(use_flow["runs"][job], _data(use_flow, job), PROTECTED_ATTRIBUTES)
    assert res["scanned"] and any(f.endswith(".ipynb") for f in res["scanned"]), res  # the executed notebook was read


def test_train_artifacts_show_no_personal_rows(use_flow):
    "Everything the train run logged is clean: notebook, reason frequencies and the logged models' input examples"
    res = check_run(use_flow["runs"]["train"], load_german_credit(), PROTECTED_ATTRIBUTES)
    scanned = set(res["scanned"])
    assert {"run/reasons/frequencies.csv", "run/notebook/train.ipynb", "models/model/artifacts/MLmodel"} <= scanned, scanned
    assert any("input_example" in f for f in scanned), scanned  # the logged model's example was read


def test_checker_finds_a_head_printed_by_a_job_and_allows_what_params_allow(use_flow, tmp_path):
    "The checker can fail: a run that prints df.head() and logs a per-applicant table with age is refused"
    import mlflow
    gc = load_german_credit()
    with mlflow.start_run(experiment_id=mlflow.get_run(use_flow["runs"]["train"]).info.experiment_id) as run:
        nb = tmp_path / "job.ipynb"
        text = gc.head(3).to_string()
        nb.write_text(pd.io.json.ujson_dumps({"cells": [{"cell_type": "code", "outputs": [
            {"output_type": "stream", "name": "stdout", "text": text.splitlines(keepends=True)}]}]}))
        mlflow.log_artifact(str(nb), "notebook")
        mlflow.log_text(gc[["credit_amount", "age_in_years", "duration_in_month"]].head(5).to_csv(index=False), "ages.csv")
        mlflow.log_dict({"rows": len(gc), "mean_age": float(gc.age_in_years.mean())}, "summary.json")
    with pytest.raises(PrivacyError, match="ages.csv") as e: check_run(run.info.run_id, gc, PROTECTED_ATTRIBUTES)
    assert "notebook/job.ipynb" in str(e.value)
    res = scan_run(run.info.run_id, gc, PROTECTED_ATTRIBUTES)
    assert {f.kind for f in res["findings"] if f.artifact == "run/ages.csv"} == {"protected"}
    assert {0, 1, 2} <= {f.row for f in res["findings"] if f.artifact == "run/notebook/job.ipynb"}  # (and look-alike rows)
    ok = check_run(run.info.run_id, gc, PROTECTED_ATTRIBUTES, allow=["run/ages.csv", "run/notebook/*.ipynb"])
    assert ok["allowed"] == ["run/ages.csv", "run/notebook/job.ipynb"] and "run/summary.json" in ok["scanned"]
