"""Shared set-up of the property-based tests: one bounded, derandomised hypothesis profile (`make test` stays fast and
reproducible; MLCORE_FUZZ_EXAMPLES raises the budget, `make fuzz` uses 600) and the per-module figures fixture."""
import collections, json, os
from pathlib import Path
import pytest
from hypothesis import HealthCheck, settings
from conftest import ROOT

N = int(os.environ.get("MLCORE_FUZZ_EXAMPLES", "60"))
settings.register_profile("mlcore-fuzz", max_examples=N, deadline=None, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.load_profile("mlcore-fuzz")


def figures_fixture(module_file:str):
    "(tally, module-scoped autouse fixture) that prints and keeps the module's figures (cases tried, clear errors, successes)"
    tally, stem = collections.Counter(), Path(module_file).stem

    @pytest.fixture(scope="module", autouse=True)
    def figures():
        yield
        out = ROOT / ".tmp" / "fuzz-figures"; out.mkdir(parents=True, exist_ok=True)
        (out / f"{stem}.json").write_text(json.dumps(tally, indent=1))
        print(f"\n{stem}: {dict(tally)}")
    return tally, figures
