"""Train -> validate -> approve by a second person -> champion, from the CLI, with every refusal; report and card in Chromium."""
import json, os, shutil, subprocess
from pathlib import Path
import mlflow
import pytest
from mlflow.tracking import MlflowClient
from conftest import cli
from mlcore.registry.integrity import TAG

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    "One store: version 1 trained by alice and validated (passed) by carol; version 2 failed; version 3 unvalidated"
    d = tmp_path_factory.mktemp("governance")
    uri = f"sqlite:///{d}/mlflow.db"
    # the registry URI is set too: mlflow writes earlier tests' URIs back into os.environ
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri, "MLCORE_ARTIFACT_ROOT": str(d / "artifacts"),
           "MLCORE_RUNS_DIR": str(d / "runs"), "MLCORE_AUDIT_LOG": str(d / "audit" / "lifecycle.jsonl")}
    env.pop("MLFLOW_RUN_ID", None)
    mp = pytest.MonkeyPatch()
    for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLCORE_ARTIFACT_ROOT", "MLCORE_RUNS_DIR", "MLCORE_AUDIT_LOG"): mp.setenv(k, env[k])
    mp.delenv("MLFLOW_RUN_ID", raising=False)
    r = cli("run", "train", "-f", "params/credit_pd/train.yaml", env={**env, "MLCORE_USER": "alice"})
    assert r.returncode == 0, r.stdout + r.stderr
    mlflow.set_tracking_uri(uri); mlflow.set_registry_uri(uri)
    c = MlflowClient()
    v1 = c.get_model_version("credit_pd", "1")
    for _ in range(2):  # two more versions of the same model, registered as training would (cheaper than training twice)
        mv = c.create_model_version("credit_pd", v1.source, run_id=v1.run_id)
        for k in ("mlcore.trained_by", "mlcore.run_id", TAG): c.set_model_version_tag("credit_pd", str(mv.version), k, v1.tags[k])
    passed = cli("run", "validate", "-f", "params/credit_pd/validate.yaml", "-p", "model=credit_pd/1", env={**env, "MLCORE_USER": "carol"})
    yield {"env": env, "dir": d, "passed": passed}
    mp.undo()


@pytest.fixture(autouse=True)
def _uri(flow, monkeypatch):
    for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLCORE_ARTIFACT_ROOT", "MLCORE_RUNS_DIR", "MLCORE_AUDIT_LOG"):
        monkeypatch.setenv(k, flow["env"][k])
    mlflow.set_tracking_uri(flow["env"]["MLFLOW_TRACKING_URI"]); mlflow.set_registry_uri(flow["env"]["MLFLOW_TRACKING_URI"])


def aliases(): return {k: str(v) for k, v in MlflowClient().get_registered_model("credit_pd").aliases.items()}
def as_(user, *args, flow): return cli(*args, env={**flow["env"], "MLCORE_USER": user})


def test_validation_passes_and_sets_challenger(flow):
    r = flow["passed"]
    assert r.returncode == 0, r.stdout + r.stderr
    v = MlflowClient().get_model_version("credit_pd", "1")
    assert v.tags["mlcore.validation.status"] == "passed" and v.tags["mlcore.validation.by"] == "carol"
    assert aliases()["challenger"] == "1"
    run = MlflowClient().get_run(v.tags["mlcore.validation.run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["mlcore.job"] == "validate"
    assert run.data.metrics["val_auc"] > 0.6
    summary = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/validation/summary.json")
    assert summary["passed"] and summary["lineage"]["fingerprint_now"] == summary["lineage"]["fingerprint_at_training"]
    # German credit with a random split has no out-of-time sample and no snapshots: the evidence says so plainly
    assert summary["values_oot"] is None and summary["out_of_time"].startswith(
        "no out-of-time sample: the model was trained with split_strategy=random on german_credit")
    assert summary["migration"]["status"] == "not applicable: one snapshot (the data has no 'snapshot_month' column)"
    page = mlflow.artifacts.load_text(v.tags["mlcore.validation.report"])
    assert "No out-of-time sample: the model was trained with split_strategy=random" in page
    assert page.count("<strong>Out-of-time: not applicable</strong>") >= 3 and "<strong>not applicable: one snapshot" in page
    assert v.tags["mlcore.validation.report"] == f"runs:/{run.info.run_id}/validation/report.html"
    assert v.tags["mlcore.model_card"].endswith("model_card/model_card.html")


def test_failed_validation_raises_and_records_why(flow, monkeypatch):
    # the job notebook's last step is `raise_if_blocked`, so a failed gate fails the job (the runner marks it FAILED)
    from mlcore.workflows.validate import validate_version, raise_if_blocked, ValidationFailed
    from mlcore.evaluation.battery import load_validation_config
    monkeypatch.setenv("MLCORE_USER", "carol")
    cfg = load_validation_config("params/credit_pd/thresholds.yaml")
    cfg["thresholds"]["auc"].update(green=0.99, amber=0.98)
    cfg["battery"]["n_boot"] = 50
    with mlflow.start_run(experiment_id=MlflowClient().get_experiment_by_name("credit_pd").experiment_id):
        res = validate_version("credit_pd/2", cfg["battery"], cfg["thresholds"], cfg["master_scale"])
        with pytest.raises(ValidationFailed, match=r"credit_pd version 2 failed validation; blocking gate\(s\): auc: auc = 0\.\d+ \(amber limit 0\.98\)"):
            raise_if_blocked(res)
    v = MlflowClient().get_model_version("credit_pd", "2")
    assert v.tags["mlcore.validation.status"] == "failed" and v.tags["mlcore.validation.failures"] == "auc"
    assert aliases().get("challenger") == "1"  # version 2 did not become challenger


def test_refusals(flow, monkeypatch, capsys):
    from mlcore.commands.main import main
    r = as_("alice", "approve", "credit_pd", "1", "--comment", "my own model", flow=flow)  # through the installed command
    assert r.returncode == 1 and "refused: separation of duties: alice trained credit_pd version 1" in r.stderr
    monkeypatch.setenv("MLCORE_USER", "bob")
    cases = [(["approve", "credit_pd", "1", "--by", "alice", "--comment", "on alice's behalf"], "separation of duties: alice trained"),
             (["approve", "credit_pd", "2", "--comment", "ok"], "credit_pd version 2 failed validation (auc)"),
             (["approve", "credit_pd", "3", "--comment", "ok"], "credit_pd version 3 has not been validated"),
             (["approve", "credit_pd", "99", "--comment", "ok"], "model 'credit_pd' has no version 99; versions: 1, 2, 3"),
             (["approve", "no_model", "1", "--comment", "ok"], "there is no registered model 'no_model'"),
             (["approve", "credit_pd", "1", "--comment", " "], "needs a comment"),
             (["reject", "credit_pd", "99", "--comment", "no"], "has no version 99")]
    for args, msg in cases:
        code = main(args)
        err = capsys.readouterr().err
        assert code == 1 and msg in err, (args, err)
    assert "champion" not in aliases()


def test_reject_then_approve_by_second_person(flow, capsys):
    from mlcore.commands.main import main
    assert main(["reject", "credit_pd", "2", "--by", "dave", "--comment", "AUC far below target"]) == 0
    r = as_("bob", "approve", "credit_pd", "1", "--comment", "fit for use; calibration findings accepted", flow=flow)
    assert r.returncode == 0, r.stderr
    assert "champion: (none) -> 1" in r.stdout and aliases()["champion"] == "1"
    v = MlflowClient().get_model_version("credit_pd", "1")
    assert v.tags["mlcore.approval.by"] == "bob" and v.tags["mlcore.approval.status"] == "approved"
    assert main(["reject", "credit_pd", "1", "--by", "dave", "--comment", "changed my mind"]) == 1
    assert "is the champion" in capsys.readouterr().err
    assert main(["audit", "verify"]) == 0 and "intact" in capsys.readouterr().out
    assert main(["audit", "champion", "credit_pd", "--at", "2100-01-01"]) == 0 and "version 1" in capsys.readouterr().out
    assert main(["audit", "champion", "credit_pd", "--at", "2000-01-01"]) == 0 and "none" in capsys.readouterr().out
    assert main(["audit", "log", "credit_pd"]) == 0
    r = capsys.readouterr()
    events = [l.split()[2] for l in r.out.splitlines()]
    assert events == ["registered", "validated", "registered", "validated", "rejected", "approved", "champion_moved"], r.out
    assert "by dave: AUC far below target" in r.out
    card = mlflow.artifacts.load_text(v.tags["mlcore.model_card"])
    assert "approved" in card and "bob" in card and "Intended use" in card


def chromium(url, out, *extra):
    tmp = out.parent / f"profile-{out.stem}"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp}", *extra, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium not installed at /usr/bin/chromium (apt-get install -y chromium)")
@pytest.mark.parametrize("what", ["report", "card"])
def test_renders_in_chromium(flow, tmp_path, what):
    from PIL import Image
    v = MlflowClient().get_model_version("credit_pd", "1")
    uri = v.tags["mlcore.validation.report"] if what == "report" else v.tags["mlcore.model_card"]
    page = mlflow.artifacts.load_text(uri)
    # count the images the browser actually decoded, as a reader would see them
    probe = "<script>addEventListener('load',()=>{document.body.dataset.loaded=[...document.images].filter(i=>i.complete&&i.naturalWidth>0).length})</script>"
    f = tmp_path / f"{what}.html"
    f.write_text(page.replace("</body>", probe + "</body>"))
    dom = chromium(f.as_uri(), f, "--virtual-time-budget=5000", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    shot = tmp_path / f"{what}.png"
    r = chromium(f.as_uri(), shot, f"--screenshot={shot}", "--window-size=1280,2000")
    assert r.returncode == 0 and shot.exists(), r.stderr[-2000:]
    img = Image.open(shot).convert("L")
    assert img.size == (1280, 2000)
    lo, hi = img.getextrema()
    assert hi - lo > 100 and len(set(img.getdata())) > 20  # not a blank page
    if what == "report":
        loaded = int(dom.stdout.split('data-loaded="')[1].split('"')[0])
        assert loaded >= 5 and loaded == page.count("<img"), loaded
        assert "Validation report: credit_pd version 1" in dom.stdout and "Reproducibility manifest" in dom.stdout
        assert "http://" not in page and "https://" not in page  # self-contained
    else:
        assert "Model card: credit_pd version 1" in dom.stdout and "<table>" in dom.stdout
    shutil.copy(shot, flow["dir"] / shot.name)


def test_validation_refuses_an_unsealed_or_tampered_version(flow, monkeypatch):
    "Validators judge the files that were sealed at registration: an unsealed version is refused before any scoring"
    from mlcore.workflows.validate import validate_version
    from mlcore.registry.integrity import ModelIntegrityError
    from mlcore.evaluation.battery import load_validation_config
    monkeypatch.setenv("MLCORE_USER", "carol")
    c = MlflowClient()
    v1 = c.get_model_version("credit_pd", "1")
    mv = c.create_model_version("credit_pd", v1.source, run_id=v1.run_id)
    for k in ("mlcore.trained_by", "mlcore.run_id"): c.set_model_version_tag("credit_pd", str(mv.version), k, v1.tags[k])
    cfg = load_validation_config("params/credit_pd/thresholds.yaml")
    try:
        with mlflow.start_run(experiment_id=c.get_experiment_by_name("credit_pd").experiment_id):
            with pytest.raises(ModelIntegrityError, match=f"credit_pd version {mv.version} was never sealed"):
                validate_version(f"credit_pd/{mv.version}", cfg["battery"], cfg["thresholds"], cfg["master_scale"])
            c.set_model_version_tag("credit_pd", str(mv.version), TAG, "0" * 64)  # a digest the files do not have
            with pytest.raises(ModelIntegrityError, match="does not match"):
                validate_version(f"credit_pd/{mv.version}", cfg["battery"], cfg["thresholds"], cfg["master_scale"])
        assert "mlcore.validation.status" not in c.get_model_version("credit_pd", str(mv.version)).tags
    finally:
        c.delete_model_version("credit_pd", str(mv.version))
