"""Start-up of the command line: each command run in a fresh process, first
with an empty Numba cache (what a new installation's first run pays: the
kernels it needs are compiled), then again with the cache that run left
(a warm start). Reported for each: the wall time and the CPU time (user +
system) of the process, the median of ``--repeats`` runs; on a busy
machine the CPU time is the steadier figure.

The commands: ``--version``, ``--help``, ``info``, ``forecast`` and
``detect`` on a 10-row CSV file, and ``demo --no-plot``. Each cold run gets
its own empty cache (``NUMBA_CACHE_DIR`` in a temporary folder), so that
one command's compilation does not warm the next.

``--compiles`` also runs each kernel command once more, cold, in a process
that records Numba's compilation events, and reports how many functions
(specialisations) it compiled and the inclusive compile time of the
largest. ``--imports`` reports which of River, pandas, SciPy, matplotlib
and Numba each command imports.

``--compile-profile`` runs each kernel command once, cold and without the
compile worker, in a process that records Numba's compile events, and lists
each compiled function's own CPU seconds (typing, lowering and the machine
code of its library, which links and re-optimises every callee it calls)
and inclusive seconds (its callees' compiles too), largest own first, and
the entries (the functions called from Python).

``--timeline`` runs each kernel command once, cold, with the compile
worker, and shows when each of the two processes compiled what, its CPU
seconds and when it ended: whether they finish together.

``--serial-too`` runs the kernel commands cold without and with the
compile worker (``STREAMRNN_COMPILE_WORKERS`` 0 and 1, alternating, each in
its own empty cache) and reports both medians and their ratio; with
``--phases``, one more cold run of each is split into the interpreter's
start, imports, the command's own compiles, its waits for the worker's
kernels and the rest, with the CPU seconds of the command and of its worker
(``--repeats 0``: the phases alone). CPU seconds count the command's
process and the worker it waits for.

::

    python benchmarks/bench_startup.py [--repeats 3] [--only info] [--compiles] [--imports]
    python benchmarks/bench_startup.py --serial-too [--phases] [--only demo]
    python benchmarks/bench_startup.py --compile-profile [--only demo] [--top 25]
    python benchmarks/bench_startup.py --timeline [--only demo]

``--serial-too --phases``, 2026-12-07, the machine busy throughout (load
average 5-9 from other jobs): ``demo``, median of 3, serial 86.0 s wall /
40.1 CPU s, with the worker 79.6 / 39.9 (wall ratio 1.08); CPU seconds of
the command alone / the command + its worker: ``forecast`` 25.5 / 17.2 +
12.6, ``detect`` 29.9 / 15.2 + 14.5, ``demo`` 37.8 / 21.2 + 21.9. Again
at load 1.6 rising to 5: ``demo`` serial 45.7 s / 38.9, with the worker
50.2 / 41.2 (ratio 0.91): without an idle core the worker gains nothing.

Measured on the project's 2-core machine (2026-12-07, one run each, load
average 10-12 from other jobs: the wall times are inflated, the CPU times
are the figures to compare), ``pip install -e .`` without extras (no
scikit-learn, no matplotlib), CPU seconds cold / warm: ``--version`` 0.06,
``info`` 0.08 (0.14 s wall at load 4-5), ``forecast`` 28.3 / 1.5,
``detect`` 32.0 / 1.3, ``demo --no-plot`` 36.9 / 1.7; the version before
(main at 522dd44), in the same run: 0.15, 0.50, 34.8 / 2.6, 37.9 / 1.6,
45.2 / 2.6.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: name, arguments (``{csv}``: the 10-row file), whether it runs a kernel
COMMANDS = [
    ("--version", ["--version"], False),
    ("--help", ["--help"], False),
    ("info", ["info"], False),
    ("argument error", ["forecast", "{csv}"], False),
    ("forecast 10 rows", ["forecast", "{csv}", "--target", "v", "--time", "t", "--no-progress"], True),
    ("detect 10 rows", ["detect", "{csv}", "--target", "v", "--no-progress"], True),
    ("demo", ["demo", "--no-plot"], True),
]

#: What a child process run with ``--child`` does around the command: records
#: compilations (``--compiles``) or the heavy modules imported (``--imports``).
CHILD = r"""
import time
START = time.perf_counter()
import contextlib, io, json, sys
mode, argv = sys.argv[1], sys.argv[2:]
report = {}
if mode == "phases":
    from numba.core import event
    phase, depth, compiled, inside = {}, [], [0.0], [0.0]
    waited = lambda: getattr(sys.modules.get("streamrnn.cli.compile_ahead"), "waited", [0.0])[0]
    class Listener(event.Listener):
        def on_start(self, ev):
            if not depth:
                phase.setdefault("first", time.perf_counter())
            depth.append((time.perf_counter(), waited()))
        def on_end(self, ev):
            start, waited_before = depth.pop()
            if not depth:
                compiled[0] += time.perf_counter() - start
                inside[0] += waited() - waited_before
    event.register("numba:compile", Listener())
if mode == "profile":
    from numba.core import event
    spans, stack = [], []
    class Listener(event.Listener):
        def on_start(self, ev):
            stack.append([time.process_time(), 0.0])
        def on_end(self, ev):
            start, nested = stack.pop()
            inclusive = time.process_time() - start
            if stack:
                stack[-1][1] += inclusive
            d = ev.data["dispatcher"]
            spans.append((d.py_func.__module__.rsplit(".", 1)[-1] + "." + d.py_func.__qualname__,
                          str(ev.data["args"]), inclusive - nested, inclusive, len(stack)))
    event.register("numba:compile", Listener())
if mode == "compiles":
    from numba.core import event
    spans, stack = [], []
    class Listener(event.Listener):
        def on_start(self, ev):
            stack.append(time.process_time())
        def on_end(self, ev):
            spans.append((ev.data["dispatcher"].py_func.__qualname__, time.process_time() - stack.pop()))
    event.register("numba:compile", Listener())
from streamrnn.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    report["status"] = main(argv)
if mode == "phases":
    from streamrnn.cli import compile_ahead
    end = time.perf_counter()
    report.update(start=START, first=phase.get("first", end), compiled=compiled[0] - inside[0],
                  waited=compile_ahead.waited[0], end=end, cpu=time.process_time())
if mode == "profile":
    report["spans"] = spans
if mode == "compiles":
    report["count"] = len(spans)
    report["largest"] = sorted(spans, key=lambda s: -s[1])[:8]
else:
    heavy = ("river", "pandas", "scipy", "matplotlib", "numba", "sklearn", "torch")
    report["imported"] = sorted({m.split(".")[0] for m in sys.modules} & set(heavy))
    report["kernels"] = sorted(m for m in sys.modules if m.startswith("streamrnn.kernels."))
print(json.dumps(report), file=sys.__stderr__)
"""


def write_csv(path: str, rows: int = 10) -> None:
    with open(path, "w") as f:
        f.write("t,v\n")
        for i in range(rows):
            f.write(f"2024-01-01T{i:02d}:00:00,{10 + (i % 4) * 0.5}\n")


def run(args: list[str], cache: str, child: str | None = None, workers: str | None = None
        ) -> tuple[float, float, int, str]:
    """Wall and CPU seconds of one process running ``streamrnn args`` (its
    own and its compile worker's), its exit status and standard error;
    ``workers``: the value of ``STREAMRNN_COMPILE_WORKERS`` (None: as set
    here)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if workers is not None:
        env["STREAMRNN_COMPILE_WORKERS"] = workers
    cmd = [sys.executable, "-c", CHILD, child, *args] if child else [sys.executable, "-m", "streamrnn", *args]
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, _ = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # (the command and the worker it waited for)
    err = proc.stderr.read()
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return wall, cpu, proc.returncode, err


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each measurement (median reported)")
    parser.add_argument("--only", help="only the commands whose name contains this")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold runs of the kernel commands")
    parser.add_argument("--compiles", action="store_true", help="count the compilations of each kernel command")
    parser.add_argument("--imports", action="store_true", help="list the heavy modules each command imports")
    parser.add_argument("--serial-too", action="store_true",
                        help="cold runs both with the compile worker (STREAMRNN_COMPILE_WORKERS=1) and without "
                             "(=0), alternating, and their ratio")
    parser.add_argument("--phases", action="store_true",
                        help="with --serial-too: one more cold run of each, split into phases (import, own "
                             "compiles, waiting for the worker, the rest: running and loading)")
    parser.add_argument("--compile-profile", action="store_true",
                        help="one cold serial run of each kernel command recording Numba's compile events: "
                             "each function's own and inclusive CPU seconds")
    parser.add_argument("--top", type=int, default=25, help="with --compile-profile: functions listed")
    parser.add_argument("--timeline", action="store_true",
                        help="one cold run of each kernel command with the compile worker: when each process "
                             "compiled what, and each one's CPU seconds")
    opts = parser.parse_args()
    if opts.timeline:
        timeline(opts)
        return
    if opts.compile_profile:
        compile_profile(opts)
        return
    if opts.serial_too:
        serial_vs_parallel(opts)
        return

    work = tempfile.mkdtemp(prefix="streamrnn-startup-")
    csv = os.path.join(work, "ten.csv")
    write_csv(csv)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; median of {opts.repeats} runs")
    print(f"{'command':<18}{'cold wall s':>12}{'cold CPU s':>12}{'warm wall s':>12}{'warm CPU s':>12}")
    try:
        for name, template, kernel in COMMANDS:
            if opts.only and opts.only not in name:
                continue
            args = [csv if a == "{csv}" else a for a in template]
            cold, warm_cache = [], os.path.join(work, f"warm-{len(name)}-{abs(hash(name))}")
            if kernel and not opts.no_cold:
                for r in range(opts.repeats):
                    cache = os.path.join(work, f"cold-{r}")
                    cold.append(run(args, cache)[:2])
                    shutil.rmtree(cache, ignore_errors=True)
            run(args, warm_cache)  # fills the cache (a first run)
            warm = [run(args, warm_cache)[:2] for _ in range(opts.repeats)]
            if not kernel:  # nothing compiled: every run is a cold one
                cold = warm
            med = lambda runs, i: f"{statistics.median(r[i] for r in runs):12.2f}" if runs else f"{'-':>12}"  # noqa: E731
            print(f"{name:<18}{med(cold, 0)}{med(cold, 1)}{med(warm, 0)}{med(warm, 1)}", flush=True)
            if opts.imports:
                report = json.loads(run(args, warm_cache, "imports")[3].strip().splitlines()[-1])
                print(f"{'':<18}imports {report['imported']}; kernel modules {len(report['kernels'])}")
            if opts.compiles and kernel:
                cache = os.path.join(work, "count")
                report = json.loads(run(args, cache, "compiles")[3].strip().splitlines()[-1])
                shutil.rmtree(cache, ignore_errors=True)
                largest = ", ".join(f"{n} {s:.1f}" for n, s in report["largest"])
                print(f"{'':<18}{report['count']} functions compiled; largest (inclusive CPU s): {largest}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def kernel_commands(opts: argparse.Namespace, csv: str):
    """The kernel commands that ``--only`` selects, as ``(name, arguments)``
    with the test file ``csv`` in place."""
    for name, template, kernel in COMMANDS:
        if kernel and not (opts.only and opts.only not in name):
            yield name, [csv if a == "{csv}" else a for a in template]


def compile_profile(opts: argparse.Namespace) -> None:
    """One cold run of each kernel command without the compile worker, in a
    process that records Numba's compile events: the CPU seconds of each
    compiled function (specialisation), its own (its callees' compiles
    taken out: typing, lowering and the machine code of everything it
    links, callees included) and inclusive, largest own first; and the
    entries (functions compiled from Python, not as a callee)."""
    work = tempfile.mkdtemp(prefix="streamrnn-startup-")
    csv = os.path.join(work, "ten.csv")
    write_csv(csv)
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    try:
        for name, args in kernel_commands(opts, csv):
            cache = os.path.join(work, "profile")
            wall, cpu, status, err = run(args, cache, child="profile", workers="0")
            shutil.rmtree(cache, ignore_errors=True)
            if status != 0:
                raise SystemExit(f"{name} failed ({status}): {err[-2000:]}")
            spans = json.loads(err.strip().splitlines()[-1])["spans"]
            own = sum(s[2] for s in spans)
            entries = [s for s in spans if s[4] == 0]
            print(f"{name}: wall {wall:.1f} s, CPU {cpu:.1f} s; {len(spans)} functions compiled, "
                  f"{own:.1f} CPU s in compiles; {len(entries)} entries")
            print(f"  {'own s':>7}{'incl s':>8}  function (argument types)")
            for fn, sig, self_s, incl, depth in sorted(spans, key=lambda s: -s[2])[: opts.top]:
                print(f"  {self_s:7.2f}{incl:8.2f}  {'' if depth else '* '}{fn} {sig[:90]}")
            print("  entries (*), inclusive CPU s: " + ", ".join(f"{s[0]} {s[3]:.1f}" for s in
                                                               sorted(entries, key=lambda s: -s[3])), flush=True)
        print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


#: Loaded first by every Python process of a ``--timeline`` run (the command
#: and its compile worker, the one run with ``-c``): records Numba's compile events with their times
#: from the run's start, written to a file per process at its exit.
SITECUSTOMIZE = r"""
import atexit, json, os, sys, time
_log = os.environ.get("BENCH_TIMELINE")
if _log:
    from numba.core import event
    _t0, _stack, _rows = float(os.environ["BENCH_T0"]), [], []
    class _Listener(event.Listener):
        def on_start(self, ev):
            _stack.append([time.time(), time.process_time(), 0.0])
        def on_end(self, ev):
            wall, cpu, nested = _stack.pop()
            inclusive = time.process_time() - cpu
            if _stack:
                _stack[-1][2] += inclusive
            _rows.append((ev.data["dispatcher"].py_func.__qualname__, wall - _t0, time.time() - _t0,
                          inclusive - nested, len(_stack)))
    event.register("numba:compile", _Listener())
    def _dump():
        with open(f"{_log}.{os.getpid()}", "w") as f:
            json.dump({"worker": sys.argv[0] == "-c", "end": time.time() - _t0,
                       "cpu": time.process_time(), "rows": _rows}, f)
    atexit.register(_dump)
"""


def timeline(opts: argparse.Namespace) -> None:
    """One cold run of each kernel command with the compile worker: for
    the command and its worker, the CPU seconds, when each ended, and when
    each compiled its entries and the callees that took over half a CPU
    second of their own (seconds from the run's start)."""
    work = tempfile.mkdtemp(prefix="streamrnn-startup-")
    csv = os.path.join(work, "ten.csv")
    write_csv(csv)
    with open(os.path.join(work, "sitecustomize.py"), "w") as f:
        f.write(SITECUSTOMIZE)
    try:
        for name, args in kernel_commands(opts, csv):
            log = os.path.join(work, "timeline")
            env = dict(os.environ, BENCH_TIMELINE=log, BENCH_T0=repr(time.time()),
                       PYTHONPATH=work + os.pathsep + os.environ.get("PYTHONPATH", ""))
            before = os.getloadavg()
            old = os.environ.copy()
            os.environ.update(env)
            try:
                wall, cpu, status, err = run(args, os.path.join(work, "cache"), workers="1")
            finally:
                os.environ.clear()
                os.environ.update(old)
            shutil.rmtree(os.path.join(work, "cache"), ignore_errors=True)
            if status != 0:
                raise SystemExit(f"{name} failed ({status}): {err[-2000:]}")
            print(f"{name}: wall {wall:.1f} s, CPU {cpu:.1f} s; load average before "
                  f"{' '.join(f'{x:.1f}' for x in before)}, after {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
            for path in sorted(p for p in os.listdir(work) if p.startswith("timeline.")):
                with open(os.path.join(work, path)) as f:
                    proc = json.load(f)
                os.remove(os.path.join(work, path))
                print(f"  {'worker' if proc['worker'] else 'command'}: CPU {proc['cpu']:.1f} s, ended at {proc['end']:.1f} s")
                for fn, start, end, own, depth in sorted(proc["rows"], key=lambda r: r[1]):
                    if depth == 0 or own > 0.5:
                        print(f"    {'  ' * depth}{fn:<30}{start:7.1f} -{end:7.1f} s, own {own:5.2f} CPU s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def print_medians(name: str, runs: dict) -> None:
    """One line of the table: medians of the serial ("0") and 2-process ("1")
    runs, their wall ratio and each run's wall seconds."""
    med = {w: [statistics.median(r[i] for r in runs[w]) for i in (0, 1)] for w in runs}
    each = " ".join(f"{r[0]:.1f}" for r in runs["0"]) + " | " + " ".join(f"{r[0]:.1f}" for r in runs["1"])
    print(f"{name:<18}{med['0'][0]:12.2f}{med['0'][1]:12.2f}{med['1'][0]:12.2f}{med['1'][1]:12.2f}"
          f"{med['0'][0] / med['1'][0]:11.2f}  ({each})", flush=True)


def serial_vs_parallel(opts: argparse.Namespace) -> None:
    """Cold first runs of the kernel commands without and with the compile
    worker, alternating (the same load for both), medians and the ratio of
    the medians; with ``--phases``, one more of each split into phases."""
    work = tempfile.mkdtemp(prefix="streamrnn-startup-")
    csv = os.path.join(work, "ten.csv")
    write_csv(csv)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; median of {opts.repeats} cold runs each, alternating")
    print(f"{'command':<18}{'serial wall':>12}{'serial CPU':>12}{'2-proc wall':>12}{'2-proc CPU':>12}"
          f"{'wall ratio':>11}  (all runs' wall s: serial | 2-proc)")
    try:
        for name, args in kernel_commands(opts, csv):
            runs = {"0": [], "1": []}
            for r in range(opts.repeats):
                for workers in ("0", "1"):
                    cache = os.path.join(work, f"cold-{workers}-{r}")
                    wall, cpu, status, err = run(args, cache, workers=workers)
                    if status != 0:
                        raise SystemExit(f"{name} failed ({status}): {err[-2000:]}")
                    runs[workers].append((wall, cpu))
                    shutil.rmtree(cache, ignore_errors=True)
            if opts.repeats < 1:  # (--repeats 0: the phases alone)
                print(f"{name:<18}")
            else:
                print_medians(name, runs)
            if opts.phases:
                for workers in ("0", "1"):
                    cache = os.path.join(work, f"phases-{workers}")
                    wall, cpu, _, err = run(args, cache, child="phases", workers=workers)
                    shutil.rmtree(cache, ignore_errors=True)
                    p = json.loads(err.strip().splitlines()[-1])
                    rest = p["end"] - p["first"] - p["compiled"] - p["waited"]
                    print(f"{'':<18}{'serial' if workers == '0' else '2-proc'}: wall {wall:.1f} s = start "
                          f"{wall - (p['end'] - p['start']):.1f} + imports {p['first'] - p['start']:.1f} + own compiles "
                          f"{p['compiled']:.1f} + waiting for the worker {p['waited']:.1f} + the rest {rest:.1f}; "
                          f"CPU s: the command {p['cpu']:.1f}, its worker (and the interpreter's start and exit) {cpu - p['cpu']:.1f}", flush=True)
        print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
