"""The command-line tool, in process (``main(argv)`` with in-memory streams)
and as a subprocess: outputs against the Python API run by hand, and every
error path."""

import csv
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
from streamrnn.anomaly import PredictiveDetector
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
        assert row[1] == str(np.float32(score))
        assert row[2] == str(int(score >= DEFAULT_THRESHOLD))


def test_detect_threshold_and_quantile_options():
    text = waterflow_csv(150)
    _, out, _ = run(["detect", "--target", "flow", "--threshold", "0"], text)
    assert {r[1] for r in rows_of(out)[1:]} == {"1"}
    _, out, _ = run(["detect", "--target", "flow", "--quantile", "0.9"], text)
    flags = np.array([int(r[1]) for r in rows_of(out)[1:]])
    scores = np.array([float(r[0]) for r in rows_of(out)[1:]])
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


def _subprocess(args, **kwargs):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "streamrnn", *args], env=env, cwd=ROOT, text=True, **kwargs)


def test_subprocess_answers_a_pipe_row_by_row():
    proc = _subprocess(["detect", "-", "--target", "v", "--hidden-size", "4"],
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdin.write("v\n1.0\n")
    proc.stdin.flush()
    assert proc.stdout.readline() == "score,is_anomaly\n"
    first = proc.stdout.readline()  # answered before the input ends
    assert first.endswith(",0\n")
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
