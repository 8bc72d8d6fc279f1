"""Record the default detector's evidence at every point of the NAB corpus and
re-score it offline, to try a candidate evidence in seconds instead of a
full run of ``bench_nab.py``.

``record`` runs ``PredictiveDetector(seed=S)`` over the corpus as
``bench_nab.py`` does (``score_one`` then ``learn_one`` on each point) and
saves, for every point, its reported score and the ``-log10 Q`` of each
part of its evidence, computed from the detector's state just before it
learns the point: the raw score, the errors' news (the alarms'), the error
tails alone (the memory's), the range, the seasonal errors (the alarms'),
the quiet stretch (the memory's) and the recent ranges (the alarms').
``check`` re-scores the recording with :func:`rescore` (the refractory rule, the one-alarm flag and the memory,
written out in Numba from :mod:`streamrnn.kernels.scoring`), prints the
largest difference from the recorded scores and the NAB figures of the
re-scored corpus (standard, low FP, low FN, halves, artificialWithAnomaly,
realTweets, ROC-AUC over the real series and per half).

A candidate is an array of ``-log10 Q`` per point for the alarms or the
memory: combine it with the recorded parts (:func:`alarm_and_memory`) and
pass the result to :func:`rescore` and :func:`figures`, from a script that
imports this module.

Run: ``python benchmarks/study_nab_evidence.py record --seed S [--out DIR]``,
then ``python benchmarks/study_nab_evidence.py check --seed S [--out DIR]
[--candidate fisher2|fisher3|conditional]`` (the figures again with the
alarms also taking a candidate evidence: Fisher's combination of their
parts, ``fisher3`` the errors', the range's and the other models' as three
independent tests, ``fisher2`` the range's and the larger of the others'
as two, both breaking the calibration on heavy-tailed noise, where one
large draw is at once a record and a large error; ``conditional``, a
record whose error is also the largest of the records': see
:func:`conditional_record`. None is the detector's).
"""

from __future__ import annotations

import argparse
import math
import pathlib
import sys

import numpy as np
from numba import njit

from streamrnn.anomaly import PredictiveDetector
from streamrnn.evaluate import PROFILES, nab_corpus_score, roc_auc
from streamrnn.kernels import scoring as S

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from bench_nab import DEFAULT_DATA, category_score, load_corpus  # noqa: E402

#: The columns of a recording.
COLUMNS = ("score", "raw", "news", "model", "range", "seasonal", "quiet", "recent")


@njit
def _parts(st, quiet, values, z):
    raw = S.scaled_changes(st, values, z)
    news, model = S._error_log10(st, raw)
    return raw, news, model, S._range_log10(st, values), S._quiet_log10(st, quiet, S._quiet_raw(quiet, z))


def record(values: np.ndarray, seed: int) -> np.ndarray:
    """One row per point of ``values``: :data:`COLUMNS` (NaN but the score
    for the first point, which has no change)."""
    detector = PredictiveDetector(seed=seed)
    out = np.full((len(values), len(COLUMNS)), np.nan)
    z = np.empty(1)
    for i, v in enumerate(values):
        x = {"value": float(v)}
        out[i, 0] = detector.score_one(x)
        if detector._has_last:
            point = np.array([float(v)])
            raw, news, model, rng, quiet = _parts(detector._st, detector._quiet, point, z)
            recent = S.recent_log10(detector._st, detector._recent_ranges, point)
            out[i, 1:] = raw, news, model, rng, detector._season.log10(point), quiet, recent
        detector.learn_one(x)
    return out


def fisher2(a, b) -> np.ndarray:
    """``-log10`` of Fisher's combination of two tail probabilities given as
    ``-log10 Q`` (each at most ``SCALE``): the tail of a chi-square with 4
    degrees of freedom at ``2 ln(1 / product)``, ``e ** -s (1 + s)`` for
    ``s = ln(1 / product)``. A candidate, not the detector's: see ``check
    --candidate fisher2``."""
    t = np.minimum(a, S.SCALE) + np.minimum(b, S.SCALE)
    return t - np.log10(1.0 + S.LN10 * t)


def fisher3(a, b, c) -> np.ndarray:
    """``-log10`` of Fisher's combination of three tail probabilities given
    as ``-log10 Q`` (each at most ``SCALE``): the tail of a chi-square with
    6 degrees of freedom at ``2 ln(1 / product)``, ``e ** -s (1 + s + s ** 2
    / 2)`` for ``s = ln(1 / product)`` (NaN where a part is NaN). A
    candidate, not the detector's: see ``check --candidate fisher3``."""
    t = np.minimum(a, S.SCALE) + np.minimum(b, S.SCALE) + np.minimum(c, S.SCALE)
    s = S.LN10 * t
    return t - np.log10(1.0 + s + 0.5 * s * s)


@njit
def conditional_record(rng, raw):
    """``-log10 Q`` of a breakout as a record and as the largest error of
    the records: ``Q = Q_range (b_e + 1) / (b + 1)``, ``b`` the earlier
    breakouts of the recording, ``b_e`` those whose raw score was as large
    (``P(record) P(its error this large | a record)``, the second the rank
    of the error among those of the records, conservative); 0 elsewhere.
    A breakout is told from the recorded range part alone: at least
    ``log10(n + 1)`` (``1 + e`` range widths), ``n`` the values seen
    before it (an excursion a full range width beyond counts too). A
    candidate, not the detector's: see ``check --candidate conditional``."""
    n = rng.shape[0]
    out = np.zeros(n)
    past = np.empty(n)
    b = 0
    for i in range(n):
        if np.isnan(rng[i]):
            out[i] = np.nan
            continue
        if rng[i] > 0.0 and rng[i] >= 0.999 * math.log10(i + 1.0):
            as_large = 0
            for j in range(b):
                if past[j] >= raw[i]:
                    as_large += 1
            out[i] = rng[i] + math.log10((b + 1.0) / (as_large + 1.0))
            past[b] = raw[i]
            b += 1
    return out


def alarm_parts(rec: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``-log10 Q`` of the errors' news, of the range since the start
    and of the other models (the larger of the seasonal errors' and the
    recent ranges') at each point of a recording."""
    other = rec[:, COLUMNS.index("seasonal")]
    if rec.shape[1] > COLUMNS.index("recent"):  # (recorded before the recent ranges: none)
        other = np.maximum(other, rec[:, COLUMNS.index("recent")])
    return rec[:, COLUMNS.index("news")], rec[:, COLUMNS.index("range")], other


def alarm_and_memory(rec: np.ndarray, alarm_extra=None, memory_extra=None) -> tuple[np.ndarray, np.ndarray]:
    """The ``-log10 Q`` of the alarms and of the memory at each point of a
    recording, as the detector takes them, with the candidates' added (the
    larger counts)."""
    news, rng, other = alarm_parts(rec)
    model, quiet = rec[:, COLUMNS.index("model")], rec[:, COLUMNS.index("quiet")]
    alarm = np.maximum(np.maximum(news, rng), other)
    memory = np.maximum(np.maximum(model, rng), quiet)
    if alarm_extra is not None:
        alarm = np.maximum(alarm, alarm_extra)
    if memory_extra is not None:
        memory = np.maximum(memory, memory_extra)
    return alarm, memory


@njit
def _log_calm(m, decay):
    if m <= 0.0:
        return -math.inf
    x = (math.log(m) - S.CALM_LOG_LOW) / S.CALM_STEP
    last = S.CALM_G.shape[0] - 1
    if x >= last:
        g = 0.0
    else:
        x = max(x, 0.0)
        i = int(x)
        g = S.CALM_G[i] + (x - i) * (S.CALM_G[i + 1] - S.CALM_G[i])
    tail = 10.0 ** -m
    slope = tail * S.LN10 * m * -math.log(decay) / (1.0 - tail)
    return g / math.log(decay) + 0.5 * math.log1p(-tail) - slope / 12.0


@njit
def rescore(alarm, memory, k=10, decay=0.5 ** (1 / 200), grace=100):
    """The reported scores from the ``-log10 Q`` of the alarms and of the
    memory at each point (NaN: the first point, not recorded), with the
    detector's defaults: an alarm beats the last ``k`` evidences, none of
    them flagged at the threshold; every other point reports the
    probability of a calm memory."""
    n = alarm.shape[0]
    out = np.zeros(n)
    ring = np.zeros(k)
    pos = scored = 0
    mem = 0.0
    for i in range(n):
        if np.isnan(alarm[i]):
            continue
        ev = min(alarm[i] / S.SCALE, 1.0)
        model = min(memory[i] / S.SCALE, 1.0)
        is_alarm = ev >= S.ALARM
        if is_alarm:
            for j in range(min(scored, k)):
                e = ring[(pos - 1 - j) % k]
                if e >= S.FLAG or e >= ev:
                    is_alarm = False
                    break
        if scored >= max(grace, 1):
            if is_alarm:
                out[i] = 0.5 + 0.5 * ev
            else:
                out[i] = max(0.5 * math.exp(_log_calm(S.SCALE * max(model, mem * decay), decay)), S.TINY)
        flag = S.FLAG if is_alarm and 0.5 + 0.5 * ev >= S.THRESHOLD else 0.0
        mem = max(model, mem * decay) if scored >= grace else 0.0
        ring[pos] = ev + flag
        pos = (pos + 1) % k
        scored += 1
    return out


def figures(corpus, scores) -> dict:
    """NAB's three profiles, the halves, two categories and the ROC-AUC
    (all real series, even and odd files) of re-scored ``scores``."""
    series_list = [s for s, _ in corpus]
    scores = [np.where(s == S.NOT_SCORED, np.nan, s) for s in scores]
    nab = nab_corpus_score(series_list, scores)
    out = {"standard": nab.score, "threshold": nab.threshold}
    for p, name in (("reward_low_FP_rate", "low FP"), ("reward_low_FN_rate", "low FN")):
        out[name] = nab_corpus_score(series_list, scores, PROFILES[p]).score
    out["even"], out["odd"] = (nab_corpus_score(series_list[h::2], scores[h::2]).score for h in (0, 1))
    for cat in ("artificialWithAnomaly", "realTweets"):
        out[cat] = category_score(series_list, scores, cat, nab.threshold)
    aucs = {0: [], 1: []}
    for i, (series, s) in enumerate(zip(series_list, scores)):
        keep = series.scored()
        labels = series.labels()[keep]
        if not series.name.startswith("artificial") and labels.any() and not labels.all():
            aucs[i % 2].append(roc_auc(labels, s[keep]))
    out["ROC-AUC"] = float(np.mean(aucs[0] + aucs[1]))
    out["ROC-AUC even"], out["ROC-AUC odd"] = float(np.mean(aucs[0])), float(np.mean(aucs[1]))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("record", "check"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=pathlib.Path, default=DEFAULT_DATA)
    parser.add_argument("--candidate", choices=("fisher2", "fisher3", "conditional"), help="re-score with a candidate evidence added")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("."), help="folder of the recordings")
    args = parser.parse_args(argv)
    corpus = load_corpus(args.data)
    path = args.out / f"nab_evidence_seed{args.seed}.npz"
    if args.step == "record":
        np.savez(path, **{series.name: record(values, args.seed) for series, values in corpus})
        print(f"recorded {path}")
        return
    saved = np.load(path)
    recs = [saved[series.name] for series, _ in corpus]
    scores = [rescore(*alarm_and_memory(r)) for r in recs]
    worst = max(float(np.max(np.abs(s - r[:, 0]))) for s, r in zip(scores, recs))
    print(f"re-scored vs recorded scores: largest difference {worst:.2g}")
    print(" ".join(f"{k} {v:.4g}" for k, v in figures(corpus, scores).items()))
    if args.candidate:  # the alarms also take a candidate evidence
        candidates = []
        for r in recs:
            news, rng, other = alarm_parts(r)
            if args.candidate == "fisher3":  # errors, range and the other models: three tests
                candidates.append(fisher3(news, rng, other))
            elif args.candidate == "conditional":  # a record, and the largest error of the records
                candidates.append(conditional_record(rng, np.nan_to_num(r[:, COLUMNS.index("raw")])))
            else:  # the range and the larger of the others: two tests
                candidates.append(fisher2(rng, np.maximum(news, other)))
        scores = [rescore(*alarm_and_memory(r, c)) for r, c in zip(recs, candidates)]
        print(f"with the candidate {args.candidate}:")
        print(" ".join(f"{k} {v:.4g}" for k, v in figures(corpus, scores).items()))


if __name__ == "__main__":
    main()
