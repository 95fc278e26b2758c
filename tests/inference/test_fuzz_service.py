"""The REST service under a bounded schemathesis run against its own OpenAPI schema (in-process, ASGI app of the real
flow's champion): no 5xx, status codes, content types and bodies conform to the schema."""
import collections, json, os
import pytest
from hypothesis import HealthCheck, given, settings
from conftest import ROOT
from fuzzkit import N

pytestmark = pytest.mark.slow


def test_service_conforms_to_its_openapi_schema(use_flow, tmp_path):
    import schemathesis
    from schemathesis.checks import negative_data_rejection
    from schemathesis.generation import GenerationMode
    from mlcore.inference.serving import app_from_registry
    app = app_from_registry("credit_pd@champion", tmp_path / "decisions.jsonl")
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    tally = collections.Counter()
    ops = [r.ok() for r in schema.get_all_operations()]
    assert {o.label for o in ops} == {"GET /health", "GET /ready", "GET /model", "POST /score", "POST /score/batch"}
    for op in ops:
        modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if op.method.upper() == "POST" else [])
        for mode in modes:
            @given(case=op.as_strategy(generation_mode=mode))
            @settings(max_examples=N if op.method.upper() == "POST" else 3, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))
            def run(case):
                # 413 (too many applicants) is a documented refusal; schemathesis' negative check only knows 400/422
                r = case.call_and_validate(excluded_checks=[negative_data_rejection])
                tally[f"{op.label} {mode.value} {r.status_code}"] += 1
                if mode == GenerationMode.NEGATIVE: assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
                else: assert r.status_code == 200, (r.status_code, r.text[:300])  # what the schema allows is scored
            run()
    figures = {"requests": sum(tally.values()), "5xx": sum(v for k, v in tally.items() if k.endswith(tuple(f" 5{i:02d}" for i in range(100)))),
               "by operation, mode and status": dict(tally)}
    out = ROOT / ".tmp" / "fuzz-figures"; out.mkdir(parents=True, exist_ok=True)
    (out / "test_fuzz_service.json").write_text(json.dumps(figures, indent=1))
    print("\nschemathesis:", json.dumps(figures))
    assert figures["5xx"] == 0 and tally["POST /score positive 200"] > 0


def test_short_soak_of_mlcore_serve(use_flow):
    "bench/soak_serving.py for 10 s against `mlcore serve` of the flow's champion on loopback (`make soak`: 5 minutes)"
    import subprocess, sys
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "soak_serving.py"), "--seconds", "10", "--warmup", "3", "--rate", "20",
                        "--clients", "2", "--rss-bound-mb", "50"], cwd=ROOT, env={**os.environ, **use_flow["env"]},
                       capture_output=True, text=True, timeout=300)
    print(r.stdout)
    figures = json.loads(next(l for l in r.stdout.splitlines() if l.startswith("FIGURES "))[8:])
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]
    assert figures["requests"] > 60 and figures["errors"] == figures["status_5xx"] == 0 and figures["refused_as_expected"] > 0
    assert figures["rss_growth_mb"] < 50 and figures["listening"] == ["127.0.0.1"]   # mlcore serve binds loopback by default
