"""Run a function in a child process and report wall time and peak resident memory of its process tree."""
import multiprocessing as mp, threading, time
import psutil


def _tree_rss(p):
    try:
        procs = [p] + p.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for q in procs:
        try: total += q.memory_info().rss
        except psutil.NoSuchProcess: pass
    return total


def measure(fn, *args):
    "(result, seconds, peak bytes) of fn(*args) run in a fresh process; the tree includes Spark's JVM and workers"
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=_child, args=(q, fn, args))
    proc.start()
    peak, p = 0, psutil.Process(proc.pid)
    while proc.is_alive():
        peak = max(peak, _tree_rss(p))
        time.sleep(0.2)
        if not q.empty(): break
    res = q.get()
    proc.join()
    if isinstance(res, BaseException): raise res
    return res["result"], res["seconds"], peak


def _child(q, fn, args):
    try:
        t = time.perf_counter()
        r = fn(*args)
        q.put({"result": r, "seconds": time.perf_counter() - t})
    except BaseException as e:
        q.put(RuntimeError(f"{type(e).__name__}: {e}"))
