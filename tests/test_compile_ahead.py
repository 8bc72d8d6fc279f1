"""The cold start's parallel compile (``streamrnn.cli.compile_ahead``): its
switch, the cross-process lock around each kernel's compilation, the
worker's signatures against those the learning step really compiles, and
first runs with and without the worker (alone and several at once) that
write the same output."""

import json
import os
import subprocess
import sys
from textwrap import dedent
import time
from pathlib import Path

import pytest

from streamrnn.cli import compile_ahead
from streamrnn.cli.compile_ahead import WORKERS_ENV, workers_wanted

ROOT = Path(__file__).resolve().parents[1]


def python(code: str, cache: Path, stdin: bool = False) -> subprocess.Popen:
    """A Python process running ``code`` with the Numba cache ``cache``;
    it prints one JSON line last."""
    environ = dict(os.environ, PYTHONPATH=str(ROOT), NUMBA_CACHE_DIR=str(cache))
    return subprocess.Popen([sys.executable, "-c", dedent(code)], env=environ, cwd=ROOT,
                            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def result(proc: subprocess.Popen, timeout: float = 300) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


#: Records which of the package's kernels a process compiles (rather than loads).
RECORD = """
from numba.core import event
compiled = []
class Listener(event.Listener):
    def on_start(self, ev):
        func = ev.data["dispatcher"].py_func
        if func.__module__.startswith("streamrnn"):
            compiled.append(func.__qualname__)
    def on_end(self, ev):
        pass
event.register("numba:compile", Listener())
"""


# ---------------------------------------------------------------------------
# the switch


def test_the_environment_variable_turns_the_worker_on_and_off(monkeypatch):
    assert workers_wanted({WORKERS_ENV: "1"}) is True
    assert workers_wanted({WORKERS_ENV: "0"}) is False
    with pytest.raises(ValueError, match=WORKERS_ENV):
        workers_wanted({WORKERS_ENV: "yes"})


@pytest.mark.parametrize("load, cpus, wanted", [(0.2, 2, True), (1.0, 2, False), (5.0, 2, False),
                                                (2.5, 4, True), (0.0, 1, False)])
def test_by_default_the_worker_runs_only_below_cpus_less_one_of_load(monkeypatch, load, cpus, wanted):
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)), raising=False)
    assert workers_wanted({}) is wanted


def test_a_bad_switch_is_a_usage_error_of_the_command(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), NUMBA_CACHE_DIR=str(tmp_path / "cache"), **{WORKERS_ENV: "2"})
    (tmp_path / "a.csv").write_text("v\n1\n2\n")
    proc = subprocess.run([sys.executable, "-m", "streamrnn", "forecast", str(tmp_path / "a.csv"), "-t", "v"],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and f"{WORKERS_ENV} must be 0" in proc.stderr


# ---------------------------------------------------------------------------
# the lock


def test_the_file_lock_is_reentrant_in_one_process(tmp_path):
    path = str(tmp_path / "k.lock")
    with compile_ahead._file_lock(path, 1.0):
        with compile_ahead._file_lock(path, 1.0):  # (a kernel retried with literal arguments)
            pass
        assert path in compile_ahead._held
    assert path not in compile_ahead._held


def test_every_cached_kernel_is_locked_and_stays_callable():
    from streamrnn.kernels import recurrent

    assert compile_ahead.lock_kernel_caches() > 20
    count = compile_ahead.lock_kernel_caches()  # (again: no second wrapper)
    assert compile_ahead.lock_kernel_caches() == count
    assert getattr(recurrent.learn_one.compile, "streamrnn_locked", False)
    assert recurrent.learn_one.compile.__wrapped__.__self__ is recurrent.learn_one
    import numpy as np

    assert recurrent.all_finite(np.array([1.0, 2.0])) and not recurrent.all_finite(np.array([1.0, np.inf]))


def test_a_process_waits_for_a_kernel_another_is_compiling_then_loads_it(tmp_path):
    """While one process holds a kernel's lock (as if compiling it), another
    that needs the kernel waits, and finishes only after the release."""
    cache = tmp_path / "cache"
    holder = python("""
        import json, sys, time
        from streamrnn.cli import compile_ahead
        from streamrnn.kernels import recurrent
        compile_ahead.lock_kernel_caches()
        with compile_ahead._file_lock(compile_ahead._lock_path(recurrent.all_finite), 1.0):
            print("held", flush=True)
            sys.stdin.readline()
            released = time.time()
        print(json.dumps({"released": released}))
        """, cache, stdin=True)
    assert holder.stdout.readline().strip() == "held"
    waiter = python("""
        import json, time
        import numpy as np
        from streamrnn.cli import compile_ahead
        from streamrnn.kernels import recurrent
        compile_ahead.lock_kernel_caches()
        print("calling", flush=True)
        ok = bool(recurrent.all_finite(np.array([1.0, 2.0])))
        print(json.dumps({"done": time.time(), "waited": compile_ahead.waited[0], "ok": ok}))
        """, cache)
    assert waiter.stdout.readline().strip() == "calling"
    time.sleep(1.0)
    assert waiter.poll() is None  # still waiting
    holder.stdin.write("release\n")
    holder.stdin.flush()
    held, waited = result(holder), result(waiter)
    assert waited["ok"] and waited["waited"] > 0.5 and waited["done"] >= held["released"]


def test_processes_compiling_two_signatures_of_one_kernel_at_once_leave_a_sound_cache(tmp_path):
    """The race Numba's cache has without the lock (two signatures of one
    function written at once, the index pointing at the other's code):
    with it, a third process loads both signatures and computes right."""
    cache = tmp_path / "cache"
    code = RECORD + dedent("""
        import json, sys
        import numpy as np
        from streamrnn.cli import compile_ahead
        from streamrnn.kernels import recurrent
        compile_ahead.lock_kernel_caches()
        dtypes = sys.argv[1:] or ["float32", "float64", "int64"]
        answers = [bool(recurrent.all_finite(np.array(v, dtype=d))) for d in dtypes
                   for v in ([1, 2, 3], [1, 2, 3] if d == "int64" else [1.0, float("nan"), 2.0])]
        print(json.dumps({"answers": answers, "compiled": [c for c in compiled if c == "all_finite"]}))
        """)
    environ = dict(os.environ, PYTHONPATH=str(ROOT), NUMBA_CACHE_DIR=str(cache))
    procs = [subprocess.Popen([sys.executable, "-c", code, d], env=environ, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for d in ("float32", "float64", "int64")]
    for proc, d in zip(procs, ("float32", "float64", "int64")):
        assert result(proc)["answers"] == [True, d == "int64"]
    after = result(python(code, cache))
    assert after["answers"] == [True, False, True, False, True, True]
    assert after["compiled"] == []  # all three signatures loaded from the cache


# ---------------------------------------------------------------------------
# the worker


def test_the_tasks_compile_what_learning_and_predicting_then_load(tmp_path):
    """The worker's explicit signatures are those of the calls inside
    ``learn_one`` and of the estimators' ``predict_one``: after the tasks,
    a model learning and predicting compiles none of them again."""
    cache = tmp_path / "cache"
    result(python("""
        import json
        from streamrnn.cli import compile_ahead
        compile_ahead.run_tasks(["forward", "learning", "predicting"])
        print(json.dumps({}))
        """, cache))
    after = result(python(RECORD + dedent("""
        import json
        from streamrnn import OnlineRNN
        model = OnlineRNN(hidden_size=3, k1=2, k2=3, seed=0)
        for t in range(8):
            model.learn([0.1 * t], [0.2 * t])
            model.predict([0.1 * t])
        print(json.dumps({"compiled": compiled}))
        """), cache))
    assert "learn_one" in after["compiled"]
    for name in ("network_forward", "cell_forward", "predict_one", "window_backward", "optimizer_step",
                 "advance_window_state", "expand_window", "store_compact", "reset_window", "cell_backward",
                 "apply_update", "expand_row"):
        assert name not in after["compiled"], name


def test_the_detector_task_compiles_the_detectors_kernels_then_they_load(tmp_path):
    """The worker's signatures for the anomaly detector are those of its
    calls: after the task (and the one-step prediction's), a detector
    scoring and learning past its grace period compiles none of them."""
    cache = tmp_path / "cache"
    result(python("""
        import json
        from streamrnn.cli import compile_ahead
        compile_ahead.run_tasks(["detector", "predicting"])
        print(json.dumps({}))
        """, cache))
    after = result(python(RECORD + dedent("""
        import json, math
        from streamrnn.anomaly import PredictiveDetector
        detector = PredictiveDetector(hidden_size=3, k2=3, grace_period=2, seed=0)
        scores = []
        for t in range(8):
            x = {"y": 10.0 + math.sin(t)}
            scores.append(detector.score_one(x))
            detector.learn_one(x)
        print(json.dumps({"compiled": compiled, "scored": sum(s > 0 for s in scores)}))
        """), cache))
    assert after["scored"] > 0 and "learn_one" in after["compiled"]
    for name in ("restart_history", "point_with", "recent_log10", "recent_record", "set_prediction",
                 "predict_one", "network_forward"):
        assert name not in after["compiled"], name


def test_after_warmup_the_commands_compile_nothing(tmp_path):
    """``streamrnn warmup`` in an empty cache leaves every kernel that
    ``detect`` (past its first hundred rows, scoring) and ``forecast`` run
    in the cache: they compile none."""
    cache = tmp_path / "cache"
    env = dict(os.environ, PYTHONPATH=str(ROOT), NUMBA_CACHE_DIR=str(cache), **{WORKERS_ENV: "0"})
    done = subprocess.run([sys.executable, "-m", "streamrnn", "warmup"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    data = tmp_path / "a.csv"
    data.write_text("t,v\n" + "".join(f"2024-01-{1 + i // 24:02d}T{i % 24:02d}:00:00,{10 + (i % 5) * 0.5}\n"
                                      for i in range(130)))
    found = result(python(RECORD + dedent(f"""
        import contextlib, io, json
        from streamrnn.cli import main
        out = io.StringIO()
        with contextlib.redirect_stderr(io.StringIO()):
            main(["detect", {str(data)!r}, "-t", "v", "--time", "t", "--no-progress"], stdout=out)
            main(["forecast", {str(data)!r}, "-t", "v", "--time", "t", "-H", "3", "--no-progress"], stdout=out)
        scored = sum(1 for line in out.getvalue().splitlines()[1:131] if line.split(",")[1])
        print(json.dumps({{"compiled": compiled, "scored": scored}}))
        """), cache))
    assert found["scored"] > 0
    assert found["compiled"] == []


def test_a_failing_worker_leaves_the_command_to_compile_and_none_outlives_it(monkeypatch):
    monkeypatch.setitem(compile_ahead.COMMAND_TASKS, "forecast", ("no such task",))
    workers = compile_ahead.begin("forecast", {WORKERS_ENV: "1"})
    assert len(workers) == 1
    assert compile_ahead.end(workers) == [1]
    monkeypatch.setitem(compile_ahead.COMMAND_TASKS, "forecast", ("learning", "detector"))
    workers = compile_ahead.begin("forecast", {WORKERS_ENV: "1"})
    time.sleep(0.5)
    assert compile_ahead.end(workers, wait=False) in ([None], [0], [143])  # stopped (or already done)
    assert workers[0].poll() is not None
    assert compile_ahead.begin("forecast", {WORKERS_ENV: "0"}) == []
    assert compile_ahead.begin("info", {WORKERS_ENV: "1"}) == []


def test_first_runs_with_and_without_the_worker_and_two_at_once_write_the_same(tmp_path):
    """Cold ``forecast`` runs: one compiling alone in its own cache, two with
    the worker sharing one cache at once; the same output, said on stderr,
    and a cache the next run loads without compiling."""
    data = tmp_path / "a.csv"
    data.write_text("t,v\n" + "".join(f"2024-01-01T{i % 24:02d}:00:00,{10 + (i % 5) * 0.5}\n" for i in range(30)))
    argv = [sys.executable, "-m", "streamrnn", "forecast", str(data), "-t", "v", "--time", "t", "-H", "3",
            "--no-progress"]

    def start(cache, workers):
        env = dict(os.environ, PYTHONPATH=str(ROOT), NUMBA_CACHE_DIR=str(cache), **{WORKERS_ENV: workers})
        return subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    alone = start(tmp_path / "alone", "0")
    both = [start(tmp_path / "shared", "1"), start(tmp_path / "shared", "1")]
    outputs = []
    for proc in (alone, *both):
        out, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err
        outputs.append(out)
        assert "compiling the kernels for first use" in err.splitlines()[0]
        assert ("2 processes" in err) == (proc is not alone)
    assert outputs[0].count("\n") == 31 and outputs[1] == outputs[0] and outputs[2] == outputs[0]
    assert not list((tmp_path / "shared").rglob("*.tmp.*"))  # no half-written cache file left
    again = python(RECORD + dedent(f"""
        import contextlib, io, json
        from streamrnn.cli import main
        out = io.StringIO()
        with contextlib.redirect_stderr(io.StringIO()):
            main({argv[3:]!r}, stdout=out)
        print(json.dumps({{"out": out.getvalue(), "compiled": compiled}}))
        """), tmp_path / "shared")
    found = result(again)
    assert found["out"] == outputs[0] and found["compiled"] == []
