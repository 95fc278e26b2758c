"""PSI/CSI of 20 characteristics on N current rows against a frozen reference, side by side:
mlcore's pandas path (mlcore.stats.drift.stability), a NumPy floor (one searchsorted + bincount per column),
and Evidently's DataDriftPreset(method="psi").

    make bench-drift                      # 10M rows: mlcore and the floor; Evidently at 1M (and 10M with --evidently-rows)
    .venv/bin/python bench/bench_drift.py --rows 1000000 --evidently-rows 1000000
"""
import argparse, gc, resource, time
import numpy as np
import pandas as pd
from mlcore.stats.drift import fit_reference, psi, stability

N_COLS, REF_ROWS = 20, 100_000


def frame(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({f"x{i:02d}": rng.normal(i + (shift if i % 5 == 0 else 0.0), 1 + i / 10, rows) for i in range(N_COLS)})


def floor(reference: dict, cur: pd.DataFrame) -> dict:
    "The NumPy floor: one searchsorted + bincount per column, then PSI"
    out = {}
    for c, spec in reference.items():
        e = np.asarray(spec["edges"])
        counts = np.bincount(np.searchsorted(e, cur[c].to_numpy(), side="left"), minlength=len(e) + 1)
        out[c] = psi(spec["counts"][:-1], counts)
    return out


def evidently(ref_df: pd.DataFrame, cur: pd.DataFrame):
    from evidently import Report
    from evidently.presets import DataDriftPreset
    return Report([DataDriftPreset(method="psi")]).run(current_data=cur, reference_data=ref_df)


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        gc.collect(); t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    return min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--evidently-rows", type=int, default=1_000_000, help="0 to skip Evidently")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    ref_df = frame(REF_ROWS, 1)
    reference = fit_reference(ref_df, list(ref_df.columns), n_bins=10)
    sizes = sorted({a.rows, a.evidently_rows} - {0})
    print(f"PSI/CSI of {N_COLS} numeric characteristics (10 frozen bins each), reference {REF_ROWS:,} rows; best of {a.repeat}")
    print(f"{'rows':>12} {'NumPy floor s':>14} {'mlcore s':>10} {'mlcore/floor':>13} {'Evidently s':>12} {'Evidently/floor':>16} {'Evidently/mlcore':>17}")
    for n in sizes:
        cur = frame(n, 2, shift=0.3)
        t_floor = best(lambda: floor(reference, cur), a.repeat)
        t_ml = best(lambda: stability(reference, cur), a.repeat)
        # same numbers: the floor ignores the (empty) missing bin; mlcore's PSI includes it
        got = stability(reference, cur).set_index("column").psi
        assert np.allclose(got.to_numpy(), pd.Series(floor(reference, cur)).loc[got.index].to_numpy(), atol=1e-4)
        t_ev = best(lambda: evidently(ref_df, cur), 1) if n == a.evidently_rows else float("nan")
        print(f"{n:>12,} {t_floor:>14.3f} {t_ml:>10.3f} {t_ml / t_floor:>13.2f} {t_ev:>12.3f} {t_ev / t_floor:>16.1f} {t_ev / t_ml:>17.1f}", flush=True)
        cur = None  # free the frame before the next size
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")


if __name__ == "__main__":
    main()
