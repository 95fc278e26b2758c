"""Property-based: parameter and settings files with random types, missing and extra keys, NaN/inf, huge values,
unicode and YAML oddities end in a valid value or a ConfigError naming the file and the key; never anything else."""
import math
import pytest
import yaml
from hypothesis import given, strategies as st
from conftest import ROOT
from fuzzkit import figures_fixture
from mlcore.core.config import ConfigError, Settings, from_dict, read_yaml, load_settings
from mlcore.ops.runner import job_parameters, resolve_params, parse_overrides

TALLY, figures = figures_fixture(__file__)



scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.integers(-10**40, 10**40),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12), st.dates(),
                    st.sampled_from(["", "yes", "no", "on", "~", "null", "NaN", ".inf", "0o17", "1e400", "ß✓🙂", "\t", "a: b"]))
values = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3), max_leaves=6)


def finite_everywhere(v) -> bool:
    if isinstance(v, float): return math.isfinite(v)
    if isinstance(v, (list, tuple)): return all(finite_everywhere(x) for x in v)
    if isinstance(v, dict): return all(finite_everywhere(x) for x in v.values())
    return True


def named(e: ConfigError, source, keys) -> bool:
    "The error names the file it came from and one of the keys involved"
    head = e.key.split(".")[0].split("[")[0]
    return str(source) in str(e) and e.key in str(e) and (head in {str(k) for k in keys} or e.key.startswith("("))


# --- YAML files -------------------------------------------------------------------------------------------------
ODD = ["key: [unclosed", "a: b: c", "- just\n- a list", "just a string", "---\na: 1\n---\nb: 2", "\ta: 1", "a: &x 1\nb: *y",
       "a: !!python/object/apply:os.system ['true']", "a: 1\na: 2", "? [1, 2]\n: x", "a: \"\\xZZ\"", "\ufeffa: 1", "%YAML 9.9\n---\na: 1",
       "a: 0x_", "é: ü", "a: .nan\nb: -.inf", "a: 1.0e400", "", "   ", "a:\n  - b\n c: d"]


@given(st.one_of(st.sampled_from(ODD), st.text(alphabet=st.sampled_from(list("ab:-[]{}!&*?|>'\"#%@`\n\t ,.0123456789é")), max_size=40),
                 st.dictionaries(st.text(max_size=8), values, max_size=5).map(lambda d: yaml.safe_dump(d, allow_unicode=True))))
def test_read_yaml_gives_a_mapping_or_names_the_file(tmp_path, text):
    p = tmp_path / "params.yaml"
    p.write_text(text, encoding="utf-8")
    TALLY["yaml files tried"] += 1
    try: data = read_yaml(p)
    except ConfigError as e:
        TALLY["yaml clear errors"] += 1
        assert str(p) in str(e) and (e.key.startswith("(") or "duplicate key" in str(e)), e
        return
    assert isinstance(data, dict)


def test_duplicate_keys_are_refused_not_silently_overwritten(tmp_path):
    p = tmp_path / "train.yaml"
    p.write_text("seed: 1\ntest_size: 0.3\nseed: 2\n")
    with pytest.raises(ConfigError, match=r"'seed'.*duplicate key.*line 3"): read_yaml(p)
    p.write_text("rules:\n  amber: 0.1\n  amber: 0.2\n")
    with pytest.raises(ConfigError, match=r"'rules.amber'.*duplicate"): read_yaml(p)


# --- settings (dataclasses) -----------------------------------------------------------------------------------------
section = st.dictionaries(st.sampled_from(["uri", "artifact_root", "registry_uri", "master", "app_name", "conf", "data", "runs",
                                           "jobs", "urii", "ūri"]), values, max_size=4)
settings_data = st.dictionaries(st.sampled_from(["tracking", "spark", "paths", "trackin", "root", "extra"]),
                                st.one_of(section, values), max_size=4)


@given(settings_data)
def test_settings_from_any_mapping_is_valid_or_names_the_key(data):
    TALLY["settings tried"] += 1
    try: s = from_dict(Settings, data, "settings.yaml")
    except ConfigError as e:
        TALLY["settings clear errors"] += 1
        assert named(e, "settings.yaml", data), e
        return
    assert isinstance(s.tracking.uri, str) and isinstance(s.spark.master, str) and isinstance(s.paths.runs, str)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in s.spark.conf.items())


def test_settings_file_with_a_secret_is_refused(tmp_path):
    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "settings.yaml").write_text("tracking:\n  uri: sqlite:///x.db\nspark:\n  conf:\n    spark.ssl.keyPassword: hunter2\n")
    with pytest.raises(ConfigError, match="secrets may not be stored"): load_settings(tmp_path, env={})


# --- job parameters as papermill inspects them (the real train and score jobs) ------------------------------------
@pytest.fixture(scope="module")
def declared():
    return {j: job_parameters(ROOT / "nbs" / "jobs" / f"{j}.ipynb") for j in ("train", "score")}


def job_values(decl):
    names = st.sampled_from(sorted(decl) + ["seeds", "unknown_param", "tëst_size", "password"])
    return st.dictionaries(names, values, max_size=6)


@given(st.data())
def test_job_params_file_is_checked_against_the_notebook(declared, tmp_path, data):
    job = data.draw(st.sampled_from(sorted(declared)))
    decl = declared[job]
    given_ = data.draw(job_values(decl))
    p = tmp_path / f"{job}.yaml"
    p.write_text(yaml.safe_dump(given_, allow_unicode=True))
    TALLY["job params files tried"] += 1
    try: out = resolve_params(job, decl, p)
    except ConfigError as e:
        TALLY["job params clear errors"] += 1
        assert named(e, p, given_), e
        return
    assert set(out) == set(given_) <= set(decl)
    assert finite_everywhere(out), out                                  # NaN/inf never reach a kernel
    for k, v in out.items():
        t = decl[k].type
        if t in ("int", "float", "str", "bool"): assert type(v).__name__ == t or (t == "float" and type(v) is float), (k, t, v)


@given(st.data())
def test_job_overrides_are_checked_against_the_notebook(declared, data):
    decl = declared["train"]
    items = data.draw(st.lists(st.one_of(
        st.tuples(st.sampled_from(sorted(decl) + ["nope", ""]), st.text(max_size=15)).map(lambda kv: f"{kv[0]}={kv[1]}"),
        st.text(max_size=15)), min_size=1, max_size=3))
    TALLY["-p overrides tried"] += 1
    try: out = resolve_params("train", decl, None, items)
    except ConfigError as e:
        TALLY["-p overrides clear errors"] += 1
        assert e.source == "-p" and e.key in str(e), e
        return
    assert finite_everywhere(out) and set(out) <= set(decl)


def test_nan_and_inf_parameters_are_refused_before_any_kernel_starts(declared, tmp_path):
    decl = declared["train"]
    for text, key in [("test_size: .nan", "test_size"), ("C: .inf", "C"), ("grade_cutoffs: [0.03, .nan]", "grade_cutoffs[1]")]:
        p = tmp_path / "train.yaml"; p.write_text(text)
        with pytest.raises(ConfigError, match="finite") as e: resolve_params("train", decl, p)
        assert e.value.key == key
    with pytest.raises(ConfigError, match="finite"): resolve_params("train", decl, None, ["min_iv=-.inf"])
    assert parse_overrides(["seed=7"], decl) == {"seed": 7}
