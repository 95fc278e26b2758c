"""Import cost, Spark session factory and notebook/library sync."""
import filecmp, os, shutil, subprocess, sys
from pathlib import Path
import pytest
from conftest import ROOT


def test_import_mlcore_starts_no_jvm_and_imports_no_heavy_libraries():
    code = ("import sys, psutil, mlcore, mlcore.core.config; "
            "print(sorted(m for m in ('pyspark', 'py4j', 'mlflow', 'sklearn') if m in sys.modules)); "
            "print(len(psutil.Process().children(recursive=True)))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["[]", "0"]


@pytest.mark.spark
def test_spark_session_local_loopback_and_worker_python(spark):
    assert spark.conf.get("spark.driver.host") == "127.0.0.1"
    assert spark.sparkContext.master == "local[2]"
    assert os.environ["PYSPARK_PYTHON"] == sys.executable
    # a Python function runs in a worker process: it must be this interpreter
    exe = spark.sparkContext.parallelize([0], 1).map(lambda _: __import__("sys").executable).collect()
    assert exe == [sys.executable]
    assert spark.range(100).selectExpr("sum(id) s").first().s == 4950


def test_java_missing_is_reported_plainly(monkeypatch, tmp_path):
    from mlcore.core.spark import java_version, JavaMissing
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(JavaMissing, match="Spark needs Java 17"): java_version()


def test_notebooks_and_library_in_sync_and_clean(tmp_path):
    "nbdev_export and nbdev_clean on a copy of the project change nothing"
    work = tmp_path / "proj"
    work.mkdir()
    for name in ["settings.ini", "pyproject.toml"]: shutil.copy(ROOT / name, work / name)
    shutil.copytree(ROOT / "nbs", work / "nbs", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copytree(ROOT / "mlcore", work / "mlcore", ignore=shutil.ignore_patterns("__pycache__"))
    bin_ = Path(sys.executable).parent
    for cmd in ["nbdev_export", "nbdev_clean"]:
        r = subprocess.run([str(bin_ / cmd)], cwd=work, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    def diff(a, b, rel=""):
        c = filecmp.dircmp(a, b, ignore=["__pycache__", ".ipynb_checkpoints"])
        out = [f"{rel}{n}" for n in c.left_only + c.right_only + c.diff_files]
        for sub in c.common_dirs: out += diff(Path(a) / sub, Path(b) / sub, f"{rel}{sub}/")
        return out
    changed = diff(ROOT / "mlcore", work / "mlcore") + diff(ROOT / "nbs", work / "nbs", "nbs/")
    assert changed == [], f"run `make sync` (nbdev_export + nbdev_clean): these differ: {changed}"


def test_readme_is_generated_from_index_notebook():
    r = subprocess.run([str(Path(sys.executable).parent / "jupyter"), "nbconvert", "--to", "markdown", "--stdout",
                        "nbs/index.ipynb"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (ROOT / "README.md").read_text() == r.stdout, "README.md is stale: run `make readme`"
