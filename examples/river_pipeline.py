"""streamrnn's regressors and classifiers inside River pipelines, scored by
River's ``evaluate.progressive_val_score`` against River's linear models.

- Regression on River's bundled TrumpApproval (1,001 daily rows: five
  pollsters' figures, predict the approval average):
  ``preprocessing.StandardScaler() | LSTMRegressor(seed=0)`` against
  ``preprocessing.StandardScaler() | linear_model.LinearRegression()``, MAE.
- Binary classification on River's bundled Phishing (1,250 web pages):
  ``preprocessing.StandardScaler() | LSTMClassifier(seed=0)`` against
  ``preprocessing.StandardScaler() | linear_model.LogisticRegression()``,
  accuracy and ROC-AUC.

Progressive validation: every row is predicted, then learned. The LSTM's
hidden state runs along the stream of rows, so it can use their order. With
``--plot PATH`` it draws TrumpApproval and both regressors' predictions
(``streamrnn.plot``; needs matplotlib).

Run: ``python examples/river_pipeline.py [--task both] [--seed 0] [--plot trump.png]``
"""

from __future__ import annotations

import argparse
import time

from river import datasets, evaluate, linear_model, metrics, preprocessing

from streamrnn import LSTMClassifier, LSTMRegressor


def score(dataset, model, metric, limit: int | None = None) -> tuple[object, list, float]:
    """``progressive_val_score``'s metric after the stream, the prediction
    made for each row (before learning it) and the seconds taken."""
    stream = dataset if limit is None else dataset.take(limit)
    predictions = []
    start = time.perf_counter()
    result = None
    for step in evaluate.iter_progressive_val_score(stream, model, metric, step=1, yield_predictions=True):
        predictions.append(step["Prediction"])
        result = step
    seconds = time.perf_counter() - start
    return result[metric.__class__.__name__] if result else metric, predictions, seconds


def regression(args) -> dict:
    models = {
        "StandardScaler | LinearRegression": preprocessing.StandardScaler() | linear_model.LinearRegression(),
        f"StandardScaler | LSTMRegressor(seed={args.seed})": (
            preprocessing.StandardScaler() | LSTMRegressor(seed=args.seed)
        ),
    }
    print("TrumpApproval, progressive validation: MAE")
    out = {}
    for name, model in models.items():
        metric, predictions, seconds = score(datasets.TrumpApproval(), model, metrics.MAE(), args.limit)
        out[name] = {"MAE": metric.get(), "predictions": predictions}
        print(f"  {name:<42} {metric.get():8.4f}   {seconds:5.2f} s")
    return out


def classification(args) -> dict:
    models = {
        "StandardScaler | LogisticRegression": preprocessing.StandardScaler() | linear_model.LogisticRegression(),
        f"StandardScaler | LSTMClassifier(seed={args.seed})": (
            preprocessing.StandardScaler() | LSTMClassifier(seed=args.seed)
        ),
    }
    print("Phishing, progressive validation: accuracy, ROC-AUC")
    out = {}
    for name, model in models.items():
        stream = datasets.Phishing() if args.limit is None else datasets.Phishing().take(args.limit)
        accuracy, auc = metrics.Accuracy(), metrics.ROCAUC()
        start = time.perf_counter()
        evaluate.progressive_val_score(stream, model, accuracy + auc)  # ROCAUC uses the probabilities
        seconds = time.perf_counter() - start
        out[name] = {"Accuracy": accuracy.get(), "ROCAUC": auc.get()}
        print(f"  {name:<42} {accuracy.get():8.4f} {auc.get():8.4f}   {seconds:5.2f} s")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("regression", "classification", "both"), default="both")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, help="use only the first LIMIT rows of each data set")
    parser.add_argument("--plot", metavar="PATH", help="save a plot of the TrumpApproval predictions there")
    args = parser.parse_args(argv)
    if args.plot and args.task == "classification":
        parser.error("--plot draws the regression: use --task regression or both")

    results = {}
    if args.task in ("regression", "both"):
        results["regression"] = regression(args)
    if args.task in ("classification", "both"):
        results["classification"] = classification(args)

    if args.plot:
        from streamrnn import plot

        stream = datasets.TrumpApproval() if args.limit is None else datasets.TrumpApproval().take(args.limit)
        actual = [y for _, y in stream]
        (linear, linear_result), (lstm, lstm_result) = results["regression"].items()
        ax = plot.forecast(actual, lstm_result["predictions"],
                           title="TrumpApproval: progressive predictions (each made before its row is learned)")
        ax.plot(linear_result["predictions"], color="0.6", lw=0.8, zorder=1, label=linear.split(" | ")[1])
        low, high = min(actual), max(actual)  # the first predictions, made from nothing, are far off
        ax.set_ylim(low - 0.25 * (high - low), high + 0.25 * (high - low))
        ax.lines[1].set_label(lstm.split(" | ")[1])
        ax.legend(loc="upper right", fontsize="small")
        ax.set_xlabel("day")
        ax.set_ylabel("approval (%)")
        plot.save(ax, args.plot)
        print(f"plot written to {args.plot}")
    return results


if __name__ == "__main__":
    main()
