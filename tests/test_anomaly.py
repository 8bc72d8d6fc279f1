"""The predictive anomaly detector under River's AnomalyDetector contract."""

import copy
import math
import pickle

import numpy as np
import pandas as pd
import pytest
from river import anomaly, compose, preprocessing

from streamrnn.anomaly import PredictiveDetector, ReconstructionDetector
from streamrnn.kernels import scoring as S
from streamrnn.seasonal import find_period

DETECTORS = [PredictiveDetector, ReconstructionDetector]

MODEL_CHECKS = (
    "check_repr", "check_str", "check_tags", "check_clone_same_class", "check_clone_is_idempotent",
    "check_init_has_default_params_for_tests", "check_init_default_params_are_not_mutable", "check_doc",
    "check_clone_changes_memory_addresses", "check_mutate_can_be_idempotent",
    "check_pickling_supports_roundtrip", "check_repr_roundtrips_clone", "check_clone_with_new_params_applies",
    "check_get_params_matches_signature",
)


def model_checks():
    """River's model-level checks (its data-set checks download CreditCard;
    their offline equivalents follow)."""
    from river.checks import common

    for cls in DETECTORS:
        for params in cls._unit_test_params():
            for name in MODEL_CHECKS:
                yield pytest.param(cls(**params), getattr(common, name), id=f"{cls.__name__}-{name}-{len(params)}")


@pytest.mark.parametrize("model,check", list(model_checks()))
def test_river_model_checks(model, check):
    check(copy.deepcopy(model))


def stream(n=1500, seed=0, spike_at=1200, shift_at=1400):
    rng = np.random.default_rng(seed)
    y = np.sin(np.arange(n) / 10) + 0.05 * rng.normal(size=n)
    y[spike_at : spike_at + 5] += 3.0
    y[shift_at:] += 0.5
    return [{"value": float(v)} for v in y]


def scored_then_learned(detector, xs) -> np.ndarray:
    """Each point's score, taken before the detector learns it."""
    scores = []
    for x in xs:
        scores.append(detector.score_one(x))
        detector.learn_one(x)
    return np.array(scores)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_flags_a_spike_and_a_level_shift_above_everything_else(cell):
    detector = PredictiveDetector(cell=cell, seed=0)
    scores = scored_then_learned(detector, stream())
    assert np.all((scores >= 0) & (scores <= 1))
    normal = scores[300:1200].max()
    assert scores[1200:1205].max() > normal
    assert scores[1400:1405].max() > normal


def test_reconstruction_detector_flags_a_spike_above_everything_else():
    detector = ReconstructionDetector(seed=0)
    scores = scored_then_learned(detector, stream())
    assert np.all((scores >= 0) & (scores <= 1))
    assert scores[1200:1205].max() > scores[300:1200].max()
    assert detector._net.output_size == 16


@pytest.mark.parametrize("cls", DETECTORS)
def test_score_one_is_pure_and_learning_is_seeded(cls):
    a, b = cls(seed=3), cls(seed=3)
    xs = stream(400)
    for x in xs:
        a.learn_one(x)
        b.learn_one(x)
    before = pickle.dumps(a)
    s = a.score_one({"value": 2.0})
    assert pickle.dumps(a) == before
    assert s == a.score_one({"value": 2.0}) == b.score_one({"value": 2.0})


@pytest.mark.parametrize("cls", DETECTORS)
def test_many_equals_one_at_a_time(cls):
    xs = stream(300)
    one, many = cls(seed=1), cls(seed=1)
    for x in xs:
        one.learn_one(x)
    frame = pd.DataFrame(xs)
    many.learn_many(frame)
    assert pickle.dumps(one) == pickle.dumps(many)
    queries = pd.DataFrame({"value": [0.0, 1.0, 5.0]})
    # (each on a copy: a point scored and not learned is learned when the next is scored)
    expected = [copy.deepcopy(one).score_one({"value": v}) for v in [0.0, 1.0, 5.0]]
    np.testing.assert_array_equal(many.score_many(queries), expected)


@pytest.mark.parametrize("cls", DETECTORS)
def test_missing_and_bad_values(cls):
    detector = cls(seed=0, grace_period=0)
    for x in stream(200):
        detector.learn_one(x)
    params = detector._net.state_dict()
    detector.learn_one({"value": None})
    detector.learn_one({"value": math.nan})
    detector.learn_one({"value": math.inf})
    detector.learn_one({"value": -(10**400)})  # an int beyond the floats: infinite
    detector.learn_one({"value": pd.NA})  # missing, as River's iter_pandas gives it from a nullable column
    assert detector.n_skipped == 5
    for name, v in detector._net.state_dict().items():
        np.testing.assert_array_equal(v, params[name])
    assert detector.score_one({"value": None}) == 0.0
    assert detector.score_one({"value": math.inf}) == 0.0
    assert detector.score_one({"value": pd.NA}) == 0.0
    st = detector._st.copy()
    for _ in range(2):  # a point without features: nothing to score or learn
        assert detector.score_one({}) == 0.0
        detector.learn_one({})
    assert detector.n_skipped == 7
    np.testing.assert_array_equal(detector._st, st)
    with pytest.raises(ValueError, match="feature 'value' must be a real number"):
        detector.learn_one({"value": "high"})
    with pytest.raises(ValueError, match="x must be a dict"):
        detector.score_one([1.0])
    with pytest.raises(ValueError, match="short_window must be a positive integer"):
        cls(short_window=0)
    with pytest.raises(ValueError, match="alarm_memory must be a positive integer"):
        cls(alarm_memory=2.5)


@pytest.mark.parametrize("cls", DETECTORS)
def test_multivariate_and_emerging_features(cls):
    detector = cls(seed=0, grace_period=10)
    rng = np.random.default_rng(0)
    for t in range(300):
        x = {"a": math.sin(t / 7) + 0.01 * rng.normal()}
        if t >= 100:
            x["b"] = math.cos(t / 5)
        detector.learn_one(x)
    assert detector._net.input_size == 2
    assert detector._net.output_size == 2 * getattr(detector, "window", 1)
    usual, odd = detector.score_many(pd.DataFrame({"a": [math.sin(300 / 7)] * 2, "b": [math.cos(300 / 5), 5.0]}))
    assert odd > usual


def test_works_under_river_filters_and_in_a_pipeline():
    quantile = anomaly.QuantileFilter(PredictiveDetector(seed=0), q=0.995)
    threshold = anomaly.ThresholdFilter(PredictiveDetector(seed=0), threshold=0.6)  # Q = 1e-6
    pipeline = compose.Pipeline(preprocessing.StandardScaler(), PredictiveDetector(seed=0))
    flags_q, flags_t = [], []
    for i, x in enumerate(stream()):
        s = quantile.score_one(x)
        flags_q.append(quantile.classify(s))
        quantile.learn_one(x)
        flags_t.append(threshold.classify(threshold.score_one(x)))
        threshold.learn_one(x)
        pipeline.score_one(x)
        pipeline.learn_one(x)
    assert any(flags_q[1200:1205]) and any(flags_t[1200:1205])
    assert sum(flags_t[300:1200]) < 20


# ---------------------------------------------------------------- calibration


ALARM = S.ALARM_SCORE  # the least score of an alarm (Q = 0.01)


class ReferenceCalibration:
    """The detectors' calibration written out plainly in float64 (lists, one
    feature at a time): exponential tails above mean + sd of the raw scores
    and of the recent errors, the range evidence, the refractory rule and the reported score (``0.5 +
    evidence / 2`` for an alarm; for any other point, half the chance that
    a stream of independent uniform tail probabilities has a memory, the
    largest evidence fading by half every ``memory`` points, no greater)."""

    def __init__(self, k: int, halflife: int, memory: int, grace: int = 0):
        self.k = k
        self.grace = max(grace, k)  # raw scores before a tail with no excess yet means certainty
        self.alpha = 1.0 - 0.5 ** (1.0 / halflife)
        self.raws, self.evidences = [], []
        self.seen_raws, self.seen_recents, self.grace_counted = [], [], grace
        self.decay = 0.5 ** (1.0 / memory)
        self.memory = 0.0
        self.fits = {"raw": None, "recent": None}  # [mean, var, rate above u, mean excess over u]
        self.low = self.high = None
        self.n_values = 0

    def tail_log10(self, fit, x):
        """-log10 of Q = rate * exp(-(x - u) / (excess / rate)), 0 at or below u;
        above u with no excess seen yet (constant raw scores): 30, the cap,
        once past the grace period."""
        if fit is None:
            return 0.0
        mean, var, rate, excess = fit
        u = mean + math.sqrt(var)
        if x <= u:
            return 0.0
        if excess <= 0 or rate <= 0:
            return 30.0 if len(self.raws) >= self.grace else 0.0
        return -math.log10(rate) + (x - u) / (excess / rate) / math.log(10.0)

    @staticmethod
    def bin(x):
        """Bins of width 3.2 / 256 from 0; the last one open."""
        return min(int(x * 256 / 3.2), 255) if x > 0 else 0

    def seen_log10(self, past, x):
        """-log10 of the fraction of the past errors at least x, those of x's
        bin counted for the part of the bin above x (all in the last bin);
        inf when none."""
        b = self.bin(x)
        part = 1.0 if b == 255 else min(max(b + 1 - x * 256 / 3.2, 0.0), 1.0)
        count = sum(self.bin(p) > b for p in past) + part * sum(self.bin(p) == b for p in past)
        return -math.log10(min(count / len(past), 1.0)) if count > 0 else math.inf

    def recent(self, raw):
        window = self.raws[max(len(self.raws) - (self.k - 1), 0):] if self.k > 1 else []
        return (raw + sum(reversed(window))) / (len(window) + 1)

    def beyond(self, values):
        """Range widths by which each value lies beyond its feature's range (0 inside)."""
        return [max((v - hi) / (hi - lo), (lo - v) / (hi - lo), 0.0) if hi > lo else 0.0
                for v, lo, hi in zip(values, self.low, self.high)]

    def range_log10(self, values):
        """-log10 of Q = (n + 1) ** -(1 + e) for a value breaking out of its
        feature's range (none of the feature's last k values beyond its range
        then), (n + 1) ** -e within an excursion; the largest over the features."""
        if self.low is None:
            return 0.0
        best = 0.0
        for j, e in enumerate(self.beyond(values)):
            breakout = not any(out[j] > 0 for out in self.outs[-self.k:])
            if e > 0:
                best = max(best, (1.0 + e if breakout else e) * math.log10(self.n_values + 1.0))
        return best

    def evidence(self, raw, values=None, seen=True):
        """With ``seen``, each error's Q the larger of its tail's and of how
        often errors as large were seen (the alarms' evidence); without, the
        tails' alone (the memory's)."""
        recent = self.recent(raw)
        tail_raw, tail_recent = self.tail_log10(self.fits["raw"], raw), self.tail_log10(self.fits["recent"], recent)
        if seen:
            tail_raw = min(tail_raw, self.seen_log10(self.seen_raws, raw))
            tail_recent = min(tail_recent, self.seen_log10(self.seen_recents, recent))
        log10_q = max(tail_raw, tail_recent)
        if values is not None:
            log10_q = max(log10_q, self.range_log10(values))
        return min(log10_q / 30.0, 1.0)

    def is_alarm(self, evidence):
        """At least Q = 0.01, above the evidence of each of the last k points,
        and none of them an alarm at the default threshold (Q = 1e-3)."""
        recent = self.evidences[-self.k:]
        news = all(e < evidence for e, _ in recent) and not any(flagged for _, flagged in recent)
        return news and evidence >= 2.0 / 30.0

    def reported(self, evidence, model):
        if self.is_alarm(evidence):
            return 0.5 + 0.5 * evidence
        m = 30.0 * max(model, self.memory * self.decay)  # the memory, as -log10 Q
        return max(0.5 * math.exp(self.log_calm(m)), 1e-12)

    def log_calm(self, m):
        """ln P(max_i L_i d^i <= m) for independent L_i with P(L > l) =
        10^-l: the sum of ln(1 - 10^(-m / d^i)) over i >= 0, term by term."""
        if m <= 0:
            return -math.inf
        total, i = 0.0, 0
        while True:
            term = math.log1p(-(10.0 ** (-m / self.decay**i)))
            total += term
            if term > -1e-18:
                return total
            i += 1

    def push(self, raw, values=None, other=(0.0, 0.0)):
        """Add a raw score (and values); ``other``: the evidence of another
        model of the point, for the alarms and for the memory (the larger
        counts)."""
        evidence = max(self.evidence(raw, values), other[0])
        model = max(self.evidence(raw, values, seen=False), other[1])
        alpha = max(self.alpha, 1.0 / (len(self.raws) + 1.0))
        for name, x in (("raw", raw), ("recent", self.recent(raw))):
            fit = self.fits[name]
            if fit is None:
                self.fits[name] = [x, 0.0, 0.0, 0.0]
                continue
            mean, var, rate, excess = fit
            over = x - (mean + math.sqrt(var))
            rate += alpha * (float(over > 0) - rate)
            excess += alpha * (max(over, 0.0) - excess)
            delta = x - mean
            fit[:] = [mean + alpha * delta, (1 - alpha) * (var + alpha * delta * delta), rate, excess]
        if len(self.raws) >= self.grace_counted:  # errors counted past the grace period
            self.seen_raws.append(raw)
            self.seen_recents.append(self.recent(raw))
        self.raws.append(raw)
        self.evidences.append((evidence, self.is_alarm(evidence) and 0.5 + 0.5 * evidence >= S.THRESHOLD))
        self.memory = max(model, self.memory * self.decay)
        if values is not None:
            self.add_values(values)

    def add_values(self, values):
        if self.low is None:
            self.low, self.high = list(values), list(values)
            self.outs = []
        else:
            self.outs.append(self.beyond(values))
            self.low = [min(a, b) for a, b in zip(self.low, values)]
            self.high = [max(a, b) for a, b in zip(self.high, values)]
        self.n_values += 1


class ReferenceSeasonal:
    """The seasonal errors written out plainly: the period looked for after
    24, 36, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 2048, 3072 and
    4096 values (``find_period`` of the changes over their root mean
    square, averaged over the features); from the point it is found on,
    each value's difference from its base, the mean of the last period's
    values plus the median of the deviations from that mean one, two and
    three periods before (an index before the first whole period seen taken
    a period later; the first period's values' mean for those within it),
    over the root mean square of the differences so far, clipped, makes a
    raw score calibrated by a :class:`ReferenceCalibration` of its own. Its
    evidence counts for the alarms, once past its grace period, and while
    those differences' mean square, summed over the features, is at most
    0.81 times that of the differences from the median of the last three
    values."""

    LOOKS = (24, 36, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 2048, 3072, 4096)

    def __init__(self, k, halflife, memory, grace):
        self.args = (k, halflife, memory, grace)
        self.grace = grace
        self.values = []
        self.period = None

    def level(self, t, j):
        first = max(t - self.period, 0)
        return sum(v[j] for v in self.values[first : first + self.period]) / self.period

    def base(self, i, j):
        deviations = []
        for c in (1, 2, 3):
            t = i - c * self.period
            while t < self.start % self.period:
                t += self.period
            deviations.append(self.values[t][j] - self.level(t, j))
        return self.level(i, j) + sorted(deviations)[1]

    def raw(self, values):
        i = len(self.values)
        z = []
        for j, v in enumerate(values):
            d = v - self.base(i, j)
            rms = math.sqrt(self.sq[j] / self.n) if self.n else 0.0
            if rms > 0:
                z.append(min(max(d / rms, -10.0), 10.0))
            else:
                z.append(0.0 if d == 0 or self.n == 0 else math.copysign(10.0, d))
        return math.log1p(math.sqrt(sum(a * a for a in z) / len(z)))

    def evidence(self, values):
        """The alarms' evidence of ``values``, the next point."""
        if self.period is None or len(self.ref.raws) < self.grace or not sum(self.sq) <= 0.81 * sum(self.local_sq):
            return 0.0
        # Q at least 1 / (n + 1) for n seasonal errors counted
        return min(self.ref.evidence(self.raw(values)), math.log10(len(self.ref.seen_raws) + 1.0) / 30.0)

    def add(self, values):
        i = len(self.values)
        if self.period is not None:
            self.ref.push(self.raw(values))
            for j, v in enumerate(values):
                self.sq[j] += (v - self.base(i, j)) ** 2
                self.local_sq[j] += (v - sorted(self.values[t][j] for t in (i - 1, i - 2, i - 3))[1]) ** 2
            self.n += 1
        self.values.append(list(values))
        if len(self.values) in self.LOOKS:
            rows = np.array(self.values)
            changes = np.diff(rows, axis=0)
            rms = np.sqrt((changes**2).mean(axis=0))
            period = find_period((changes / np.where(rms > 0, rms, 1.0)).mean(axis=1))
            if period is not None and period != self.period:
                self.period, self.start = period, len(self.values)
                self.ref = ReferenceCalibration(*self.args)
                self.sq, self.local_sq, self.n = [0.0] * len(values), [0.0] * len(values), 0


class ReferenceQuiet:
    """The quiet stretch written out plainly: the mean square (over the
    features) of the scaled changes of each of the last 100 points, the
    point's own included; ``x = -ln(sqrt(their mean) + 0.001)``, under an
    exponential tail above mean + sd of the ``x`` counted past the grace
    period (exponentially weighted as the errors'), gives ``-log10 Q``, at
    most ``log10(n + 1)`` for ``n`` counted; 0 before ``k`` were counted."""

    def __init__(self, k: int, halflife: int):
        self.k = k
        self.alpha = 1.0 - 0.5 ** (1.0 / halflife)
        self.squares, self.fit, self.n = [], None, 0

    def raw(self, z):
        if len(self.squares) < 99:
            return None
        window = self.squares[-99:] + [sum(a * a for a in z) / len(z)]
        return -math.log(math.sqrt(sum(window) / 100) + 1e-3)

    def log10(self, z):
        x = self.raw(z)
        if x is None or self.n < self.k:
            return 0.0
        mean, var, rate, excess = self.fit
        u = mean + math.sqrt(var)
        if x <= u or excess <= 0 or rate <= 0:
            return 0.0
        return min(-math.log10(rate) + (x - u) / (excess / rate) / math.log(10.0), math.log10(self.n + 1.0))

    def add(self, z, counted: bool):
        x = self.raw(z)
        if counted and x is not None:
            if self.fit is None:
                self.fit = [x, 0.0, 0.0, 0.0]
            else:
                alpha = max(self.alpha, 1.0 / (self.n + 1.0))
                mean, var, rate, excess = self.fit
                over = x - (mean + math.sqrt(var))
                delta = x - mean
                self.fit = [mean + alpha * delta, (1 - alpha) * (var + alpha * delta * delta),
                            rate + alpha * (float(over > 0) - rate), excess + alpha * (max(over, 0.0) - excess)]
            self.n += 1
        self.squares.append(sum(a * a for a in z) / len(z))


def heavy_stream(n=1500, n_features=1, seed=0):
    """Seasonal values with Student-t noise, a slow climb out of the range, a
    spike and a level shift."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    Y = np.stack([np.sin(t / (8 + 3 * j)) + 0.1 * rng.standard_t(5, size=n) for j in range(n_features)], axis=1)
    Y[700:800, -1] += np.linspace(0, 3, 100)
    Y[1000:1003, 0] += 4.0
    Y[1300:, 0] -= 2.0
    return [{f"f{j}": float(v) for j, v in enumerate(row)} for row in Y]


@pytest.mark.parametrize("n_features", [1, 2])
def test_predictive_scores_match_a_plain_reimplementation(n_features):
    """Every score of the detector, from its network's predictions, against
    the plain calibration: scaled changes, raw scores, tails, ranges, the
    seasonal errors and the refractory rule."""
    detector = PredictiveDetector(seed=0, grace_period=20)
    args = (detector.short_window, detector.long_halflife, detector.alarm_memory, detector.grace_period)
    ref, seasonal = ReferenceCalibration(*args), ReferenceSeasonal(*args)
    quiet = ReferenceQuiet(detector.short_window, detector.long_halflife)
    seasonal_evidences, quiet_evidences = [], []
    last = mean_sq = None
    n_changes = 0
    scores, expected, evidences = [], [], []
    for x in heavy_stream(n_features=n_features):
        values = [x[f"f{j}"] for j in range(n_features)]
        scores.append(detector.score_one(x))
        if last is None:
            expected.append(0.0)
            evidences.append(0.0)
            detector.learn_one(x)
            last, mean_sq = values, [0.0] * n_features
            ref.add_values(values)
            seasonal.add(values)
            continue
        start = S.stats_size(detector.short_window) + 2 * n_features  # the prediction block
        prediction = detector._st[start : start + n_features].copy()
        z = []
        for v, l, ms in zip(values, last, mean_sq):  # changes over the root mean square, clipped
            rms = math.sqrt(ms)
            if rms > 0:
                z.append(min(max((v - l) / rms, -10.0), 10.0))
            else:  # only zero changes so far: any other change is as far out as the clip goes
                z.append(0.0 if v == l or n_changes == 0 else math.copysign(10.0, v - l))
        raw = math.log1p(math.sqrt(sum((a - b) ** 2 for a, b in zip(z, prediction)) / n_features))
        other = seasonal.evidence(values)
        seasonal_evidences.append(other)
        evidence = max(ref.evidence(raw, values), other)
        evidences.append(evidence)
        quiet_evidence = min(quiet.log10(z) / 30.0, 1.0)  # (the memory's only)
        quiet_evidences.append(quiet_evidence)
        model = max(ref.evidence(raw, values, seen=False), quiet_evidence)
        expected.append(ref.reported(evidence, model) if len(ref.raws) >= detector.grace_period else 0.0)
        quiet.add(z, len(ref.raws) >= detector.grace_period)
        ref.push(raw, values, (other, quiet_evidence))
        seasonal.add(values)
        if len(ref.raws) <= detector.grace_period:  # the memory starts at the first scored point
            ref.memory = 0.0
        mean_sq = [(n_changes * ms + (v - l) ** 2) / (n_changes + 1) for v, l, ms in zip(values, last, mean_sq)]
        last = values
        n_changes += 1
        detector.learn_one(x)
    scores, expected, evidences = map(np.array, (scores, expected, evidences))
    np.testing.assert_allclose(scores, expected, rtol=5e-4, atol=1e-12)  # (the kernel integrates the sum)
    np.testing.assert_allclose(scores[expected >= ALARM], expected[expected >= ALARM], rtol=1e-9)
    # every part of the rule took part
    assert seasonal.period == detector._season.period
    if n_features == 1:
        assert max(seasonal_evidences) >= 2 / 30
    assert max(quiet_evidences) > 0.0
    alarms = expected >= ALARM
    assert np.sum(~alarms & (evidences >= 2 / 30)) > 5  # refractory
    assert np.sum(expected > S.THRESHOLD) >= 2
    assert expected[1300] > S.THRESHOLD and expected[1301] < S.THRESHOLD  # a level shift: one alarm
    assert np.all(expected[~alarms] < 0.5)  # the quiet points lie below every alarm
    assert len(np.unique(expected[200:][~alarms[200:]])) > 1000  # and are ranked
    assert 0.1 < np.median(expected[200:700]) < 0.45  # spread over (0, 0.5)
    # after the spike, the memory ranks the quiet points above those of the calm before it
    assert np.median(expected[1010:1100][~alarms[1010:1100]]) > np.median(expected[200:700][~alarms[200:700]])
    assert scores[700:800].max() >= ALARM  # the climb out of range: an alarm at its breakout
    assert scores[1000:1003].max() > scores[200:700].max()  # the spike


@pytest.mark.parametrize("with_values", [False, True])
def test_calibration_of_outside_raw_scores_matches_a_plain_reimplementation(with_values):
    """The calibration of raw scores computed outside the kernels (the
    reconstruction detector's path), with heavy tails, a sustained rise and,
    with values, a climb out of range; error evidence only without values."""
    rng = np.random.default_rng(1)
    raws = np.log1p(np.abs(rng.standard_t(3, size=3000)))
    raws[2000:2030] += 1.5
    values = rng.normal(size=(3000, 2))
    values[2500:2600, 1] += np.linspace(0, 6, 100)
    k, halflife, memory = 7, 300, 50
    st = np.zeros(S.state_size(k, 2))
    st[S.S_ALPHA] = 1.0 - 0.5 ** (1.0 / halflife)
    st[S.S_WINDOW] = k
    st[S.S_DECAY] = 0.5 ** (1.0 / memory)
    ref = ReferenceCalibration(k, halflife, memory)
    got, want = [], []
    for i, (raw, v) in enumerate(zip(raws, values)):
        if not with_values:
            got.append(S.likelihood(st, raw))
            want.append(ref.reported(ref.evidence(raw), ref.evidence(raw, seen=False)))
            assert S.record_raw(st, raw) == pytest.approx(ref.evidence(raw), rel=1e-9, abs=1e-12)
            ref.push(raw)
        elif i == 0:  # the detector's first point: the ranges start
            S.restart_history(st, v)
            S.record_raw(st, raw)
            ref.push(raw)
            ref.add_values(list(v))
        else:
            got.append(S.score_raw(st, v, raw))
            want.append(ref.reported(ref.evidence(raw, list(v)), ref.evidence(raw, list(v), seen=False)))
            assert S.record_raw_values(st, v, raw) == pytest.approx(ref.evidence(raw, list(v)), rel=1e-9, abs=1e-12)
            ref.push(raw, list(v))
    np.testing.assert_allclose(got, want, rtol=5e-4, atol=1e-12)  # (the kernel integrates the memory's law)
    offset = 0 if not with_values else 1
    assert max(got[2000 - offset : 2030 - offset]) > max(got[500:2000 - offset])
    if with_values:  # the climb out of the range raises an alarm
        assert max(got[2500 - offset : 2600 - offset]) >= ALARM


def test_a_creep_out_of_the_range_raises_one_alarm_and_a_leap_beyond_it_another():
    """Records by a hair, one after another, are one excursion: an alarm at
    the breakout, then none (each record had a little more evidence than
    the last, as n grew, and every one was an alarm); a leap two range widths
    beyond the excursion's last record is news again."""
    rng = np.random.default_rng(0)
    values = list(rng.uniform(0.0, 1.0, size=600)) + [1.0 + 1e-4 * i for i in range(1, 41)] + [3.0, 1.0]
    k = 7
    st = np.zeros(S.state_size(k, 1))
    st[S.S_ALPHA], st[S.S_WINDOW], st[S.S_DECAY] = 0.01, k, 0.5 ** (1 / 200)
    S.restart_history(st, np.array(values[:1]))
    S.record_raw(st, 0.0)
    scores = []
    for v in values[1:]:  # constant raw scores: range evidence alone
        scores.append(S.score_raw(st, np.array([v]), 0.0))
        S.record_raw_values(st, np.array([v]), 0.0)
    scores = np.array(scores)
    creep = scores[599:639]
    assert creep[0] >= 0.5 + 0.5 * 0.09 and np.all(creep[1:] < 0.5)  # Q ~ 1/600 at the breakout, then quiet
    assert scores[639] > creep[0]  # the leap: Q = 601 ** -2
    assert scores[640] < 0.5


def test_reconstruction_detector_flags_a_value_out_of_range():
    detector = ReconstructionDetector(seed=0, grace_period=20)
    xs = stream(600, spike_at=10**6, shift_at=10**6)
    for x in xs:
        detector.learn_one(x)
    odd, usual = detector.score_many(pd.DataFrame({"value": [3.0, xs[-1]["value"]]}))
    assert odd > S.THRESHOLD > usual


def test_a_threshold_is_a_tail_probability_on_usual_data():
    """On a stationary heavy-tailed series, alarms at Q <= 1e-3 (three
    pieces of evidence, so up to 3 Q) flag few points, and the alarm score
    of Q = 1e-6 (0.6) is never reached."""
    rng = np.random.default_rng(2)
    y = np.convolve(rng.standard_t(4, size=6000), np.ones(3) / 3, mode="same")
    detector = PredictiveDetector(seed=0)
    scores = []
    for v in y:
        scores.append(detector.score_one({"y": float(v)}))
        detector.learn_one({"y": float(v)})
    scores = np.array(scores[1000:])
    assert 0 < np.mean(scores >= S.THRESHOLD) < 3e-3
    assert scores.max() < 0.6


@pytest.mark.parametrize("n_features", [1, 3])
def test_reconstruction_window_kernels_match_numpy(n_features):
    """The window slid in place and the raw score of a reconstruction, against
    NumPy: the window moved on by stacking, the error over its flattened
    points (outputs past them ignored)."""
    rng = np.random.default_rng(n_features)
    window = rng.normal(size=(5, n_features))
    z = rng.normal(size=n_features)
    reconstruction = rng.normal(size=5 * n_features + 2).astype(np.float32)

    def numpy_error(w):
        e = reconstruction.astype(np.float64)[: w.size] - w.reshape(-1)
        return math.log1p(math.sqrt(np.mean(e * e)))

    moved = np.vstack([window[1:], z])
    before = window.copy()
    assert S.reconstruction_error(reconstruction, window, z, True) == pytest.approx(numpy_error(moved), rel=1e-12)
    np.testing.assert_array_equal(window, before)  # not changed
    assert S.reconstruction_error(reconstruction, window, z, False) == pytest.approx(numpy_error(window), rel=1e-12)
    target = np.full(5 * n_features + 2, 7.0)
    S.slide_window(window, z, target)
    np.testing.assert_array_equal(window, moved)
    np.testing.assert_array_equal(target, np.r_[moved.reshape(-1), 0.0, 0.0])


@pytest.mark.parametrize("cls", DETECTORS)
def test_the_first_scored_points_rank_like_later_ones(cls):
    """On plain noise, the first scored points rank like later ones: the
    statistics settle within the grace period."""
    rng = np.random.default_rng(0)
    detector = cls(seed=0)
    scores = scored_then_learned(detector, ({"v": float(v)} for v in rng.normal(size=1500)))
    late = np.quantile(scores[1000:], 0.99)
    assert np.mean(scores[100:200] > late) < 0.1


def test_scores_do_not_depend_on_the_scale_of_the_values_even_at_the_float_limits():
    """Values near the largest floats overflowed the sum of squared changes
    (then every later score was NaN); near the smallest they underflowed it
    (every change scaled to 0). A pattern change scores the same at every
    scale, and an overflowing jump leaves the scores finite."""
    cls = PredictiveDetector
    rng = np.random.default_rng(0)
    t = np.arange(700)
    base = np.sin(t / 4) + 0.05 * rng.normal(size=700)
    base[600:615] += 1.5
    runs = {}
    for scale in (1e-300, 1.0, 1e300):
        detector = cls(seed=0)
        scores = []
        for v in base * scale:
            scores.append(detector.score_one({"a": v}))
            detector.learn_one({"a": v})
        runs[scale] = np.array(scores)
    np.testing.assert_allclose(runs[1e-300], runs[1.0], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(runs[1e300], runs[1.0], rtol=1e-6, atol=1e-9)
    assert runs[1.0][600:620].max() > max(runs[1.0][200:590].max(), S.THRESHOLD)
    detector = cls(seed=0, grace_period=5, hidden_size=4)
    values = [0, 1, 0.5, 2, 1, 0, 1, 0.5, 2, 1, 0.3, 1e308, -1e308] + list(np.sin(np.arange(50)))
    scores = []
    for v in values:
        scores.append(detector.score_one({"a": float(v)}))
        detector.learn_one({"a": float(v)})
    assert np.all(np.isfinite(scores)) and np.all(np.isfinite(detector._st))
    assert max(scores[11:13]) > 0.5


@pytest.mark.parametrize("cls", DETECTORS)
def test_a_spike_after_a_constant_stretch_is_an_alarm(cls):
    """A zero scale of the changes (or of the values) and constant raw scores
    used to score any departure 0."""
    detector = cls(seed=0)
    for _ in range(500):
        detector.learn_one({"a": 0.0})
    assert detector.score_one({"a": 0.0}) < ALARM
    detector.learn_one({"a": 0.0})
    assert detector.score_one({"a": 1000.0}) == 1.0


def test_a_short_grace_period_raises_no_alarm_at_the_start_of_a_stream():
    """The first raw score is 0 (the first change has no scale yet): no
    excess has been seen after it, which is no reason for certainty."""
    for grace in (0, 1, 2):
        detector = PredictiveDetector(seed=0, grace_period=grace)
        scores = []
        for v in [0.0, 1.0, 1.5, 1.2, 1.4, 1.1, 1.3]:
            scores.append(detector.score_one({"a": v}))
            detector.learn_one({"a": v})
        assert max(scores) < ALARM


def square_wave_without_a_jump(period=48, n=2400, missing=1800, seed=0):
    """A noisy square wave, low for the first half of each period, high for
    the second; the period starting at ``missing`` stays low (its jump does
    not come)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    y = np.where(t % period < period // 2, 0.0, 1.0) + 0.05 * rng.normal(size=n)
    y[missing + period // 2 : missing + period] -= 1.0
    return y


def test_a_square_wave_whose_jump_does_not_come_raises_a_seasonal_alarm():
    """No change is unusual where the jump of a square wave does not come,
    but the point differs from the same phase of the last periods: the
    seasonal errors find the period, raise an alarm there (their own tail
    probability at most 1e-3), and none in the periods before."""
    y = square_wave_without_a_jump()
    detector = PredictiveDetector(seed=0)
    scores, seasonal = [], []
    for v in y:
        x = {"value": float(v)}
        seasonal.append(detector._season.log10(np.array([float(v)])))
        scores.append(detector.score_one(x))
        detector.learn_one(x)
    scores, seasonal = np.array(scores), np.array(seasonal)
    assert detector._season.period == 48
    missed = slice(1800 + 24, 1800 + 48)
    first = 1800 + 24 + int(np.argmax(scores[missed] >= S.THRESHOLD))
    assert scores[first] >= S.THRESHOLD and seasonal[first] >= 3.0
    assert not (scores[1200:1800] >= S.THRESHOLD).any()


def test_seasonal_errors_resume_bit_identically_and_edited_ones_are_refused():
    """A detector saved once its period is found scores on as the original;
    seasonal errors whose phase, ring or history do not match their period
    are refused on load."""
    import io

    from streamrnn import persist_checks as C
    from streamrnn import persistence as P

    y = square_wave_without_a_jump(n=2000)
    detector = PredictiveDetector(hidden_size=4, seed=0)
    for v in y[:1500]:
        detector.learn_one({"value": float(v)})
    assert detector._season.period == 48
    f = io.BytesIO()
    P.save(detector, f)
    f.seek(0)
    copy = P.load(f)
    for v in y[1500:]:
        x = {"value": float(v)}
        assert copy.score_one(x) == detector.score_one(x)
        copy.learn_one(x)
        detector.learn_one(x)
    state = dict(vars(detector._season))
    C.check_seasonal_errors(type(detector._season), state, None)  # as it is: accepted
    for key, value in (("phase", 48), ("period", 47), ("ring", state["ring"][:-1]),
                       ("history", np.zeros((5, 1))), ("local", -state["local"] - 1.0)):
        with pytest.raises(C.Invalid):
            C.check_seasonal_errors(type(detector._season), {**state, key: value}, None)


def test_the_reconstruction_detector_keeps_no_seasonal_errors_and_old_saves_still_load():
    """Its alarms take the reconstruction errors and the range alone: it
    carries no seasonal errors; one saved when it carried them, unused,
    loads without them and scores on as the original."""
    import io

    from streamrnn import persistence as P
    from streamrnn.anomaly_season import SeasonalErrors

    rng = np.random.default_rng(0)
    y = np.sin(np.arange(700) / 5) + 0.1 * rng.normal(size=700)
    detector = ReconstructionDetector(hidden_size=4, window=4, seed=0)
    for v in y[:400]:
        detector.learn_one({"value": float(v)})
    assert not hasattr(detector, "_season")
    old = copy.deepcopy(detector)  # as saved before: unused seasonal errors beside it
    old._season = SeasonalErrors(old._new_state(1), 1)
    f = io.BytesIO()
    P.save(old, f)
    f.seek(0)
    loaded = P.load(f)
    assert not hasattr(loaded, "_season")
    for v in y[400:]:
        x = {"value": float(v)}
        assert loaded.score_one(x) == detector.score_one(x)
        loaded.learn_one(x)
        detector.learn_one(x)


def test_a_detector_saved_just_after_an_alarm_resumes_bit_identically_and_edited_evidence_is_refused():
    """Saved one point after an alarm at the threshold (which silences the
    next ``short_window`` points), a detector scores on as the original:
    the later points of the burst raise no alarm in either; a ring of
    evidences out of its range is refused on load."""
    import io

    from streamrnn import persist_checks as C
    from streamrnn import persistence as P

    rng = np.random.default_rng(0)
    y = rng.normal(size=1700)
    y[1500:1506] += np.array([4.0, 8.0, 12.0, 16.0, 20.0, 24.0])
    detector = PredictiveDetector(hidden_size=4, seed=0)
    for v in y[:1501]:
        x = {"value": float(v)}
        score = detector.score_one(x)
        detector.learn_one(x)
    assert score >= S.THRESHOLD  # the burst's first point: an alarm
    f = io.BytesIO()
    P.save(detector, f)
    f.seek(0)
    copy = P.load(f)
    after = []
    for v in y[1501:]:
        x = {"value": float(v)}
        after.append(copy.score_one(x))
        assert after[-1] == detector.score_one(x)
        copy.learn_one(x)
        detector.learn_one(x)
    assert max(after[: detector.short_window - 1]) < S.THRESHOLD
    state = dict(vars(detector))
    k = detector.short_window
    for bad in (1.5, -0.1, S.FLAG + 1.5):
        st = state["_st"].copy()
        st[S.HEAD + k] = bad
        with pytest.raises(C.Invalid):
            C.check_detector_state(PredictiveDetector, {**state, "_st": st})
    C.check_detector_state(PredictiveDetector, state)  # as it is: accepted


def quiet_stretch(n=3000, start=2000, end=2300, seed=0):
    """Noisy values whose noise falls twentyfold from ``start`` to ``end``
    (the values stay well inside their range)."""
    rng = np.random.default_rng(seed)
    y = rng.normal(size=n)
    y[start:end] *= 0.05
    return y


def test_a_quiet_stretch_inside_the_range_keeps_scoring_while_it_lasts_and_raises_no_alarm():
    """No change and no value of a stretch calmer than ever is unusual;
    their run is: the quiet stretch's tail probability joins the memory, so
    its points rank above the usual ones (most of its span above their 90th
    percentile; without it, they scored as the calmest of all), but it
    raises no alarm."""
    y = quiet_stretch()
    detector = PredictiveDetector(seed=0)
    scores = scored_then_learned(detector, ({"value": float(v)} for v in y))
    usual, span = scores[1000:2000], scores[2100:2300]
    assert np.mean(span > np.quantile(usual, 0.9)) > 0.75  # (0.83; none without the quiet stretch)
    assert not (scores[2000:2300] >= ALARM).any()


def resumes_through_a_file_and_an_old_save_as_emptied(detector, field: str, empty, ys) -> dict:
    """Saves ``detector``, and a copy without its ``field`` (a save made
    before it was kept), loads both and checks, over the values ``ys``, that
    the first scores on as ``detector`` and the old one as a copy whose
    ``field`` was set to ``empty``; returns ``detector``'s state (checked as
    it is)."""
    import io

    from streamrnn import persist_checks as C
    from streamrnn import persistence as P

    def through_a_file(model):
        f = io.BytesIO()
        P.save(model, f)
        f.seek(0)
        return P.load(f)

    copy_ = through_a_file(detector)
    old = copy.deepcopy(detector)
    delattr(old, field)
    loaded_old = through_a_file(old)
    emptied = copy.deepcopy(detector)
    setattr(emptied, field, empty)
    assert np.array_equal(getattr(loaded_old, field), empty)
    for v in ys:
        x = {"value": float(v)}
        s = detector.score_one(x)
        assert copy_.score_one(x) == s
        assert loaded_old.score_one(x) == emptied.score_one(x)
        for model in (detector, copy_, loaded_old, emptied):
            model.learn_one(x)
    state = dict(vars(detector))
    C.check_detector(PredictiveDetector, state, None)  # as it is: accepted
    return state


def test_a_detector_saved_with_its_quiet_state_resumes_bit_identically_old_saves_load_and_edits_are_refused():
    """The quiet state travels with a save: the copy scores on as the
    original. A save made before it was kept loads with an empty one (no
    change seen) and scores on as a detector whose quiet state was emptied
    there. A quiet state of the wrong length, with a count, slot or mean
    square out of its range, is refused on load."""
    from streamrnn import persist_checks as C

    y = quiet_stretch(n=2600, start=2200, end=2500)
    detector = PredictiveDetector(hidden_size=4, seed=0)
    for v in y[:2100]:
        detector.learn_one({"value": float(v)})
    assert detector._quiet[S.Q_N] > 1000
    state = resumes_through_a_file_and_an_old_save_as_emptied(detector, "_quiet", np.zeros(S.QUIET_SIZE), y[2100:])
    quiet = detector._quiet
    for edit in (quiet[:-1], np.r_[quiet, 0.0], -quiet, np.where(np.arange(quiet.size) == S.Q_POS, 100.0, quiet),
                 np.where(np.arange(quiet.size) == S.Q_N, 0.5, quiet),
                 np.where(np.arange(quiet.size) == S.QUIET_HEAD, 101.0, quiet), quiet.astype(np.float32)):
        with pytest.raises(C.Invalid):
            C.check_detector(PredictiveDetector, {**state, "_quiet": edit}, None)


def recent_ranges_reference(y: np.ndarray, k: int = 10, block: int = 64) -> np.ndarray:
    """``-log10 Q`` of each point's record among the recent ranges, from the
    values alone (rows are points): for each window ``W`` (4,096, 8,192,
    16,384) counting once ``W`` values are in complete blocks of ``block``, the
    range of the last ``W`` values plus those of the block being filled, a
    value beyond it by ``e`` widths scores ``(e + 1) log10(N + 2)`` at a
    breakout (none of the feature's last ``k`` values beyond that window's
    range then) and ``e log10(N + 2)`` otherwise, ``N`` the values in the
    window; the largest, less ``log10((J + 1) F)`` (``J`` windows counting,
    ``F`` features), at least 0."""
    n, F = y.shape
    windows = (4096, 8192, 16384)
    out = np.zeros(n)
    calm = np.full((len(windows), F), float(k))
    for i in range(n):
        fill = i % block
        counting = [W for W in windows if i - fill >= W]
        best = 0.0
        for w, W in enumerate(windows):
            for j in range(F):
                if W not in counting:
                    calm[w, j] = k
                    continue
                past = y[i - W - fill : i, j]
                low, high = past.min(), past.max()
                e = max(y[i, j] - high, low - y[i, j]) / (high - low) if high > low else 0.0
                if e > 0:
                    best = max(best, (e + (1.0 if calm[w, j] >= k else 0.0)) * math.log10(W + fill + 2.0))
                calm[w, j] = 0.0 if e > 0 else min(calm[w, j] + 1.0, k)
        if counting:
            out[i] = max(best - math.log10((len(counting) + 1.0) * F), 0.0)
    return out


def test_recent_ranges_score_a_record_of_the_recent_values_as_a_plain_reference_does():
    """The kernels of the recent ranges give, at every point of a random
    walk with two features (records of every window, breakouts and
    excursions), the ``-log10 Q`` that a plain computation over the values
    gives (to rounding)."""
    rng = np.random.default_rng(3)
    y = np.cumsum(rng.normal(size=(17_000, 2)), axis=0)
    st = np.zeros(S.state_size(10, 2))
    st[S.S_WINDOW] = 10
    rr = np.zeros(S.recent_size(2))
    got = np.empty(len(y))
    for i, row in enumerate(y):
        got[i] = S.recent_log10(st, rr, row)
        S.recent_record(st, rr, row)
    want = recent_ranges_reference(y)
    assert (want > 0).sum() > 50 and (want[:4096] == 0).all()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    from streamrnn import persist_checks as C

    C._check_recent_ranges("detector", rr, 10, 2)  # the load check derives every window's range as the kernel kept it


def test_a_value_beyond_the_recent_range_after_a_level_shift_is_an_alarm():
    """After a level shift, a drop that stays inside the range of all values
    seen but leaves that of the last 4,096 is an alarm at the threshold."""
    rng = np.random.default_rng(0)
    y = np.concatenate([rng.normal(size=9000), 5 + 0.2 * rng.normal(size=5000)])
    y[13700] = 3.0
    assert y[:13700].min() < 3.0 < y[13700 - 4096 : 13700].min()
    detector = PredictiveDetector(seed=0)
    scores = scored_then_learned(detector, ({"value": float(v)} for v in y))
    assert scores[13700] >= S.THRESHOLD


def test_a_detector_saved_with_its_recent_ranges_resumes_bit_identically_old_saves_load_and_edits_are_refused():
    """The recent ranges travel with a save: the copy scores on as the
    original. A save made before they were kept loads with empty ones (none
    seen) and scores on as a detector whose recent ranges were emptied
    there. Recent ranges of the wrong length, with counts that disagree or
    a calm count out of its range, or a window's range that is not its
    blocks', are refused on load; the reconstruction detector keeps none."""
    from streamrnn import persist_checks as C

    rng = np.random.default_rng(1)
    y = np.cumsum(rng.normal(size=4800))
    detector = PredictiveDetector(hidden_size=4, seed=0)
    for v in y[:4400]:
        detector.learn_one({"value": float(v)})
    assert S._recent_counting(detector._recent_ranges) == 1
    state = resumes_through_a_file_and_an_old_save_as_emptied(detector, "_recent_ranges",
                                                              np.zeros(S.recent_size(1)), y[4400:])
    rr = detector._recent_ranges
    at = np.arange(rr.size)
    calm = S.RECENT_HEAD + 2 + 2 * S.RECENT_BLOCKS
    for edit in (rr[:-1], np.r_[rr, 0.0], np.where(at == S.R_SEEN, rr[S.R_SEEN] + 1, rr),
                 np.where(at == S.R_POS, rr[S.R_POS] + 1, rr), np.where(at == calm, 11.0, rr),
                 np.where(at == S.RECENT_HEAD + 2, np.inf, rr), rr.astype(np.float32),
                 np.where(at == calm + S.RECENT_WINDOWS, rr[calm + S.RECENT_WINDOWS] - 1.0, rr),
                 np.where(at == calm + 2 * S.RECENT_WINDOWS, rr[calm + 2 * S.RECENT_WINDOWS] + 1.0, rr)):
        with pytest.raises(C.Invalid):
            C.check_detector(PredictiveDetector, {**state, "_recent_ranges": edit}, None)
    assert not hasattr(ReconstructionDetector(seed=0), "_recent_ranges")
