"""Regressors and classifiers on streams whose past targets carry the signal
(issue 20): streamrnn's recurrent estimators at their defaults, which feed
the targets already revealed back as inputs, beside River's models given the
same revealed targets as lag features, and no-change.

Streams, progressive validation (each row predicted, then learned):

- ``elec2``: Elec2, 45,312 rows (``../shared/data/elec2/elec2.csv`` from the
  repository root; skipped, with the reason, without it). River's models get
  the last 3 labels as features (``lag1..lag3``; labels True for UP); no-change predicts
  the last label. Accuracy and Cohen's kappa.
- ``trump``: River's TrumpApproval, 1,001 rows; River's models get the last
  target as a feature; no-change predicts it. MAE and R².
- ``waterflow``: River's WaterFlow as "next hour from this hour": ``x`` the
  hour's flow and time, ``y`` the next hour's flow (1,267 rows); no-change
  predicts the hour's flow (the feature).
- ``chick``: River's ChickWeights, 578 rows, 50 chicks interleaved; streamrnn
  with ``key="chick"`` (each chick its own hidden state and revealed
  weights), River's models with each chick's last weight (and its time) as
  features (the chick id kept as a feature); no-change predicts the chick's
  last weight (its first row: the mean of the first weights seen so far).

Every model is scored from the second row on (nothing is revealed before
it). River's regressors all get standardised features and targets
(``TargetStandardScaler(StandardScaler() | model)``: the linear models in the
trees' leaves diverge on TrumpApproval's raw values otherwise).

streamrnn's models at defaults (only ``seed``, and ``key`` for ``chick``);
their figures are the median over seeds 0, 1, 2 (``--seeds``). River's:
``StandardScaler | LogisticRegression`` or ``LinearRegression`` (with
``TargetStandardScaler`` for regression), ``HoeffdingAdaptiveTree*``,
``forest.ARF*`` (``seed=0``). µs per row: predict plus learn, wall clock,
including the feature building of each model's rows.

Run: ``python benchmarks/bench_sequential.py [--streams elec2,trump,waterflow,chick] [--seeds 0,1,2]
[--models ...] [--json out.json]``
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import pathlib
import statistics
import sys
import time

from river import datasets, forest, linear_model, metrics, preprocessing, tree

import streamrnn

DATA = pathlib.Path(__file__).resolve().parent.parent.parent / "shared" / "data"
ELEC2 = DATA / "elec2" / "elec2.csv"


# ------------------------------------------------------------------ streams


def elec2_rows():
    """Elec2's rows (x, label), or None without the file."""
    if not ELEC2.exists():
        return None
    with open(ELEC2) as f:
        rows = []
        for r in csv.DictReader(f):
            y = r.pop("class") == "UP"  # as River's Elec2 loader gives it
            rows.append(({k: float(v) for k, v in r.items()}, y))
    return rows


def trump_rows():
    return list(datasets.TrumpApproval())


def waterflow_rows():
    series = list(datasets.WaterFlow())
    rows = []
    for (x, v), (_, nxt) in zip(series[:-1], series[1:]):
        t = x["Time"]
        rows.append(({"flow": v, "hour": float(t.hour), "weekday": float(t.weekday())}, nxt))
    return rows


def chick_rows():
    return [({"time": float(x["time"]), "chick": x["chick"], "diet": float(x["diet"])}, float(y))
            for x, y in datasets.ChickWeights()]


STREAMS = {
    "elec2": ("classification", elec2_rows),
    "trump": ("regression", trump_rows),
    "waterflow": ("regression", waterflow_rows),
    "chick": ("regression", chick_rows),
}


# --------------------------------------------------------- revealed targets


class Lags:
    """The revealed targets as features, for River's models and no-change:
    per stream, what each row may know of the targets learned before it."""

    def __init__(self, stream: str):
        self.stream = stream
        self.labels: list = []  # elec2: the last labels
        self.last = None  # trump, waterflow: the last target
        self.chick: dict = {}  # chick: each chick's last (time, weight)
        self.first_weights: list = []

    def features(self, x: dict) -> dict:
        x = dict(x)
        if self.stream == "elec2":
            for lag in (1, 2, 3):
                x[f"lag{lag}"] = float(self.labels[-lag]) if len(self.labels) >= lag else 0.5
        elif self.stream == "trump":
            x["last"] = self.last if self.last is not None else 0.0
        elif self.stream == "chick":
            t, w = self.chick.get(x["chick"], (0.0, self.default_weight()))
            x["last_weight"], x["since"] = w, x["time"] - t
        return x

    def default_weight(self) -> float:
        return statistics.fmean(self.first_weights) if self.first_weights else 0.0

    def no_change(self, x: dict):
        if self.stream == "elec2":
            return self.labels[-1] if self.labels else None
        if self.stream == "waterflow":
            return x["flow"]
        if self.stream == "chick":
            return self.chick.get(x["chick"], (0.0, self.default_weight()))[1]
        return self.last if self.last is not None else 0.0

    def reveal(self, x: dict, y) -> None:
        self.labels = (self.labels + [y])[-3:]
        self.last = y
        if self.stream == "chick":
            if x["chick"] not in self.chick:
                self.first_weights.append(y)
            self.chick[x["chick"]] = (x["time"], y)


# ------------------------------------------------------------------- models


class NoChange:
    pass


def river_models(task: str) -> dict:
    if task == "classification":
        return {
            "LogisticRegression": lambda: preprocessing.StandardScaler() | linear_model.LogisticRegression(),
            "HoeffdingAdaptiveTree": lambda: tree.HoeffdingAdaptiveTreeClassifier(seed=0),
            "ARF": lambda: forest.ARFClassifier(seed=0),
        }
    return {
        "LinearRegression": lambda: preprocessing.TargetStandardScaler(
            preprocessing.StandardScaler() | linear_model.LinearRegression()),
        "HoeffdingAdaptiveTree": lambda: preprocessing.TargetStandardScaler(
            preprocessing.StandardScaler() | tree.HoeffdingAdaptiveTreeRegressor(seed=0)),
        "ARF": lambda: preprocessing.TargetStandardScaler(preprocessing.StandardScaler() | forest.ARFRegressor(seed=0)),
    }


def streamrnn_models(task: str, stream: str) -> dict:
    extra = {"key": "chick"} if stream == "chick" else {}
    if task == "classification":
        return {"GRU": lambda seed: streamrnn.GRUClassifier(seed=seed, **extra),
                "LSTM": lambda seed: streamrnn.LSTMClassifier(seed=seed, **extra)}
    return {"GRU": lambda seed: streamrnn.GRURegressor(seed=seed, **extra),
            "LSTM": lambda seed: streamrnn.LSTMRegressor(seed=seed, **extra)}


# ---------------------------------------------------------------- evaluation


def evaluate(rows, task: str, stream: str, model, lags: bool) -> dict:
    """Progressive validation of ``model`` (``NoChange()`` for no-change);
    with ``lags`` its rows get the revealed targets as features."""
    history = Lags(stream)
    if task == "classification":
        scores = [metrics.Accuracy(), metrics.CohenKappa()]
    else:
        scores = [metrics.MAE(), metrics.R2()]
    start = time.perf_counter()
    for t, (x, y) in enumerate(rows):
        if isinstance(model, NoChange):
            pred = history.no_change(x)
        else:
            xi = history.features(x) if lags else x
            pred = model.predict_one(xi)
            model.learn_one(xi, y)
        if pred is not None and t > 0:  # from the second row on: the first has nothing revealed
            for m in scores:
                m.update(y, pred)
        history.reveal(x, y)
    us = 1e6 * (time.perf_counter() - start) / len(rows)
    return {type(m).__name__: m.get() for m in scores} | {"us_per_row": us}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", default="elec2,trump,waterflow,chick")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--models", default=None, help="comma-separated model names (default: all)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    wanted = None if args.models is None else set(args.models.split(","))
    results = []
    for stream in args.streams.split(","):
        task, load = STREAMS[stream]
        rows = load()
        if rows is None:
            print(f"{stream}: skipped, {ELEC2} not found (the Elec2 copy lives in ../shared/data)")
            continue
        # compile the kernels outside the timings
        for make in streamrnn_models(task, stream).values():
            evaluate(rows[:50], task, stream, make(0), lags=False)
        candidates = {"no-change": [lambda _: NoChange()]}
        candidates |= {name: [lambda _, m=make: m()] for name, make in river_models(task).items()}
        candidates |= {name: [lambda s, m=make: m(s)] for name, make in streamrnn_models(task, stream).items()}
        for name, (make,) in candidates.items():
            if wanted is not None and name not in wanted:
                continue
            is_ours = name in ("GRU", "LSTM")
            runs = [evaluate(rows, task, stream, make(seed), lags=not is_ours) for seed in (seeds if is_ours else [0])]
            row = {"stream": stream, "model": name, "n": len(rows), "seeds": seeds if is_ours else None}
            for k in runs[0]:
                row[k] = statistics.median(r[k] for r in runs)
            if is_ours:
                row["per_seed"] = [r[next(iter(r))] for r in runs]
            results.append(row)
            scores = "  ".join(f"{k} {v:.4f}" if k != "us_per_row" else f"{v:.0f} µs/row"
                               for k, v in row.items() if k in runs[0])
            print(f"{stream:10s} {name:22s} {scores}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=lambda v: None if isinstance(v, float) and math.isnan(v) else v)
    return 0


if __name__ == "__main__":
    sys.exit(main())
