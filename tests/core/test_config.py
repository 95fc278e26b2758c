"""Parameter and settings validation: each kind of mistake names the file, the key and what was expected."""
import pytest
from conftest import ROOT, cli
from mlcore.core.config import ConfigError, load_settings
from mlcore.ops.runner import job_parameters, job_notebook, resolve_params


def train_params():
    return job_parameters(job_notebook("train"))


def test_unknown_key_in_params_file_suggests(tmp_path):
    f = tmp_path / "train.yaml"
    f.write_text("use_case: credit_pd\nsed: 3\n")
    with pytest.raises(ConfigError) as e: resolve_params("train", train_params(), f)
    assert str(f) in str(e.value) and "'sed': not a parameter of job 'train' (did you mean 'seed'?)" in str(e.value)


def test_wrong_type_in_params_file(tmp_path):
    f = tmp_path / "train.yaml"
    f.write_text("test_size: a third\n")
    with pytest.raises(ConfigError, match=r"'test_size': expected float, got str 'a third'") as e:
        resolve_params("train", train_params(), f)
    assert e.value.source == str(f)


def test_list_parameter_checks_its_type(tmp_path):
    f = tmp_path / "train.yaml"
    f.write_text("protected: age_in_years\n")
    with pytest.raises(ConfigError, match="'protected': expected a list"): resolve_params("train", train_params(), f)


def test_malformed_yaml_names_line(tmp_path):
    f = tmp_path / "train.yaml"
    f.write_text("seed: 1\nC: [1.0\n")
    with pytest.raises(ConfigError, match=r"malformed YAML at line 3") as e: resolve_params("train", train_params(), f)
    assert e.value.source == str(f)


def test_missing_required_value(jobs):
    from conftest import write_job
    write_job(jobs, "needs_date", 'as_of: str = None  # snapshot date, required', "print(as_of)")
    ps = job_parameters(job_notebook("needs_date"))
    with pytest.raises(ConfigError, match="'as_of': missing required value for job 'needs_date' \\(expected str; snapshot date, required\\)"):
        resolve_params("needs_date", ps)
    assert resolve_params("needs_date", ps, overrides=["as_of=2024-12-31"]) == {"as_of": "2024-12-31"}


def test_settings_errors(tmp_path):
    f = tmp_path / "settings.yaml"
    f.write_text("tracking:\n  uri: sqlite:///x.db\n  artifact_rot: a\n")
    with pytest.raises(ConfigError, match=r"'tracking.artifact_rot': unknown key \(did you mean 'artifact_root'\?\)"):
        load_settings(ROOT, f, env={})
    f.write_text("spark:\n  conf: [a, b]\n")
    with pytest.raises(ConfigError, match="'spark.conf': expected a mapping"): load_settings(ROOT, f, env={})
    f.write_text("paths:\n  runs: runs\n  db_password: x\n")
    with pytest.raises(ConfigError, match="'paths.db_password': secrets may not be stored"): load_settings(ROOT, f, env={})


def test_environment_overrides_settings():
    s = load_settings(env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:5999", "MLCORE_SPARK_MASTER": "spark://127.0.0.1:7077",
                           "MLCORE_RUNS_DIR": "/tmp/elsewhere"})
    assert (s.tracking.uri, s.spark.master, str(s.runs_dir)) == ("http://127.0.0.1:5999", "spark://127.0.0.1:7077", "/tmp/elsewhere")


def test_cli_reports_params_error_with_exit_code_2(store, tmp_path):
    f = tmp_path / "train.yaml"
    f.write_text("seed: forty-two\n")
    r = cli("run", "train", "-f", str(f), env=store)
    assert r.returncode == 2, r.stderr
    assert f"{f}: 'seed': expected int, got str 'forty-two'" in r.stderr


def test_serving_limit_is_a_positive_number_of_bytes(tmp_path):
    "serving.max_request_bytes (the REST service's body limit) from the file or MLCORE_MAX_REQUEST_BYTES, refused naming where it came from"
    assert load_settings(env={}).serving.max_request_bytes == 1048576          # params/settings.yaml
    f = tmp_path / "settings.yaml"
    for value, problem in (("0", "expected a positive number of bytes, got 0"), ("-5", "expected a positive number of bytes, got -5"),
                           ("1 MiB", "expected int, got str '1 MiB'"), ("true", "expected int, got bool True"), ("1048576.0", "expected int, got float 1048576.0")):
        f.write_text(f"serving:\n  max_request_bytes: {value}\n")
        with pytest.raises(ConfigError) as e: load_settings(ROOT, f, env={})
        assert (e.value.source, e.value.key) == (str(f), "serving.max_request_bytes") and problem in e.value.problem, e.value
    f.write_text("serving:\n  max_request_byte: 10\n")
    with pytest.raises(ConfigError, match=r"'serving.max_request_byte': unknown key \(did you mean 'max_request_bytes'\?\)"):
        load_settings(ROOT, f, env={})
    f.write_text("serving:\n  max_request_bytes: 2048\n")
    assert load_settings(ROOT, f, env={}).serving.max_request_bytes == 2048
    assert load_settings(ROOT, f, env={"MLCORE_MAX_REQUEST_BYTES": "4096"}).serving.max_request_bytes == 4096
    for value, problem in (("0", "expected a positive number of bytes, got 0"), ("4 KB", "expected an integer, got '4 KB'")):
        with pytest.raises(ConfigError) as e: load_settings(ROOT, f, env={"MLCORE_MAX_REQUEST_BYTES": value})
        assert (e.value.source, e.value.key) == ("environment", "MLCORE_MAX_REQUEST_BYTES") and problem in e.value.problem, e.value
