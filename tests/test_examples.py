"""The scripts in examples/ run, with quick options, and print sensible results.

Each example is loaded from its path and its ``main(argv)`` called; the NAB
example is skipped when ``../shared/data/nab`` is absent, plots are checked
only when matplotlib is installed.
"""

import csv
import math
import pathlib
import re
import runpy
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
NAB = ROOT.parent / "shared" / "data" / "nab"
NAB_SERIES = NAB / "data" / "realKnownCause" / "machine_temperature_system_failure.csv"
PNG = b"\x89PNG\r\n\x1a\n"

needs_nab = pytest.mark.skipif(
    not (NAB_SERIES.exists() and (NAB / "labels" / "combined_windows.json").exists()),
    reason=f"NAB data not found at {NAB} (it is not shipped with streamrnn)",
)


def load(name: str) -> dict:
    """The example's module namespace (``__name__`` is not ``"__main__"``, so nothing runs)."""
    return runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name=f"example_{name}")


def run(name: str, argv: list, capsys) -> tuple[object, str]:
    result = load(name)["main"](argv)
    return result, capsys.readouterr().out


@pytest.fixture
def plot_path(tmp_path):
    matplotlib = pytest.importorskip("matplotlib", reason="plots need matplotlib (pip install streamrnn[plot])")
    matplotlib.use("Agg")
    return tmp_path / "example.png"


def assert_png(path: pathlib.Path, out: str) -> None:
    assert path.read_bytes()[:8] == PNG
    assert f"plot written to {path}" in out
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []  # the example closed its figure


def numbers(line: str) -> list[float]:
    return [float(v) for v in re.findall(r"[-+]?\d+\.\d+(?:e[-+]?\d+)?", line)]


# ------------------------------------------------------------------ all of them

SCRIPTS = sorted(p.stem for p in EXAMPLES.glob("*.py"))


def test_the_examples_are_there():
    assert {"quickstart", "forecast_waterflow", "detect_nab", "many_sensors", "river_pipeline"} <= set(SCRIPTS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_example_documents_itself(name, capsys):
    module = load(name)
    doc = module["__doc__"]
    assert doc and "Run: ``python examples/" in doc
    with pytest.raises(SystemExit) as exit_:
        module["main"](["--help"])
    assert exit_.value.code == 0
    assert doc.splitlines()[0] in capsys.readouterr().out


# ------------------------------------------------------------------ quickstart


def test_quickstart(capsys):
    _, out = run("quickstart", ["--hidden-size", "8"], capsys)
    lines = out.splitlines()
    persistence = numbers(lines[1])[0]
    assert persistence == pytest.approx(0.631, abs=1e-3)
    for cell, line in zip(("rnn", "gru", "lstm"), lines[2:5]):
        assert f"OnlineRNN({cell}" in line
        assert 0 < numbers(line)[0] < 1.2 * persistence


# ---------------------------------------------------------- forecast_waterflow


def test_forecast_waterflow_matches_river_evaluate(capsys):
    from river import datasets, evaluate, metrics

    from streamrnn import LSTMForecaster

    results, out = run("forecast_waterflow", ["--limit", "300", "--horizon", "6"], capsys)
    assert "horizon 6" in out
    persistence, lstm = results["persistence"], results["LSTMForecaster(seed=0)"]
    for row in (persistence, lstm):
        assert set(row) == {"+1", "+6", "mean"}
        assert all(math.isfinite(v) and v > 0 for v in row.values())
        assert row["+1"] < row["+6"]  # further ahead is harder
    printed = {line.split()[0]: numbers(line) for line in out.splitlines()[2:4]}
    assert printed["persistence"][:3] == pytest.approx(list(persistence.values()), abs=1e-4)
    # the numbers are River's own evaluate.evaluate's
    river = evaluate.evaluate(datasets.WaterFlow().take(300), LSTMForecaster(seed=0), metrics.MAE(), horizon=6)
    assert lstm["+1"] == pytest.approx(river.metrics[0].get(), rel=1e-12)
    assert lstm["+6"] == pytest.approx(river.metrics[-1].get(), rel=1e-12)
    assert "LSTM vs persistence" in out


def test_forecast_waterflow_aligns_the_plotted_forecasts():
    module = load("forecast_waterflow")
    _, predictions, stream = module["evaluate_forecaster"](module["Persistence"](), 4, limit=50, keep_predictions=True)
    y = np.array([y for _, y in stream])
    # River's +1 forecast of row t is made before row t - 1 is learned: persistence gives y[t - 2]
    assert np.isnan(predictions[:5]).all() and np.isnan(predictions[-3:]).all()
    np.testing.assert_array_equal(predictions[5:-3], y[3:-5])


def test_forecast_waterflow_plot(plot_path, capsys):
    _, out = run("forecast_waterflow", ["--limit", "200", "--horizon", "3", "--plot", str(plot_path)], capsys)
    assert_png(plot_path, out)


# ------------------------------------------------------------------ detect_nab


@needs_nab
def test_detect_nab_default_series_with_plot(plot_path, capsys):
    result, out = run("detect_nab", ["--plot", str(plot_path)], capsys)
    assert "machine_temperature_system_failure.csv" in out
    assert result["rows"] == 22695 and result["windows"] == 4
    assert 0.0 <= result["roc_auc"] <= 1.0 and 0.0 <= result["average_precision"] <= 1.0
    assert math.isfinite(result["nab_score"]) and result["nab_score"] <= 100.0
    assert 0 <= result["windows_detected"] <= 4
    assert re.search(r"ROC-AUC \d\.\d{3}, average precision \d\.\d{3}", out)
    assert re.search(r"NAB standard score -?\d+\.\d", out)
    assert_png(plot_path, out)


@needs_nab
def test_detect_nab_limited_rows_keeps_the_windows_inside(capsys):
    result, out = run("detect_nab", [str(NAB_SERIES), "--limit-rows", "3000", "--cell", "gru", "--budget", "0.02"],
                      capsys)
    assert result["rows"] == 3000
    assert result["windows"] == 1  # the first window ends at row ~2700
    assert "PredictiveDetector(gru)" in out and "top 2 %" in out


def test_detect_nab_without_labels(tmp_path, capsys):
    path = tmp_path / "data" / "mine" / "sensor.csv"
    path.parent.mkdir(parents=True)
    rng = np.random.default_rng(0)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["timestamp", "value"])
        for i in range(400):
            value = math.sin(i / 10) + 0.1 * rng.normal() + (5.0 if i == 300 else 0.0)
            writer.writerow([f"2024-01-{1 + i // 96:02d} {(i % 96) // 4:02d}:{15 * (i % 4):02d}:00", value])
    result, out = run("detect_nab", [str(path)], capsys)
    assert result["rows"] == 400 and "roc_auc" not in result
    assert "no NAB labels found" in out
    assert numbers(out.splitlines()[1])[-1] > 0  # the largest score: the spike at row 300 is seen


def test_detect_nab_missing_data_exits_with_a_message(tmp_path):
    missing = tmp_path / "nowhere.csv"
    with pytest.raises(SystemExit) as exit_:
        load("detect_nab")["main"]([str(missing)])
    assert isinstance(exit_.value.code, str) and "NAB data is not shipped" in exit_.value.code
    # as a script: a non-zero exit status and the message on stderr
    done = subprocess.run([sys.executable, str(EXAMPLES / "detect_nab.py"), str(missing)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert f"no series at {missing}" in done.stderr


def test_detect_nab_rejects_a_csv_without_values(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("time,reading\n1,2\n")
    with pytest.raises(SystemExit, match="'timestamp' and 'value' columns"):
        load("detect_nab")["main"]([str(path)])


# ---------------------------------------------------------------- many_sensors


def test_many_sensors(capsys):
    result, out = run("many_sensors",
                      ["--sensors", "40", "--steps", "200", "--batch", "16", "--keyed", "2"], capsys)
    assert "40 synthetic sensors x 200 readings" in out and "40 models" in out
    for key in ("learn_us_per_row", "predict_us_per_row", "learn_rows_per_s", "predict_rows_per_s"):
        assert math.isfinite(result[key]) and result[key] > 0
    assert re.search(r"learn_many +\d+\.\d+ µs/row +[\d,]+ rows/s", out)
    forecasts = result["forecasts"]
    assert forecasts.shape == (40, 200)
    assert np.isnan(forecasts[:, :18]).all() and np.isfinite(forecasts[:, 18:]).all()  # the warm-up batch
    mae, persistence = result["mae"]["last quarter"]
    assert mae < persistence  # the models learn the cycles
    keyed_mae, keyed_persistence = result["keyed"]["mae"]
    assert math.isfinite(keyed_mae) and keyed_mae < 2 * keyed_persistence
    assert "KeyedForecaster(GRUForecaster) on 2 sensors" in out


@pytest.fixture
def restore_threads():
    import numba

    threads = numba.get_num_threads()
    yield
    numba.set_num_threads(threads)


def test_many_sensors_is_seeded(capsys, restore_threads):
    argv = ["--sensors", "5", "--steps", "60", "--batch", "8", "--keyed", "0"]
    first, _ = run("many_sensors", argv, capsys)
    second, out = run("many_sensors", argv + ["--threads", "1"], capsys)  # the thread count changes nothing
    np.testing.assert_array_equal(first["forecasts"], second["forecasts"])
    assert "1 Numba threads" in out and "KeyedForecaster" not in out


def test_many_sensors_plot(plot_path, capsys):
    _, out = run("many_sensors", ["--sensors", "3", "--steps", "80", "--keyed", "0", "--plot", str(plot_path)],
                 capsys)
    assert_png(plot_path, out)


# -------------------------------------------------------------- river_pipeline


def test_river_pipeline(capsys):
    from river import datasets, evaluate, linear_model, metrics, preprocessing

    results, out = run("river_pipeline", ["--limit", "300"], capsys)
    regression, classification = results["regression"], results["classification"]
    assert len(regression) == 2 and len(classification) == 2
    for name, row in regression.items():
        assert math.isfinite(row["MAE"]) and row["MAE"] > 0
        assert len(row["predictions"]) == 300
    for name, row in classification.items():
        assert 0.5 < row["Accuracy"] <= 1.0 and 0.5 < row["ROCAUC"] <= 1.0
    # the linear baselines' numbers are those of River's progressive_val_score
    linear = evaluate.progressive_val_score(datasets.TrumpApproval().take(300),
                                            preprocessing.StandardScaler() | linear_model.LinearRegression(),
                                            metrics.MAE())
    assert regression["StandardScaler | LinearRegression"]["MAE"] == pytest.approx(linear.get())
    accuracy = evaluate.progressive_val_score(datasets.Phishing().take(300),
                                              preprocessing.StandardScaler() | linear_model.LogisticRegression(),
                                              metrics.Accuracy())
    assert classification["StandardScaler | LogisticRegression"]["Accuracy"] == pytest.approx(accuracy.get())
    assert "TrumpApproval" in out and "Phishing" in out and "LSTMRegressor(seed=0)" in out


def test_river_pipeline_plot(plot_path, capsys):
    _, out = run("river_pipeline", ["--task", "regression", "--limit", "150", "--plot", str(plot_path)], capsys)
    assert "Phishing" not in out
    assert_png(plot_path, out)
