"""Models are loaded only from the registry by NAME@ALIAS or NAME/VERSION, and only when their files match the digest
recorded at registration: the service, `mlcore serve` and batch scoring refuse paths, runs:/ URIs and tampered models."""
import shutil
from pathlib import Path
import pytest
from conftest import cli

pytestmark = pytest.mark.slow
REFS = ["runs:/0123456789abcdef/model", "models:/credit_pd/1", "file:///tmp/model/1", "/tmp/mlartifacts/model/1", "./model@x"]


@pytest.mark.parametrize("ref", REFS)
def test_paths_and_uris_are_refused_by_serving_and_batch(use_flow, ref):
    from mlcore.inference.batch import score_dataset
    from mlcore.inference.serving import app_from_registry
    with pytest.raises(ValueError, match="loaded only from the registry"): app_from_registry(ref)
    with pytest.raises(ValueError, match="loaded only from the registry"):
        score_dataset(ref, "loan_book", "credit_pd_scores", "", "loan_id", "pandas", "sec-test")


def test_mlcore_serve_refuses_a_runs_uri_with_one_clear_line(use_flow):
    r = cli("serve", "--model", f"runs:/{use_flow['runs']['train']}/model", "--port", "1", env={**__import__("os").environ, **use_flow["env"]})
    assert r.returncode == 2 and "loaded only from the registry" in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.fixture
def tampered(use_flow, tmp_path):
    "A sealed copy of the champion registered as credit_pd_copy/1, then one byte of its pickle changed"
    from mlflow.tracking import MlflowClient
    from mlcore.registry.integrity import seal_model_version, _download
    c = MlflowClient()
    mv = c.get_model_version_by_alias("credit_pd", "champion")
    src = _download("credit_pd", str(mv.version), str(tmp_path / "dl"))
    copy = tmp_path / "copy"; shutil.copytree(src, copy)
    if "credit_pd_copy" not in [m.name for m in c.search_registered_models()]: c.create_registered_model("credit_pd_copy")
    v = c.create_model_version("credit_pd_copy", str(copy), run_id=mv.run_id)
    seal_model_version("credit_pd_copy", v.version)
    store = Path(c.get_model_version_download_uri("credit_pd_copy", v.version).replace("file://", ""))
    pkl = next(p for p in store.rglob("python_model.pkl"))
    return v, pkl


def test_tampered_model_is_refused_by_the_service_batch_scoring_and_the_cli(use_flow, tampered):
    from mlcore.inference.batch import score_dataset
    from mlcore.registry.integrity import ModelIntegrityError, load_verified_model
    from mlcore.inference.serving import app_from_registry
    v, pkl = tampered
    ref = f"credit_pd_copy/{v.version}"
    load_verified_model(ref)                                        # sealed and intact: loads
    scores = use_flow["dir"] / "scores"
    before = sorted((p.relative_to(scores).as_posix(), p.stat().st_mtime_ns) for p in scores.rglob("*"))
    pkl.write_bytes(pkl.read_bytes()[:-1] + bytes([pkl.read_bytes()[-1] ^ 1]))
    with pytest.raises(ModelIntegrityError, match="does not match"): app_from_registry(ref)
    with pytest.raises(ModelIntegrityError, match="does not match"):
        score_dataset(ref, "loan_book", "credit_pd_scores", "", "loan_id", "pandas", "sec-tampered")
    after = sorted((p.relative_to(scores).as_posix(), p.stat().st_mtime_ns) for p in scores.rglob("*"))
    assert after == before                                          # nothing published
    r = cli("serve", "--model", ref, "--port", "1", env={**__import__("os").environ, **use_flow["env"]})
    assert r.returncode == 2 and "does not match" in r.stderr and "Traceback" not in r.stderr, r.stderr
