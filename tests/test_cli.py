"""The command-line tool, in process (``main(argv)`` with in-memory streams)
and as a subprocess: outputs against the Python API run by hand, and every
error path."""

import csv
import datetime as dt
import gzip
import io
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from river import datasets

from streamrnn import GRUForecaster
from streamrnn.anomaly import NOT_SCORED, THRESHOLD, PredictiveDetector
from streamrnn.cli import main
from streamrnn.cli.commands import DEFAULT_THRESHOLD

ROOT = Path(__file__).resolve().parents[1]


def waterflow_csv(n=120, keys=False) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["time", "flow", "site"] if keys else ["time", "flow"])
    for i, (x, y) in enumerate(datasets.WaterFlow()):
        if i == n:
            break
        w.writerow([x["Time"].isoformat(), y] + (["ab"[i % 2]] if keys else []))
    return out.getvalue()


def run(argv, text=""):
    stdout, stderr = io.StringIO(), io.StringIO()
    status = main(argv, stdin=io.StringIO(text), stdout=stdout, stderr=stderr)
    return status, stdout.getvalue(), stderr.getvalue()


def f32(values):
    """The values as the output writes them for a float32 model (shortest text of the float32 value)."""
    return [float(str(np.float32(v))) if abs(v) < 1e38 else v for v in values]


def rows_of(text):
    return list(csv.reader(io.StringIO(text)))


def test_forecast_matches_the_api_run_by_hand():
    text = waterflow_csv(80)
    status, out, err = run(["forecast", "-", "--target", "flow", "--horizon", "3", "--model", "gru",
                            "--hidden-size", "8", "--seed", "3"], text)
    assert status == 0, err
    rows = rows_of(out)
    assert rows[0] == ["flow+1", "flow+2", "flow+3"]
    assert len(rows) == 81  # one output row per input row
    model = GRUForecaster(hidden_size=8, seed=3)  # the first key's model gets the seed
    for (_, y), row in zip(datasets.WaterFlow(), rows[1:]):
        model.learn_one(y)
        assert [float(v) for v in row] == f32(model.forecast(3))  # at a float32 model's precision


def test_forecast_interval_columns_match_the_api_run_by_hand():
    text = waterflow_csv(60)
    status, out, err = run(["forecast", "-", "--target", "flow", "--horizon", "2", "--interval", "0.8",
                            "--model", "gru", "--hidden-size", "8", "--seed", "3"], text)
    assert status == 0, err
    rows = rows_of(out)
    assert rows[0] == ["flow+1", "flow+2", "flow+1_lo", "flow+1_hi", "flow+2_lo", "flow+2_hi"]
    model = GRUForecaster(hidden_size=8, seed=3)
    for (_, y), row in zip(datasets.WaterFlow(), rows[1:]):
        model.learn_one(y)
        lo, hi = model.forecast_interval(2, 0.8)
        assert [float(v) for v in row] == f32(model.forecast(2) + [lo[0], hi[0], lo[1], hi[1]])
    assert math.isfinite(float(rows[-1][2])) and float(rows[-1][2]) < float(rows[-1][0]) < float(rows[-1][3])


def test_forecast_with_time_and_keys_echoes_columns_and_keeps_keys_apart(tmp_path):
    path = tmp_path / "wf.csv"
    path.write_text(waterflow_csv(60, keys=True))
    status, out, err = run(["forecast", str(path), "--target", "flow", "--time", "time", "--key", "site",
                            "--hidden-size", "4", "--no-progress"])
    assert status == 0, err
    rows = rows_of(out)
    assert rows[0] == ["time", "site", "flow+1"]
    src = rows_of(path.read_text())
    assert [r[:2] for r in rows[1:]] == [[r[0], r[2]] for r in src[1:]]
    # key "a" (first seen, so seeded 0) is its own series: the same numbers as running it alone
    alone = ["time,flow"] + [f"{r[0]},{r[1]}" for r in src[1:] if r[2] == "a"]
    _, out_b, _ = run(["forecast", "-", "--target", "flow", "--time", "time", "--hidden-size", "4"],
                      "\n".join(alone) + "\n")
    assert [r[2] for r in rows[1:] if r[1] == "a"] == [r[1] for r in rows_of(out_b)[1:]]


def test_several_targets_and_missing_values_give_one_row_each():
    text = "a,b\n1,10\n2,\n,12\n4,13\nnan,inf\n6,15\n"
    status, out, err = run(["forecast", "--target", "a", "b", "--hidden-size", "4"], text)
    assert status == 0, err
    rows = rows_of(out)
    assert rows[0] == ["a+1", "b+1"] and len(rows) == 7
    assert all(v != "" and math.isfinite(float(v)) for r in rows[1:] for v in r)


def test_detect_matches_the_detector_run_by_hand():
    text = waterflow_csv(150)
    status, out, err = run(["detect", "--target", "flow", "--time", "time", "--hidden-size", "8"], text)
    assert status == 0, err
    rows = rows_of(out)
    assert rows[0] == ["time", "score", "is_anomaly"] and len(rows) == 151
    detector = PredictiveDetector(hidden_size=8, seed=0)
    for (x, y), row in zip(datasets.WaterFlow(), rows[1:]):
        score = detector.score_one({"flow": y})
        detector.learn_one({"flow": y})
        assert row[0] == x["Time"].isoformat()
        if score == NOT_SCORED:  # the warm-up: score and flag empty
            assert row[1:] == ["", ""]
        else:
            assert row[1] == str(np.float32(score))
            assert row[2] == str(int(score >= DEFAULT_THRESHOLD))
    assert [r[1] for r in rows[1:102]] == [""] * 101 and "" not in rows[102]  # the first row and 100 warming up
    assert DEFAULT_THRESHOLD == THRESHOLD


def test_detect_threshold_and_quantile_options():
    text = waterflow_csv(150)
    _, out, _ = run(["detect", "--target", "flow", "--threshold", "0"], text)
    assert {r[1] for r in rows_of(out)[1:]} == {"1", ""}  # every scored row flagged; the warm-up not scored
    _, out, _ = run(["detect", "--target", "flow", "--quantile", "0.9"], text)
    scored = [r for r in rows_of(out)[1:] if r[0] != ""]
    flags = np.array([int(r[1]) for r in scored])
    scores = np.array([float(r[0]) for r in scored])
    assert 0 < flags.sum() < len(flags)
    assert np.all(scores[flags == 1] > 0)


def test_save_then_load_resumes_bit_identically(tmp_path):
    pytest.importorskip("streamrnn.persistence")
    text = waterflow_csv(100).splitlines()
    header, body = text[0], text[1:]
    first = "\n".join([header] + body[:60]) + "\n"
    second = "\n".join([header] + body[60:]) + "\n"
    model = str(tmp_path / "model.npz")
    for command in (["forecast", "--horizon", "2"], ["forecast", "--horizon", "3", "--time", "time"], ["detect"]):
        argv = command + ["--target", "flow"]
        _, whole, _ = run(argv + ["--hidden-size", "4"], "\n".join(text) + "\n")
        s1, part1, _ = run(argv + ["--hidden-size", "4", "--save", model], first)
        s2, part2, err = run(argv + ["--load", model], second)  # (the model keeps its hidden size)
        assert s1 == s2 == 0, err
        assert rows_of(part1) + rows_of(part2)[1:] == rows_of(whole)


def test_load_of_the_wrong_kind_of_model_is_refused(tmp_path):
    pytest.importorskip("streamrnn.persistence")
    model = str(tmp_path / "det.npz")
    assert run(["detect", "--target", "flow", "--save", model], waterflow_csv(20))[0] == 0
    status, _, err = run(["forecast", "--target", "flow", "--load", model], waterflow_csv(20))
    assert status == 1 and "not a model of this command" in err
    status, _, err = run(["forecast", "--target", "flow", "--load", str(tmp_path / "none.npz")], waterflow_csv(5))
    assert status == 1 and "no such file" in err


def test_load_of_a_model_that_cannot_forecast_that_far_is_a_usage_error(tmp_path):
    direct, recursive = str(tmp_path / "direct.npz"), str(tmp_path / "recursive.npz")
    assert run(["forecast", "--target", "flow", "--direct", "-H", "2", "--save", direct], waterflow_csv(20))[0] == 0
    assert run(["forecast", "--target", "flow", "--save", recursive], waterflow_csv(20))[0] == 0
    status, out, err = run(["forecast", "--target", "flow", "-H", "4", "--load", direct], waterflow_csv(20))
    assert status == 2 and out == "" and "--horizon 4 is longer than the 2 steps" in err and "Traceback" not in err
    status, out, err = run(["forecast", "--target", "flow", "--direct", "--load", recursive], waterflow_csv(20))
    assert status == 2 and out == "" and "--direct does not apply" in err
    assert run(["forecast", "--target", "flow", "-H", "2", "--load", direct], waterflow_csv(20))[0] == 0


@pytest.mark.parametrize(
    "argv, text, status, message",
    [
        (["forecast", "--target", "nope"], "a,b\n1,2\n", 2, "column 'nope' not found"),
        (["detect", "--target", "a", "--key", "k"], "a,b\n1,2\n", 2, "column 'k' not found"),
        (["forecast", "--target", "a"], "a,b\n1,2\nx1,3\n", 1, "row 2 (line 3): column 'a' has a non-numeric value 'x1'"),
        (["forecast", "--target", "a"], "a,b\n1,2\n1_000,3\n", 1,
         "row 2 (line 3): column 'a' has a non-numeric value '1_000'"),
        (["detect", "--target", "a", "b"], "a,b\n1,2\n3,4_5\n", 1,
         "row 2 (line 3): column 'b' has a non-numeric value '4_5'"),
        (["forecast", "--target", "a"], "", 1, "empty input"),
        (["detect", "--target", "a"], "a,b\n", 1, "empty input"),
        (["forecast", "--target", "a"], "a,b\n1,2\n3\n", 1, "row 2 (line 3) has 1 fields, the header has 2"),
        (["forecast", "no-such-file.csv", "--target", "a"], "", 2, "no such file"),
        (["detect", "--target", "a", "--quantile", "1.5"], "a\n1\n", 2, "--quantile"),
        (["forecast", "--target", "a", "--interval", "1"], "a\n1\n", 2, "--interval must lie strictly between 0 and 1"),
        (["detect", "--target", "a", "--threshold", "-1"], "a\n1\n", 2, "--threshold"),
        (["forecast", "--target", "a", "--save", "no/such/folder/m.npz"], "a\n1\n", 2,
         "--save: cannot write no/such/folder/m.npz: no such folder no/such/folder"),
        (["detect", "--target", "a", "--plot", "no-folder/p.png"], "a\n1\n", 2, "no such folder no-folder"),
        (["detect", "--target", "a", "--save", "."], "a\n1\n", 2, "--save: . is a folder"),
    ],
)
def test_error_paths(argv, text, status, message):
    got, out, err = run(argv, text)
    assert got == status
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_byte_order_mark_is_no_part_of_the_first_column(tmp_path):
    """Excel writes CSV files that start with a UTF-8 byte order mark."""
    text = "value,other\n1.5,a\n2.5,b\n3.0,c\n"
    argv = ["forecast", "--target", "value", "--hidden-size", "4", "--no-progress"]
    status, plain, err = run(argv, text)
    assert status == 0, err
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert run([argv[0], str(path)] + argv[1:]) == (0, plain, "")
    assert run(argv, "\ufeff" + text) == (0, plain, "")  # standard input, decoded as plain UTF-8
    path.write_bytes(b'\xef\xbb\xbf"value",other\n1.5,a\n2.5,b\n3.0,c\n')  # a quoted first name
    assert run([argv[0], str(path)] + argv[1:]) == (0, plain, "")
    assert run(argv, '\ufeff"value",other\n1.5,a\n2.5,b\n3.0,c\n') == (0, plain, "")


@pytest.mark.parametrize("command", ["forecast", "detect"])
@pytest.mark.parametrize("option", [["--model", "gru"], ["--hidden-size", "8"], ["--seed", "1"],
                                    ["--model", "lstm", "--seed", "0"]])
def test_model_options_with_load_are_refused(tmp_path, command, option):
    """A loaded model keeps its configuration: an option that would configure
    a new one is refused, not silently ignored (even when it names the default)."""
    model = str(tmp_path / "model.npz")
    assert run([command, "--target", "flow", "--hidden-size", "4", "--save", model], waterflow_csv(20))[0] == 0
    status, out, err = run([command, "--target", "flow", "--load", model] + option, waterflow_csv(20))
    flags = " ".join(option[::2]).replace(" ", ", ")
    assert status == 2 and out == "" and "Traceback" not in err
    assert f"{flags} cannot be used with --load" in err
    assert run([command, "--target", "flow", "--load", model], waterflow_csv(20))[0] == 0


@pytest.mark.parametrize("argv", [[], ["forecast"], ["forecast", "--horizon", "0", "--target", "a"],
                                  ["frobnicate"], ["detect", "--target", "a", "--threshold", "0.1", "--quantile", "0.5"],
                                  ["forecast", "--target", "a", "--seed", "-1"]])
def test_usage_errors_exit_2(argv):
    status, _, err = run(argv, "a\n1\n")
    assert status == 2 and "usage:" in err


def test_info_lists_versions_threading_layer_and_cuda():
    status, out, _ = run(["info"])
    assert status == 0
    lines = dict(line.split(None, 1) for line in out.splitlines() if not line.startswith("numba threading"))
    import numba

    assert lines["numba"].strip() == numba.__version__
    assert "numba threading layer" in out and "cuda" in lines


def test_info_cuda_asks_numba_cuda_for_the_gpu(monkeypatch):
    """``info --cuda`` gives numba-cuda's own answer; plain ``info`` only
    what is installed (without importing Numba, see test_package)."""
    import importlib.util

    from streamrnn.cli.info import cuda_status

    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "0")
    status, out, _ = run(["info", "--cuda"])
    line = next(line for line in out.splitlines() if line.startswith("cuda "))
    assert status == 0 and line.split(None, 1)[1] == cuda_status(probe=True)
    if importlib.util.find_spec("numba_cuda") is None:
        assert "not installed" in line
    else:
        from numba import cuda

        assert line.split(None, 1)[1].startswith("available" if cuda.is_available() else "unavailable")
        monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "1")
        assert cuda_status().startswith("simulator")


def test_a_cold_cache_is_announced_on_stderr_before_compiling(tmp_path):
    """With an empty Numba cache a kernel command first says that it compiles;
    with the kernels cached (this process compiled a learning step) it says
    nothing."""
    from streamrnn import OnlineRNN
    from streamrnn.cli.warmup import cache_is_cold, cold_start_message

    for workers in ("0", "1"):
        env = dict(os.environ, PYTHONPATH=str(ROOT), NUMBA_CACHE_DIR=str(tmp_path / f"empty-cache-{workers}"),
                   STREAMRNN_COMPILE_WORKERS=workers)
        proc = subprocess.run([sys.executable, "-m", "streamrnn", "forecast", str(tmp_path / "missing.csv"),
                               "--target", "v"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0 and "missing.csv" in proc.stderr  # it stopped at the file, before compiling
        assert proc.stderr.splitlines()[0] == cold_start_message("forecast", parallel=workers == "1")
    OnlineRNN(hidden_size=2).learn([0.5], [0.1])  # compiles (or loads) the step, written to the cache
    assert not cache_is_cold()
    status, _, err = run(["forecast", str(tmp_path / "missing.csv"), "--target", "v"])
    assert status != 0 and "compiling" not in err


def _subprocess(args, **kwargs):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    kwargs.setdefault("text", True)
    return subprocess.Popen([sys.executable, "-m", "streamrnn", *args], env=env, cwd=ROOT, **kwargs)


def test_subprocess_answers_a_pipe_row_by_row():
    proc = _subprocess(["detect", "-", "--target", "v", "--hidden-size", "4"],
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdin.write("v\n1.0\n")
    proc.stdin.flush()
    assert proc.stdout.readline() == "score,is_anomaly\n"
    first = proc.stdout.readline()  # answered before the input ends
    assert first == ",\n"  # (the first row: not scored)
    proc.stdin.write("2.0\n")
    proc.stdin.close()
    assert len(proc.stdout.read().splitlines()) == 1
    assert proc.wait(timeout=60) == 0


def test_subprocess_quiet_on_broken_pipe_and_usage_status(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("v\n" + "\n".join(str(math.sin(i / 5)) for i in range(3000)) + "\n")
    proc = _subprocess(["forecast", str(path), "--target", "v", "--hidden-size", "4", "--no-progress"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()  # the reader goes away, as with `| head -1`
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0 and "Traceback" not in err and "Broken" not in err
    usage = _subprocess(["forecast"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = usage.communicate(timeout=60)
    assert usage.returncode == 2 and "--target" in err
    bad = _subprocess(["detect", "-", "--target", "v"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE)
    out, err = bad.communicate("v\n1\noops\n", timeout=60)
    assert bad.returncode == 1 and "row 2 (line 3): column 'v' has a non-numeric value 'oops'" in err
    assert "Traceback" not in err and len(out.splitlines()) == 2  # the header and the good row


def test_progress_bar_on_stderr_for_files_only(tmp_path):
    path = tmp_path / "v.csv"
    path.write_text("v\n" + "\n".join(str(i % 7) for i in range(50)) + "\n")
    _, _, err = run(["detect", str(path), "--target", "v", "--hidden-size", "4"])
    pytest.importorskip("tqdm")
    assert "rows" in err
    _, _, err = run(["detect", "-", "--target", "v", "--hidden-size", "4"], path.read_text())
    assert err == ""


def test_plots_are_written(tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("streamrnn.plot")
    text = waterflow_csv(80)
    for command in ("forecast", "detect"):
        png = tmp_path / f"{command}.png"
        status, _, err = run([command, "--target", "flow", "--time", "time", "--hidden-size", "4",
                              "--plot", str(png)], text)
        assert status == 0, err
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_prints_a_summary_and_writes_a_plot(tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("streamrnn.plot")
    png = tmp_path / "demo.png"
    status, out, err = run(["demo", "--plot", str(png)])
    assert status == 0, err
    assert "WaterFlow: 1268 hourly values" in out and "persistence" in out and "highest score peaks" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "args, text, status, message",
    [
        (["forecast", "-", "--target", "nope"], "a\n1\n", 2, "column 'nope' not found"),
        (["detect", "-", "--target", "a"], "", 1, "empty input"),
        (["detect", "-", "--target", "a"], "a\n", 1, "empty input"),
        (["forecast", "missing.csv", "--target", "a"], "", 2, "no such file"),
        (["detect", "-", "--target", "a", "--quantile", "2"], "a\n1\n", 2, "--quantile"),
    ],
)
def test_subprocess_error_paths(args, text, status, message):
    proc = _subprocess(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = proc.communicate(text, timeout=60)
    assert proc.returncode == status and message in err and "Traceback" not in err


@pytest.mark.parametrize("command", ["forecast", "detect"])
def test_load_refuses_a_model_saved_for_other_columns(tmp_path, command):
    """A model saved for other targets or another key column would go on
    with new, untrained series: refused, before any row is read."""
    model = str(tmp_path / "model.npz")
    text = "sensor,temp,flow\n" + "".join(f"s{i % 2},{i % 5},{i % 3}\n" for i in range(20))
    base = [command, "--hidden-size", "4", "--no-progress"]
    assert run(base + ["--target", "temp", "--key", "sensor", "--save", model], text)[0] == 0
    for columns, shown in ((["--target", "flow", "--key", "sensor"], "--target flow --key sensor"),
                           (["--target", "temp"], "--target temp and no --key"),
                           (["--target", "temp", "flow", "--key", "sensor"], "--target temp flow --key sensor")):
        status, out, err = run([command, "--load", model, "--no-progress"] + columns, text)
        assert status == 2 and out == "" and "Traceback" not in err
        assert f"saved with --target temp --key sensor; this run has {shown}" in err
    status, out, err = run([command, "--load", model, "--no-progress", "--target", "temp", "--key", "sensor"], text)
    assert status == 0 and len(out.splitlines()) == 21


def test_plot_without_matplotlib_is_a_usage_error_before_any_row(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what an import finds when it is not installed
    status, out, err = run(["detect", "--target", "a", "--plot", str(tmp_path / "p.png")], "a\n1\n")
    assert status == 2 and out == "" and "--plot needs matplotlib" in err and "Traceback" not in err


# --- a CLI fit for services (issue 16) ---

def _feed_and_wait(proc, rows, answered):
    """Write ``rows`` (header first) to the process, then read ``answered``
    output lines (the header and one line per row), so those rows are done."""
    proc.stdin.write("".join(f"{r}\n" for r in rows))
    proc.stdin.flush()
    return [proc.stdout.readline() for _ in range(answered)]


def _trained(values, hidden_size=4):
    from streamrnn.keyed import KeyedDetector

    model = KeyedDetector(PredictiveDetector(cell="lstm", hidden_size=hidden_size), seed=0)
    for v in values:
        model.learn_one(None, {"v": float(v)})
    return model


def _going_on(model):
    """The scores of the model learning on (past the grace period): equal
    lists for models that learned the same rows."""
    scores = []
    for t in range(300):
        x = {"v": float(t % 7) + (30.0 if t == 250 else 0.0)}
        scores.append(model.score_one(None, x))
        model.learn_one(None, x)
    return scores


@pytest.mark.parametrize("signum, status", [(15, 143), (2, 130)])
def test_subprocess_signal_finishes_the_row_saves_and_exits_128_plus_signum(tmp_path, signum, status):
    """`tail -f x.csv | streamrnn detect - --save m.npz`, stopped by SIGTERM
    (a service manager) or SIGINT (Ctrl-C): the rows learned are saved, the
    exit status is the conventional 128 + signal number. The input pipe
    stays open: the process is waiting on it when the signal comes."""
    from streamrnn.persistence import load

    model = tmp_path / "m.npz"
    proc = _subprocess(["detect", "-", "--target", "v", "--hidden-size", "4", "--save", str(model),
                        "--checkpoint-every", "4"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    values = [1, 3, 2, 5, 4, 6, 5, 7, 6, 8]
    lines = _feed_and_wait(proc, ["v"] + values[:9], 10)
    assert lines[0] == "score,is_anomaly\n" and all(line == ",\n" for line in lines[1:])  # (warming up)
    checkpoint = _going_on(load(model))  # written after rows 4 and 8, while the stream goes on
    assert checkpoint == _going_on(_trained(values[:8])) and max(checkpoint) > 0
    _feed_and_wait(proc, values[9:], 1)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == status and "Traceback" not in err
    saved = _going_on(load(model))  # all ten rows, not only those up to the last checkpoint
    assert saved == _going_on(_trained(values)) != checkpoint
    assert not [p for p in tmp_path.iterdir() if p.name != "m.npz"]  # no temporary file left


def test_checkpoints_by_rows_and_by_seconds(monkeypatch, tmp_path):
    from streamrnn.cli import commands
    from streamrnn.cli.service import Checkpoints

    saved = []
    monkeypatch.setattr(commands, "_save", lambda model, path, metadata: saved.append(len(model[None]._features.names)))
    path = str(tmp_path / "m.npz")
    text = "v\n" + "".join(f"{i % 3}\n" for i in range(10))
    assert run(["detect", "--target", "v", "--hidden-size", "4", "--save", path, "--checkpoint-every", "3"], text)[0] == 0
    assert len(saved) == 3 + 1  # after rows 3, 6 and 9, and at the end
    saved.clear()
    assert run(["detect", "--target", "v", "--hidden-size", "4", "--save", path, "--checkpoint-seconds", "1e-9"],
               text)[0] == 0
    assert len(saved) == 10 + 1
    now = [0.0]
    points = Checkpoints(lambda: saved.append(now[0]), seconds=5, clock=lambda: now[0])
    saved.clear()
    for t in range(12):
        now[0] = float(t)
        points.row_done()
    assert saved == [5.0, 10.0]


@pytest.mark.parametrize(
    "argv, text, status, message",
    [
        (["detect", "--target", "v", "--checkpoint-every", "5"], "v\n1\n", 2, "--checkpoint-every needs --save"),
        (["detect", "--target", "v", "--checkpoint-seconds", "0"], "v\n1\n", 2, "must be a positive number"),
        (["detect", "--target", "v", "--max-idle", "5"], "v\n1\n", 2, "--max-idle needs --key"),
        (["forecast", "--target", "v", "--with-times"], "v\n1\n", 2, "--with-times needs --time"),
        (["forecast", "--target", "v", "--horizon", "1e8"], "v\n1\n", 2, "--horizon/-H: must be at most 10000"),
        (["forecast", "--target", "v", "--horizon", "2.5"], "v\n1\n", 2, "not an integer: '2.5'"),
        (["detect", "--target", "v", "--hidden-size", "100000"], "v\n1\n", 2, "must be at most 4096"),
        (["detect", "--target", "v", "--delimiter", "ab"], "v\n1\n", 2, "must be one character"),
        (["detect", "--target", "v", "--encoding", "klingon"], "v\n1\n", 2, "unknown encoding"),
        (["detect", "--target", "v", "--plot", "out.xyz"], "v\n1\n", 2,
         "--plot: cannot write out.xyz: the file name must end in one of"),
        (["demo", "--plot", "/missing/dir/x.png"], "", 2, "no such folder /missing/dir"),
        (["demo", "--plot", "demo.xyz"], "", 2, "the file name must end in one of"),
        (["forecast", "--target", "v", "--time", "t", "-H", "3"],
         "t,v\n2020-01-01,1\n2020-01-02,2\n9999-12-31,3\n9999-12-31,4\n", 1,
         "row 3 (line 4): the 3 forecast dates after 9999-12-31T00:00:00"),
        (["forecast", "--target", "v", "--time", "t"], "t,v\n2020-01,1\n2020-02,2\nsoon,3\n", 1,
         "row 3 (line 4): column 't' has 'soon', not a date"),
        (["forecast", "--target", "v", "--time", "t", "--with-times"], "t,v\n12,1\n", 1,
         "row 1 (line 2): column 't' has '12', not a date (--with-times"),
        (["detect", "--target", "v"], "v\n1\n" + "x" * 140_000 + "\n", 1,
         "row 2 (line 3) has a field longer than 131072 characters"),
        (["detect", "--target", "readings.csv"], "v\n1\n", 2, "column 'readings.csv' not found"),
        (["detect", "--target", "v", "missing.csv"], "v\n1\n", 2, "no such file: missing.csv (given after --target)"),
    ],
)
def test_service_error_paths(argv, text, status, message):
    """Each a one-line message with its exit status, never a traceback, and
    the usage errors before any output."""
    got, out, err = run(argv, text)
    assert got == status and message in err and "Traceback" not in err, err
    assert err.strip().count("\n") == 0 or err.startswith("usage:")
    if status == 2:
        assert out == ""


def test_bad_bytes_and_gzip_are_named_with_their_row(tmp_path):
    argv = ["detect", "--target", "v", "--hidden-size", "4", "--no-progress"]
    path = tmp_path / "latin.csv"
    path.write_bytes("v,place\n1,a\n2,Zürich\n".encode("latin-1"))
    status, out, err = run(argv + [str(path)])
    assert status == 1 and "row 2 (line 3) is not text in this encoding (byte 0xfc); see --encoding" in err
    assert len(out.splitlines()) == 2 and "Traceback" not in err
    assert run(argv + [str(path), "--encoding", "latin-1"])[0] == 0
    plain = tmp_path / "v.csv"
    plain.write_text("v\n1\n2\n3\n")
    packed = tmp_path / "v.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert run(argv + [str(packed)]) == run(argv + [str(plain)])  # .gz read decompressed
    hidden = tmp_path / "v2.csv"
    hidden.write_bytes(packed.read_bytes())
    status, out, err = run(argv + [str(hidden)])
    assert status == 1 and out == "" and "the input is gzip-compressed: name the file *.gz" in err
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(packed.read_bytes()[:-6])
    status, _, err = run(argv + [str(broken)])
    assert status == 1 and "cannot decompress" in err and "Traceback" not in err


def test_subprocess_bad_bytes_on_standard_input():
    proc = _subprocess(["detect", "-", "--target", "v", "--hidden-size", "4"], stdin=subprocess.PIPE,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=False)
    out, err = proc.communicate(b"v\n1\n\xff\n", timeout=60)
    assert proc.returncode == 1 and b"row 2 (line 3) is not text in this encoding (byte 0xff)" in err
    assert b"Traceback" not in err and len(out.splitlines()) == 2
    proc = _subprocess(["detect", "-", "--target", "v"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=False)
    _, err = proc.communicate(gzip.compress(b"v\n1\n"), timeout=60)
    assert proc.returncode == 1 and b"gzip-compressed" in err and b"Traceback" not in err


def test_load_of_a_folder_is_a_usage_error(tmp_path):
    status, out, err = run(["detect", "--target", "v", "--load", str(tmp_path)], "v\n1\n")
    assert status == 2 and out == "" and "is a folder, not a model file" in err and "Traceback" not in err


def test_a_file_named_after_target_is_the_input(tmp_path):
    path = tmp_path / "readings.csv"
    path.write_text("value,other\n1,5\n2,6\n")
    argv = ["detect", "--hidden-size", "4", "--no-progress"]
    expected = run(argv + [str(path), "--target", "value"])
    assert expected[0] == 0 and len(expected[1].splitlines()) == 3
    assert run(argv + ["--target", "value", str(path)]) == expected  # not read as a second target
    assert run(argv + ["--target", "value", "-"], path.read_text()) == expected
    both = run(argv + ["--target", "value", "other", str(path)])
    assert both[0] == 0 and both == run(argv + [str(path), "--target", "value", "other"])


def test_version():
    import streamrnn

    assert run(["--version"]) == (0, f"streamrnn {streamrnn.__version__}\n", "")


def test_delimiter_encoding_and_target_columns():
    text = "t;v\n1;1,5\n2;2\n".replace(",", ".")
    status, out, err = run(["detect", "--target", "v", "--time", "t", "-d", ";", "--with-target",
                            "--hidden-size", "4"], text)
    assert status == 0, err
    assert [line.split(";")[:3] for line in out.splitlines()] == [["t", "v", "score"], ["1", "1.5", ""],
                                                                  ["2", "2", ""]]
    status, out, _ = run(["forecast", "--target", "v", "--delimiter", "tab", "--hidden-size", "4"], "v\n1\n2\n")
    assert status == 0 and out.splitlines()[0] == "v+1" and "\t" not in out
    status, out, _ = run(["forecast", "--target", "v", "w", "--delimiter", "tab", "--hidden-size", "4"],
                         "v\tw\n1\t2\n")
    assert status == 0 and out.splitlines()[0] == "v+1\tw+1"


@pytest.mark.parametrize("dates, first, future", [
    (["1949-01", "1949-02", "1949-03"], dt.datetime(1949, 1, 1), ["1949-04-01", "1949-05-01"]),  # AirlinePassengers
    (["Jan 1980", "Feb 1980", "Mar 1980"], dt.datetime(1980, 1, 1), ["1980-04-01", "1980-05-01"]),
    (["Q1 1965", "Q2 1965", "Q3 1965"], dt.datetime(1965, 1, 1), ["1965-10-01", "1966-01-01"]),
    (["1965 Q1", "1965 Q2", "1965 Q3"], dt.datetime(1965, 1, 1), ["1965-10-01", "1966-01-01"]),
    (["31/01/2020", "01/02/2020", "02/02/2020"], dt.datetime(2020, 1, 31), ["2020-02-03", "2020-02-04"]),
    (["2020-01-31 10:00", "2020-02-01 10:00", "2020-02-02 10:00"], dt.datetime(2020, 1, 31, 10),
     ["2020-02-03T10:00", "2020-02-04T10:00"]),
    (["2019-11-15", "2019-12-15", "2020-01-15"], dt.datetime(2019, 11, 15), ["2020-02-15", "2020-03-15"]),
])
def test_dates_pandas_parses_date_the_forecasts(dates, first, future):
    """``--with-times`` writes the date of each forecast step (TIME+h), the
    last spacing of the key's rows apart (whole calendar months for monthly
    and quarterly data): the dates were read as dates."""
    from streamrnn.cli.times import TimeParser

    text = "t,v\n" + "".join(f"{d},{i}\n" for i, d in enumerate(dates))
    status, out, err = run(["forecast", "--target", "v", "--time", "t", "-H", "2", "--with-times",
                            "--hidden-size", "4"], text)
    assert status == 0, err
    rows = rows_of(out)
    assert rows[0] == ["t", "t+1", "t+2", "v+1", "v+2"]
    assert rows[1][1:3] == ["", ""]  # one date: no spacing yet
    parser = TimeParser()
    assert parser.parse(dates[0]) == first and all(isinstance(parser.parse(d), dt.datetime) for d in dates)
    assert rows[-1][1:3] == [dt.datetime.fromisoformat(f).isoformat() for f in future]


def test_time_values_that_are_numbers_or_ambiguous_are_no_dates():
    from streamrnn.cli.times import TimeParser

    parser = TimeParser()
    assert [parser.parse(t) for t in ("12", "1.5", "", "01/02/2020", "soon")] == [None] * 5
    assert parser.parse("2020") == dt.datetime(2020, 1, 1) and parser.parse("9999-12-31") == dt.datetime(9999, 12, 31)
    status, out, _ = run(["forecast", "--target", "v", "--time", "t", "--hidden-size", "4"], "t,v\n1,1\n2,2\n")
    assert status == 0 and [r[0] for r in rows_of(out)] == ["t", "1", "2"]  # row numbers: copied, no dates


def test_max_idle_bounds_the_keys_of_a_keyed_run(tmp_path):
    from streamrnn.persistence import load

    model = str(tmp_path / "m.npz")
    text = "k,v\n" + "".join(f"sensor-{i // 3},{i % 3}\n" for i in range(59))  # 20 keys, 3 rows each (the last 2)
    base = ["detect", "--target", "v", "--key", "k", "--hidden-size", "2", "--save", model]
    assert run(base + ["--max-idle", "4"], text)[0] == 0
    assert load(model).keys == ["sensor-18", "sensor-19"]
    assert run(base, text)[0] == 0
    assert len(load(model).keys) == 20
    status, out, err = run(["forecast", "--target", "v", "--key", "k", "--time", "t", "--hidden-size", "2",
                            "--max-idle", "4", "--save", model], "t," + text.replace("\n", "\n2020-01-01,")[:-11])
    assert status == 0 and len(load(model).keys) == 2, err
    from streamrnn.persistence import info

    assert sorted(info(model)["metadata"]["times"]) == ["sensor-18", "sensor-19"]  # the run's own state pruned too


def test_keyed_plots_use_each_keys_own_rows(monkeypatch, tmp_path):
    pytest.importorskip("matplotlib")
    from streamrnn import plot

    seen = {}

    def capture(name, original):
        def wrapped(*args, **kwargs):
            seen[name] = list(kwargs["index"])
            return original(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(plot, "anomalies", capture("detect", plot.anomalies))
    monkeypatch.setattr(plot, "forecast", capture("forecast", plot.forecast))
    text = "k,v\n" + "".join(f"{'ab'[i % 2]},{i % 5}\n" for i in range(20))
    for command in ("detect", "forecast"):
        status, _, err = run([command, "--target", "v", "--key", "k", "--hidden-size", "2",
                              "--plot", str(tmp_path / f"{command}.png")], text)
        assert status == 0, err
        assert seen[command] == list(range(1, 11))  # key a's rows 1..10, not the file's rows 1, 3, .., 19


def test_reading_a_terminal_says_so():
    """`streamrnn detect --target value` with no FILE waits on the terminal:
    not silently."""
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stdout, stderr = io.StringIO(), io.StringIO()
    assert main(["detect", "--target", "v", "--hidden-size", "2"], stdin=Terminal("v\n1\n"), stdout=stdout,
                stderr=stderr) == 0
    assert "reading CSV rows from the terminal" in stderr.getvalue() and len(stdout.getvalue().splitlines()) == 2


def test_a_score_rounded_to_float32_never_contradicts_its_flag():
    """A score just below the threshold whose float32 text reads as the
    threshold is written in full beside its 0 flag."""
    text = waterflow_csv(150)
    _, out, _ = run(["detect", "--target", "flow", "--hidden-size", "8"], text)
    scores = [float(r[0]) for r in rows_of(out)[1:] if r[0] != ""]
    full = PredictiveDetector(hidden_size=8, seed=0)
    exact = []
    for _, y in datasets.WaterFlow():
        exact.append(full.score_one({"flow": y}))
        full.learn_one({"flow": y})
        if len(exact) == 150:
            break
    # (scores whose float32 text reads at or above their float32, itself above them)
    rounded_up = [s for s in exact if s > 0 and float(str(np.float32(s))) >= float(np.float32(s)) > s]
    assert scores and rounded_up
    threshold = float(np.float32(rounded_up[0]))  # the score lies below it, its float32 text on it
    _, out, _ = run(["detect", "--target", "flow", "--hidden-size", "8", "--threshold", repr(threshold)], text)
    rows = rows_of(out)[1:]
    assert all((float(score) >= threshold) == (flag == "1") for score, flag in rows if score != "")
    assert repr(rounded_up[0]) in [score for score, _ in rows]


def test_a_signal_mid_row_lets_the_row_finish(monkeypatch, tmp_path):
    """SIGTERM while a row is learned: the row is finished (learned and
    written), then the model saved and the run ends with status 143."""
    import signal

    from streamrnn.keyed import KeyedDetector
    from streamrnn.persistence import load

    learn = KeyedDetector.learn_one
    calls = []

    def learn_one(self, key, x):
        calls.append(x)
        if len(calls) == 3:
            signal.raise_signal(signal.SIGTERM)  # handled at once: deferred to the row's end
        learn(self, key, x)

    monkeypatch.setattr(KeyedDetector, "learn_one", learn_one)
    before = signal.getsignal(signal.SIGTERM)
    path = tmp_path / "m.npz"
    status, out, err = run(["detect", "--target", "v", "--hidden-size", "4", "--save", str(path)],
                           "v\n1\n3\n2\n5\n4\n")
    assert status == 143 and len(out.splitlines()) == 1 + 3 and err == ""
    assert signal.getsignal(signal.SIGTERM) is before  # the handlers are restored
    monkeypatch.undo()
    assert _going_on(load(path)) == _going_on(_trained([1, 3, 2]))


def test_forecast_global_matches_the_api_and_resumes(tmp_path):
    """``--global``: one GlobalForecaster over every key, each row learned
    and forecast as the API does it by hand; saved and loaded, it resumes
    bit-identically."""
    from streamrnn import GlobalForecaster

    text = waterflow_csv(80, keys=True)
    argv = ["forecast", "-", "--target", "flow", "--time", "time", "--key", "site", "--horizon", "2",
            "--interval", "0.9", "--hidden-size", "4", "--seed", "1"]
    status, out, err = run(argv + ["--global"], text)
    assert status == 0, err
    rows = rows_of(out)
    assert rows[0] == ["time", "site", "flow+1", "flow+2", "flow+1_lo", "flow+1_hi", "flow+2_lo", "flow+2_hi"]
    model = GlobalForecaster(hidden_size=4, seed=1)
    for row, src in zip(rows[1:], rows_of(text)[1:]):
        key = (src[2], "flow")
        model.learn_one(key, float(src[1]), {"time": dt.datetime.fromisoformat(src[0])})
        lo, hi = model.forecast_interval(key, 2, 0.9)
        assert [float(v) for v in row[2:]] == f32(model.forecast(key, 2) + [lo[0], hi[0], lo[1], hi[1]])
    assert len(model) == 2 and model.n_updates > 0
    lines = text.splitlines()
    path = str(tmp_path / "global.npz")
    s1, part1, _ = run(argv[:-4] + ["--global", "--hidden-size", "4", "--seed", "1", "--save", path],
                       "\n".join(lines[:41]) + "\n")
    s2, part2, err = run(argv[:-4] + ["--load", path], "\n".join([lines[0]] + lines[41:]) + "\n")
    assert s1 == s2 == 0, err
    assert rows_of(part1) + rows_of(part2)[1:] == rows
    status, _, err = run(argv + ["--global", "--direct"], text)
    assert status == 2 and "--direct" in err


def test_warmup_compiles_the_kernels_into_the_cache():
    """``streamrnn warmup`` runs the commands' default models, so Numba's
    cache holds their kernels (the index of the network's step among them)."""
    from streamrnn.cli.warmup import cache_location
    from streamrnn.kernels import recurrent

    status, out, err = run(["warmup"])
    assert status == 0 and err == ""
    assert out.startswith(f"kernels compiled and cached in {cache_location()} (")
    assert os.path.exists(recurrent.learn_one._cache._cache_file._index_path)


def test_detect_leaves_rows_not_scored_empty_and_evaluate_reads_them_as_such():
    """The warm-up and a row with a missing value have empty score and flag
    cells; read back as NaN, streamrnn.evaluate leaves them out of the point
    metrics and never counts them as detections."""
    from streamrnn.evaluate import LabelledSeries, nab_file_score, roc_auc

    lines = waterflow_csv(300).splitlines()
    time, _ = lines[200].split(",")
    lines[200] = f"{time},"  # a missing value
    status, out, err = run(["detect", "--target", "flow", "--hidden-size", "8"], "\n".join(lines) + "\n")
    assert status == 0, err
    rows = rows_of(out)[1:]
    empty = np.array([r == ["", ""] for r in rows])
    assert empty[:101].all() and empty[199] and empty.sum() == 102  # (row 199 of the output: line 200)
    scores = np.array([float(r[0]) if r[0] else np.nan for r in rows])
    labels = np.zeros(len(rows), dtype=bool)
    labels[250:260] = True
    assert roc_auc(labels, scores) == roc_auc(labels[~empty], scores[~empty])
    series = LabelledSeries("f", len(rows), [(90, 110)])
    assert nab_file_score(series, scores, 0.0) == nab_file_score(series, np.where(empty, -1.0, scores), 0.0)
