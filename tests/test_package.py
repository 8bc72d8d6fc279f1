"""What a newcomer meets first: the licence, the top-level names and the
docstrings help() shows."""

import inspect
import pydoc
import re
import tomllib
from pathlib import Path

import pytest

import streamrnn

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = ["GRUClassifier", "LSTMClassifier", "RNNClassifier", "GRUForecaster", "LSTMForecaster", "RNNForecaster",
          "GRURegressor", "LSTMRegressor", "RNNRegressor", "PredictiveDetector", "ReconstructionDetector"]


def test_the_licence_is_the_mit_text_pyproject_names():
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"] == "MIT"
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n\nCopyright (c) streamrnn contributors\n")
    assert "Permission is hereby granted, free of charge" in text and 'THE SOFTWARE IS PROVIDED "AS IS"' in text


def test_the_detectors_are_importable_from_the_top_level():
    from streamrnn import PredictiveDetector, ReconstructionDetector  # noqa: F401
    from streamrnn import anomaly

    assert {"PredictiveDetector", "ReconstructionDetector"} <= set(streamrnn.__all__)
    assert streamrnn.PredictiveDetector is anomaly.PredictiveDetector
    assert all(hasattr(streamrnn, name) for name in streamrnn.__all__)


@pytest.mark.parametrize("name", PUBLIC)
def test_each_public_class_documents_its_own_parameters(name):
    cls = getattr(streamrnn, name)
    doc = cls.__dict__["__doc__"]
    assert "\nParameters\n----------\n" in doc
    section = doc.split("\nParameters\n----------\n")[1].split("\n\n")[0]
    entries = re.findall(r"^(\w+) : ", section, re.M)
    assert entries == list(inspect.signature(cls.__init__).parameters)[1:]
    assert "See the class description" not in section  # every parameter described
    hidden = inspect.signature(cls.__init__).parameters["hidden_size"].default
    assert f"hidden_size : int, default {hidden}\n    Hidden units per layer." in pydoc.render_doc(cls, renderer=pydoc.plaintext).replace(" |  ", "").replace(" |", "")


@pytest.mark.parametrize("argv, status", [(["--help"], 0), (["--version"], 0), (["info"], 0), (["forecast", "--help"], 0),
                                          (["forecast", "readings.csv"], 2), (["detect", "--hidden-size", "0"], 2)])
def test_commands_that_need_no_model_import_neither_river_nor_the_kernels(argv, status):
    """``--help``, ``--version``, ``info`` and argument errors start at once:
    they import neither River, pandas, SciPy nor matplotlib, nor any of
    streamrnn's kernels, so nothing is compiled, even with a cold cache; nor
    Numba or NumPy (``info`` imports Numba only to ask numba-cuda for a
    GPU, and only when asked: ``info --cuda``)."""
    import subprocess
    import sys

    heavy = ["river", "pandas", "scipy", "matplotlib", "numpy", "numba", "numba_cuda"]
    code = ("import io, sys, contextlib; from streamrnn.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
            f"    status = main({argv!r})\n"
            f"loaded = [m for m in sys.modules if m.split('.')[0] in {heavy!r} or m.startswith('streamrnn.kernels')]\n"
            "print(status, loaded)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"{status} []"


def test_the_package_imports_its_public_names_on_first_use():
    import subprocess
    import sys

    code = ("import sys, streamrnn; before = 'river' in sys.modules\n"
            "from streamrnn import LSTMForecaster, load\n"
            "print(before, 'river' in sys.modules, LSTMForecaster.__module__, sorted(dir(streamrnn)) == sorted(set(dir(streamrnn))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True", "streamrnn.forecasting", "True"]
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        streamrnn.Nothing  # noqa: B018


def test_learning_one_step_compiles_the_step_inside_its_kernel_only():
    """``learn_step`` and the update it runs are inlined into the kernels
    that call them, never compiled on their own (each separately compiled
    level has LLVM optimise its whole call tree once more: seconds of a
    first run); the entry points are compiled, or loaded from the cache,
    for the model's dtype alone."""
    import subprocess
    import sys

    code = ("from streamrnn import OnlineRNN; from streamrnn.kernels import recurrent as K\n"
            "OnlineRNN(hidden_size=2, k1=2, k2=4, recompute=True).learn([0.5], [0.1])\n"
            "print([len(f.signatures) for f in (K.learn_one, K.learn_step, K.tbptt_update, K.recompute_window)])\n"
            "print([str(s[2].dtype) for s in K.learn_one.signatures])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:2] == ["[1, 0, 0, 0]", "['float32']"]


def test_the_forecasters_load_rivers_base_class_without_its_time_series_toolkit():
    """``LSTMForecaster`` subclasses River's ``Forecaster`` without importing
    the rest of ``river.time_series`` (SNARIMAX, the metrics and what they
    import); importing that package later gives the same class, so River's
    own checks see a forecaster."""
    import subprocess
    import sys

    code = ("import sys; from streamrnn import LSTMForecaster\n"
            "print(sorted(m for m in ('river.time_series', 'river.time_series.snarimax', 'river.metrics') if m in sys.modules))\n"
            "from river import time_series; from river.time_series.base import Forecaster\n"
            "print(issubclass(LSTMForecaster, time_series.base.Forecaster), Forecaster is time_series.base.Forecaster,"
            " isinstance(LSTMForecaster(), Forecaster))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:2] == ["[]", "True True True"]
