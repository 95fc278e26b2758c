"""Every server the project starts binds to loopback by default (checked on the listening sockets where it is cheap),
and nothing in the repository stores credentials."""
import inspect, os, re, subprocess, sys, time, urllib.request
from pathlib import Path
import psutil
import pytest
import yaml
from conftest import ROOT

LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def listening(pid: int) -> set:
    "Addresses the process (and its children) listen on"
    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    return {c.laddr.ip for p in procs for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}


def test_server_defaults_are_loopback():
    import sys
    sys.path.insert(0, str(ROOT / "tools"))
    import docs_site as docs   # the docs-site builder (project tooling)
    from mlcore.commands import main as cli, deploy as cli_deploy
    from mlcore.inference import serving
    from mlcore.core.spark import spark_conf
    assert inspect.signature(serving.serve).parameters["host"].default == "127.0.0.1"
    assert inspect.signature(docs.serve).parameters["host"].default == "127.0.0.1"
    import argparse
    sub = argparse.ArgumentParser().add_subparsers()
    cli_deploy.register(sub)
    assert sub.choices["serve"].parse_args(["--model", "credit_pd@champion"]).host == "127.0.0.1"
    ui = cli._ui_command(5000)
    assert ui[ui.index("--host") + 1] == "127.0.0.1"
    c = spark_conf(master="local[1]")
    assert c["spark.driver.host"] == c["spark.driver.bindAddress"] == "127.0.0.1" and c["spark.ui.enabled"] == "false"
    assert "--ip 127.0.0.1" in (ROOT / "Makefile").read_text()


def test_standalone_cluster_binds_master_and_workers_to_loopback(monkeypatch, tmp_path):
    "The command lines and environment StandaloneCluster starts its JVMs with (the cluster itself is run in test_deploy)"
    import mlcore.ops.cluster as cl
    seen, real = [], cl.subprocess.Popen

    class Exited:
        def __init__(self, args, env=None, **kw): seen.append((args, env)); self.pid, self.returncode = 0, 0
        def poll(self): return 0
        def wait(self, timeout=None): return 0
    monkeypatch.setattr(cl.subprocess, "Popen", lambda args, *a, **k: Exited(args, **k) if "spark-class" in str(args[0]) else real(args, *a, **k))
    with pytest.raises(RuntimeError, match="did not start"): cl.StandaloneCluster(workers=2, log_dir=tmp_path).start(timeout=1)
    assert len(seen) == 3
    for args, env in seen:
        assert args[args.index("--host") + 1] == "127.0.0.1" and env["SPARK_LOCAL_IP"] == "127.0.0.1"
    assert seen[1][0][2].startswith("spark://127.0.0.1:")


@pytest.mark.spark
def test_spark_driver_listens_on_loopback_only(spark):
    spark.range(10).count()
    java = [p for p in psutil.Process().children(recursive=True) if "java" in p.name()]
    assert java, "no Spark JVM found"
    addrs = {a for p in java for a in listening(p.pid)}
    assert addrs and addrs <= LOOPBACK, addrs


# --- credentials ------------------------------------------------------------------------------------------------------
SECRET_ASSIGNMENT = re.compile(r"""(?ix)(password|passwd|secret|token|api[_-]?key|private[_-]?key|access[_-]?key)\w*
                                   ["']?\s*[:=]\s*["']?([^\s"',}{]{6,})""")
URI_PASSWORD = re.compile(r"://[^/\s:@'\"]+:[^/\s@'\"]+@")
KEY_BLOCK = re.compile(r"-----BEGIN (RSA |EC |OPENSSH )?PRIVATE KEY-----|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}")
# values that name where a secret comes from, not the secret itself
PLACEHOLDER = re.compile(r"(?i)^(\$\{?\w+\}?|os\.environ.*|env.*|none|null|\*+|<.*>|x+|changeme|example\w*|\w*_(env|var|file))$")


CONFIG = (".yaml", ".yml", ".ini", ".toml", ".cfg", ".env", ".sh", ".json", ".properties", ".conf")


def tracked_files() -> list:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return [ROOT / f for f in out if not f.startswith("data/") and (ROOT / f).is_file()]


def test_repository_stores_no_credentials():
    "Configuration and deployment files hold no secret values or URIs with passwords; no file holds key material"
    files = tracked_files()
    config = [f for f in files if f.suffix in CONFIG or f.name in ("Makefile", "Dockerfile", "settings.ini")]
    assert any(f.name == "settings.yaml" for f in config) and any(f.name == "Dockerfile" for f in config)
    found = []
    for f in files:
        text = f.read_text(errors="replace")
        found += [f"{f.relative_to(ROOT)}: key material" for m in KEY_BLOCK.finditer(text)]
        if f not in config: continue  # code and notebooks hold deliberately fake secrets in tests that prove they are refused
        for m in SECRET_ASSIGNMENT.finditer(text):
            if not PLACEHOLDER.match(m.group(2)) and not m.group(2).startswith(("os.", "getenv", "self.", "f\"", "{")):
                found.append(f"{f.relative_to(ROOT)}: {m.group(0)[:80]}")
        found += [f"{f.relative_to(ROOT)}: {m.group(0)}" for m in URI_PASSWORD.finditer(text)]
    assert found == [], "\n".join(found)


def test_params_pass_the_secret_check_and_the_check_can_fail(tmp_path):
    from mlcore.core.config import ConfigError, read_yaml, refuse_secrets
    ymls = sorted((ROOT / "params").rglob("*.yaml"))
    assert len(ymls) >= 10
    for f in ymls: refuse_secrets(read_yaml(f), f)
    bad = tmp_path / "catalog.yaml"
    bad.write_text("datasets:\n  loans: {format: sql, url: 'postgresql://risk:Winter2026@db/loans', table: loans}\n")
    from mlcore.data.catalog import read_catalog
    with pytest.raises(ConfigError, match="a URI with a password"): read_catalog(bad)
    hits = [m.group(2) for m in SECRET_ASSIGNMENT.finditer("db_password: Winter2026\napi_key: ${RISK_API_KEY}")]
    assert [h for h in hits if not PLACEHOLDER.match(h)] == ["Winter2026"]
