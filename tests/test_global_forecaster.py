"""The global forecaster: one network shared by many keyed series."""

import datetime as dt
import pickle

import numpy as np
import pytest

import streamrnn
from streamrnn import GlobalForecaster, GRUForecaster, LSTMForecaster
from streamrnn.forecasting import SHARED_NETWORK_STEPS
from streamrnn.kernels import layout as L
from streamrnn.persistence import load, save


def _series(seed, n=300, period=12):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    level = 50 + 10 * seed
    return level + 5 * np.sin(2 * np.pi * t / period + seed) + 0.01 * t * seed + rng.normal(0, 0.5, n)


def _as_a_key(forecaster):
    """A per-series forecaster whose network forecasts as far as a key's of
    a global forecaster does (:data:`~streamrnn.forecasting.SHARED_NETWORK_STEPS`)."""
    forecaster._network_steps = lambda: SHARED_NETWORK_STEPS
    return forecaster


def test_one_key_equals_its_per_series_forecaster():
    """A single key is its per-series forecaster, bit for bit (without the
    corrections across series, its network forecasting as far): the shared
    network starts as that forecaster's own and sees only its rows."""
    y = _series(1, 400)
    single = _as_a_key(LSTMForecaster(hidden_size=8, seed=3))
    shared = GlobalForecaster(hidden_size=8, seed=3, correct=False)
    for t, v in enumerate(y):
        single.learn_one(float(v))
        shared.learn_one("a", float(v))
        if t % 50 == 49:
            assert shared.forecast("a", 24) == single.forecast(24)
    assert shared.forecast_interval("a", 24, 0.9) == single.forecast_interval(24, 0.9)
    assert shared.n_updates == single._net.n_updates > 0


def test_gru_cell_equals_its_per_series_forecaster():
    y = _series(2, 200)
    single, shared = _as_a_key(GRUForecaster(hidden_size=4, k1=2, k2=6, seed=0)), GlobalForecaster(
        cell="gru", hidden_size=4, k1=2, k2=6, seed=0, correct=False)
    for v in y:
        single.learn_one(float(v))
        shared.learn_one(7, float(v))
    assert shared.forecast(7, 30) == single.forecast(30)


def test_a_key_runs_its_networks_forecast_for_its_first_steps_only():
    """A key's network forecasts the first SHARED_NETWORK_STEPS steps of
    each origin, as the same forecaster running every step does, bit for
    bit; beyond, no surprise: the departure reached is held."""
    y = _series(1, 300)
    model = GlobalForecaster(hidden_size=8, seed=3, correct=False)
    for v in y:
        model.learn_one("a", float(v))
    key = model["a"]
    d, scale = key._departure(48, None)
    key._network_steps = lambda: None  # every step
    full, same_scale = key._departure(48, None)
    K = SHARED_NETWORK_STEPS
    assert scale == same_scale and d[:K].tolist() == full[:K].tolist()
    assert not d[K:].any() and np.abs(full[K:]).min() > 0


def _reference(streams, order, hidden_size=8, seed=0):
    """A plain-Python reference of the interleaving: per-key forecasters
    around ONE OnlineRNN whose state and window are swapped in and out for
    each row (the weights and optimizer moments stay, shared)."""
    net = LSTMForecaster(hidden_size=hidden_size, seed=seed)._net
    lay = net._lay
    per_key, states, counters = {}, {}, {}
    for key in order:
        f = per_key.get(key)
        if f is None:
            f = per_key[key] = _as_a_key(LSTMForecaster(hidden_size=hidden_size, seed=seed))
            f._net = net
            states[key] = np.zeros(lay[L.L_HP] - lay[L.L_STATE], net._np_dtype)
            counters[key] = np.zeros_like(net._ctr)
        net._buf[lay[L.L_STATE] : lay[L.L_HP]] = states[key]
        updates = net._ctr[L.C_UPDATES]
        net._ctr[:] = counters[key]
        net._ctr[L.C_UPDATES] = updates
        f.learn_one(float(next(streams[key])))
        states[key] = net._buf[lay[L.L_STATE] : lay[L.L_HP]].copy()
        counters[key] = net._ctr.copy()
    forecasts = {}
    for key, f in per_key.items():
        net._buf[lay[L.L_STATE] : lay[L.L_HP]] = states[key]
        forecasts[key] = f.forecast(24)
    return forecasts


def test_interleaved_keys_match_a_plain_python_reference():
    rng = np.random.default_rng(5)
    data = {k: _series(i, 150) for i, k in enumerate(["a", "b", "c"])}
    order = [k for k in rng.permutation(np.repeat(list(data), 150))]
    expected = _reference({k: iter(v) for k, v in data.items()}, order)
    model, streams = GlobalForecaster(hidden_size=8, seed=0), {k: iter(v) for k, v in data.items()}
    for key in order:
        model.learn_one(key, float(next(streams[key])))
    for key in data:
        assert model.forecast(key, 24) == expected[key]
    assert model.n_updates == sum(150 // 4 for _ in data)


def test_the_statistical_part_of_a_key_does_not_depend_on_the_interleaving():
    data = {k: _series(i, 200) for i, k in enumerate(["a", "b"])}
    one = GlobalForecaster(hidden_size=4, seed=0)
    two = GlobalForecaster(hidden_size=4, seed=0)
    for t in range(200):
        for k in ("a", "b"):
            one.learn_one(k, float(data[k][t]))
    for k in ("b", "a"):
        for t in range(200):
            two.learn_one(k, float(data[k][t]))
    for k in ("a", "b"):
        f, g = one[k], two[k]
        assert f.period == g.period == 12
        np.testing.assert_array_equal(f._smoothing.state, g._smoothing.state)
        np.testing.assert_array_equal(f._recent, g._recent)
        assert f._bases["lin"].forecast(3) == g._bases["lin"].forecast(3)
    assert one.forecast("a", 5) != two.forecast("a", 5)  # the shared network learned in another order


def test_learn_many_equals_learn_one_in_a_loop():
    data = {k: _series(i, 120) for i, k in enumerate([("pump", 1), ("pump", 2), 3])}
    keys = [k for t in range(120) for k in data]
    ys = [float(data[k][t]) for t in range(120) for k in data]
    a, b = GlobalForecaster(hidden_size=4, seed=1), GlobalForecaster(hidden_size=4, seed=1)
    a.learn_many(keys, np.array(ys))
    for k, y in zip(keys, ys):
        b.learn_one(k, y)
    assert pickle.dumps(a) == pickle.dumps(b)
    np.testing.assert_array_equal(a.forecast_many(list(data), 10), np.array([b.forecast(k, 10) for k in data]))


@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("how", ["pickle", "save"])
def test_saved_and_loaded_it_continues_exactly(tmp_path, how, batch, monkeypatch):
    """... its corrections across series included (active from the 168th
    value), their network stepping per sample or per batch of 5 (saved with
    a batch part summed)."""
    monkeypatch.setattr(streamrnn.window_network, "BATCH", batch)
    data = {k: _series(i, 300) for i, k in enumerate(["a", "b"])}
    model = GlobalForecaster(hidden_size=4, seed=2)
    for t in range(221):
        for k in data:
            model.learn_one(k, float(data[k][t]))
    assert model._window.batch == batch and model._window.pending == (2 if batch == 5 else 0)
    if how == "pickle":
        copy = pickle.loads(pickle.dumps(model))
    else:
        save(model, tmp_path / "m.npz")
        copy = load(tmp_path / "m.npz")
    for t in range(221, 300):
        for k in data:
            model.learn_one(k, float(data[k][t]))
            copy.learn_one(k, float(data[k][t]))
    for k in data:
        assert copy.forecast(k, 24) == model.forecast(k, 24)
        assert copy.forecast_interval(k, 24) == model.forecast_interval(k, 24)
    assert copy.n_updates == model.n_updates
    assert copy._window.steps == model._window.steps > 0
    np.testing.assert_array_equal(copy._window.theta, model._window.theta)


def test_a_global_forecaster_saved_before_the_corrections_continues_without_them():
    data = {k: _series(i, 250) for i, k in enumerate(["a", "b"])}
    old, new = GlobalForecaster(hidden_size=4, seed=2, correct=False), GlobalForecaster(hidden_size=4, seed=2,
                                                                                         correct=False)
    for t in range(100):
        for k in data:
            old.learn_one(k, float(data[k][t]))
            new.learn_one(k, float(data[k][t]))
    for name in ("correct", "_window", "_correctors"):
        del old.__dict__[name]  # as a file of the earlier version holds it
    old = pickle.loads(pickle.dumps(old))
    assert old.correct is False
    for t in range(100, 250):
        for k in data:
            old.learn_one(k, float(data[k][t]))
            new.learn_one(k, float(data[k][t]))
    assert old.forecast("a", 24) == new.forecast("a", 24)


def test_corrections_by_a_frozen_network_change_nothing():
    """The window network's head starts at zero: frozen (lr tiny), its
    corrected forecasts equal the forecasts, and every forecast and interval
    is the one without corrections, bit for bit."""
    data = {k: _series(i, 260) for i, k in enumerate(["a", "b"])}
    on, off = GlobalForecaster(hidden_size=4, seed=0, lr=1e-30), GlobalForecaster(hidden_size=4, seed=0, lr=1e-30,
                                                                                    correct=False)
    for t in range(260):
        for k in data:
            on.learn_one(k, float(data[k][t]))
            off.learn_one(k, float(data[k][t]))
    for k in data:
        assert on._correctors[k].made is not None
        assert on.forecast(k, 48) == off.forecast(k, 48)
        assert on.forecast_interval(k, 48, 0.8) == off.forecast_interval(k, 48, 0.8)


def test_corrections_learn_a_bias_the_forecasts_share():
    """Series whose forecasts are all 10 % too high: the window network,
    learning from every key, corrects them; each key's forecast becomes the
    corrected one where it has erred less, within 2 % of the truth."""
    from streamrnn.window_network import HORIZON, WindowCorrector, window_network

    n = 1500
    t = np.arange(n + HORIZON)
    keys = range(4)
    truth = {k: (20 + 5 * k) * np.exp(0.2 * np.sin(2 * np.pi * t / 24 + k)) for k in keys}
    network, correctors = window_network(1e-3, seed=0), {k: WindowCorrector() for k in keys}
    for i in range(n):
        for k in keys:
            correctors[k].update(float(truth[k][i]), truth[k][i + 1 : i + 1 + HORIZON] * 1.1, network)
    for k in keys:
        got = np.array(correctors[k].forecast(HORIZON))
        expected = truth[k][n : n + HORIZON]
        assert np.abs(got / expected - 1).max() < 0.02
        assert correctors[k].made[1].all()  # the corrected mean is given at every horizon


def test_the_window_network_takes_the_step_a_reference_takes():
    """One Adam step on the mean absolute error, against NumPy."""
    from streamrnn.window_network import WindowNetwork

    rng = np.random.default_rng(1)
    net = WindowNetwork(5, 4, 3, lr=0.05, seed=2)
    net.theta[20:] = rng.normal(size=len(net.theta) - 20)  # a head away from zero
    W1, b1 = net.theta[:20].reshape(5, 4).copy(), net.theta[20:24].copy()
    W2, b2 = net.theta[24:36].reshape(4, 3).copy(), net.theta[36:].copy()
    x, y = rng.normal(size=5), rng.normal(size=3)
    h = np.tanh(x @ W1 + b1)
    out = h @ W2 + b2
    np.testing.assert_allclose(net.forward(x), out, rtol=1e-12)
    g_out = np.sign(out - y) / 3
    g_W2, g_b2 = np.outer(h, g_out), g_out
    g_pre = (W2 @ g_out) * (1 - h * h)
    grad = np.concatenate([np.outer(x, g_pre).ravel(), g_pre, g_W2.ravel(), g_b2])
    m1, m2 = 0.1 * grad, 0.001 * grad * grad
    step = 0.05 * (m1 / 0.1) / (np.sqrt(m2 / 0.001) + 1e-8)
    expected = np.concatenate([W1.ravel(), b1, W2.ravel(), b2]) - step
    assert net.learn(x, y) == pytest.approx(np.abs(out - y).mean(), rel=1e-12)
    np.testing.assert_allclose(net.theta, expected, rtol=1e-12, atol=1e-15)
    assert net.steps == 1
    assert np.isnan(net.learn(x, np.array([np.nan, 0.0, 0.0]))) and net.steps == 1


def test_a_float32_window_network_takes_the_step_a_float32_reference_takes():
    """The same step in float32 (the corrector's network): weights, moments
    and arithmetic in float32, against NumPy in float32 (to a few units in
    the last place: the order of sums differs) and within float32's
    precision of the float64 step."""
    from streamrnn.window_network import WindowNetwork

    rng = np.random.default_rng(1)
    net = WindowNetwork(5, 4, 3, lr=0.05, seed=2, dtype="float32")
    wide = WindowNetwork(5, 4, 3, lr=0.05, seed=2)
    assert net.dtype == "float32" and net.theta.dtype == net.m1.dtype == net.m2.dtype == np.float32
    np.testing.assert_array_equal(net.theta, wide.theta.astype(np.float32))  # drawn in float64, then rounded
    net.theta[20:] = rng.normal(size=len(net.theta) - 20).astype(np.float32)
    f = np.float32
    W1, b1 = net.theta[:20].reshape(5, 4).copy(), net.theta[20:24].copy()
    W2, b2 = net.theta[24:36].reshape(4, 3).copy(), net.theta[36:].copy()
    x, y = rng.normal(size=5).astype(f), rng.normal(size=3).astype(f)
    h = np.tanh(x @ W1 + b1)
    out = h @ W2 + b2
    np.testing.assert_allclose(net.forward(x), out, rtol=1e-5)
    g_out = (np.sign(out - y) / f(3)).astype(f)
    g_pre = (W2 @ g_out) * (f(1) - h * h)
    grad = np.concatenate([np.outer(x, g_pre).ravel(), g_pre, np.outer(h, g_out).ravel(), g_out]).astype(f)
    m1, m2 = f(0.1) * grad, f(0.001) * grad * grad
    step = f(0.05) * (m1 / f(0.1)) / (np.sqrt(m2 / f(0.001)) + f(1e-8))
    expected = np.concatenate([W1.ravel(), b1, W2.ravel(), b2]) - step
    net.learn(x, y)
    assert net.theta.dtype == np.float32
    np.testing.assert_allclose(net.theta, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.m1, m1, rtol=1e-5, atol=1e-9)


def test_a_float64_corrector_network_saved_before_float32_loads_and_continues_in_float64():
    """A global forecaster saved when its window network was float64 (as
    every one was before) loads, and continues exactly as the float64
    network it was continues; a new one runs in float32."""
    import streamrnn.window_network as W

    data = {k: _series(i, 300) for i, k in enumerate(["a", "b"])}
    original = W.DTYPE
    try:
        W.DTYPE = "float64"
        wide = GlobalForecaster(hidden_size=4, seed=2)
    finally:
        W.DTYPE = original
    assert wide._window.theta.dtype == np.float64 and GlobalForecaster(seed=0)._window.dtype == "float32"
    for t in range(200):
        for k in data:
            wide.learn_one(k, float(data[k][t]))
    copy = pickle.loads(pickle.dumps(wide))
    assert copy._window.dtype == "float64"
    for t in range(200, 300):
        for k in data:
            wide.learn_one(k, float(data[k][t]))
            copy.learn_one(k, float(data[k][t]))
    assert copy._window.steps == wide._window.steps > 0
    np.testing.assert_array_equal(copy._window.theta, wide._window.theta)
    for k in data:
        assert copy.forecast(k, 48) == wide.forecast(k, 48)
    state = copy._window.__getstate__()
    state["m1"] = state["m1"].astype(np.float32)  # one array in another precision: refused
    with pytest.raises(ValueError, match="m1"):
        W.WindowNetwork.__new__(W.WindowNetwork).__setstate__(state)


def test_a_batched_window_network_steps_along_the_mean_gradient_of_its_batch():
    """batch=3: no step for two samples, then one Adam step along the mean
    of the three gradients (each at the weights before the step), against
    NumPy; a non-finite sample is not counted; a pickled network continues
    exactly; batch=1 keeps the step per sample."""
    from streamrnn.window_network import WindowNetwork

    rng = np.random.default_rng(3)
    net = WindowNetwork(5, 4, 3, lr=0.05, seed=2, batch=3)
    net.theta[20:] = rng.normal(size=len(net.theta) - 20)
    theta = net.theta.copy()
    W1, b1, W2, b2 = theta[:20].reshape(5, 4), theta[20:24], theta[24:36].reshape(4, 3), theta[36:]
    xs, ys = rng.normal(size=(3, 5)), rng.normal(size=(3, 3))
    grads = []
    for x, y in zip(xs, ys):
        h = np.tanh(x @ W1 + b1)
        g_out = np.sign(h @ W2 + b2 - y) / 3
        g_pre = (W2 @ g_out) * (1 - h * h)
        grads.append(np.concatenate([np.outer(x, g_pre).ravel(), g_pre, np.outer(h, g_out).ravel(), g_out]))
    grad = np.mean(grads, axis=0)
    expected = theta - 0.05 * grad / (np.abs(grad) + 1e-8)  # Adam's first step: m1/c1 = g, sqrt(m2/c2) = |g|
    net.learn(xs[0], ys[0])
    assert np.isnan(net.learn(xs[0], np.array([np.nan, 0.0, 0.0])))
    net.learn(xs[1], ys[1])
    np.testing.assert_array_equal(net.theta, theta)
    assert (net.steps, net.pending) == (0, 2)
    copy = pickle.loads(pickle.dumps(net))
    for model in (net, copy):
        model.learn(xs[2], ys[2])
        np.testing.assert_allclose(model.theta, expected, rtol=1e-12, atol=1e-15)
        assert (model.steps, model.pending) == (1, 0) and not model.summed.any()
    np.testing.assert_array_equal(net.theta, copy.theta)
    assert not hasattr(WindowNetwork(5, 4, 3, seed=2), "summed")
    with pytest.raises(ValueError, match="batch"):
        WindowNetwork(5, 4, 3, batch=0)


@pytest.mark.parametrize("kernel", ["learn", "accumulate"])
def test_the_window_kernels_give_the_same_bits_wherever_their_arrays_lie(kernel):
    """A loop that writes is vectorised behind run-time checks that its
    arrays do not overlap (Numba's negative-index wrap-around makes those
    checks reach past an array's end), with a scalar twin that sums in
    another order: the window kernels' sums must not depend on which runs.
    The same steps with the arrays laid out in one buffer in any order and
    spacing, or each in its own, give the same bits."""
    from streamrnn.kernels.window_network import window_accumulate, window_learn
    from streamrnn.window_network import WindowNetwork

    rng = np.random.default_rng(1)
    n_in, n_hidden, n_out = 216, 64, 48
    xs, ys = rng.normal(size=(3, n_in)), 0.1 * rng.normal(size=(3, n_out))
    theta = WindowNetwork(n_in, n_hidden, n_out, seed=0).theta
    theta[n_in * n_hidden :] = 0.1 * rng.normal(size=theta.size - n_in * n_hidden)  # a head away from zero
    P = theta.size
    sizes = {"theta": P, "m1": P, "m2": P, "grad": P, "x": n_in, "y": n_out, "hidden": n_hidden, "out": n_out}
    runs = []
    for layout in range(24):
        order = rng.permutation(list(sizes)).tolist()
        if layout % 3:
            gaps = rng.choice([0, 1, 8, 100], size=len(order))
            buf = np.zeros(sum(sizes.values()) + int(gaps.sum()))
            a, at = {}, 0
            for name, gap in zip(order, gaps):
                a[name] = buf[at : at + sizes[name]]
                at += sizes[name] + int(gap)
        else:
            a = {name: np.zeros(sizes[name]) for name in order}
        a["theta"][:] = theta
        losses = []
        for t in range(3):
            a["x"][:], a["y"][:] = xs[t], ys[t]
            if kernel == "learn":
                losses.append(window_learn(a["theta"], a["m1"], a["m2"], a["grad"], n_in, n_hidden, n_out, a["x"],
                                           a["y"], t + 1, 1e-3, 0.9, 0.999, 1e-8, a["hidden"], a["out"]))
            else:
                losses.append(window_accumulate(a["theta"], a["grad"], n_in, n_hidden, n_out, a["x"], a["y"],
                                                a["hidden"], a["out"]))
        runs.append(b"".join(a[name].tobytes() for name in ("theta", "m1", "m2", "grad", "hidden", "out"))
                    + np.array(losses).tobytes())
    assert all(run == runs[0] for run in runs)


@pytest.mark.parametrize("batch", [1, 3])
def test_the_window_network_learns_the_same_bits_wherever_its_arrays_lie(batch):
    """Its kernels' sums are vectorised, and whether a loop runs its vector
    or its scalar version (rounding differently) can depend on where its
    arrays lie relative to each other. A network loaded from weights and
    moments anywhere in memory (any order, offsets of 8 to 120 bytes apart),
    fed inputs from anywhere, learns and corrects the same bits."""
    from streamrnn.window_network import WindowNetwork

    rng = np.random.default_rng(0)
    n_in, n_hidden, n_out = 216, 64, 48
    xs, ys = rng.normal(size=(10, n_in)), 0.1 * rng.normal(size=(10, n_out))
    start = WindowNetwork(n_in, n_hidden, n_out, lr=1e-3, seed=0, batch=batch)
    for t in range(4):  # moments away from zero, and with batch 3 a pending sample
        start.learn(xs[t], ys[t])
    state = pickle.loads(pickle.dumps(start)).__getstate__()
    placed = [k for k in ("theta", "m1", "m2", "summed") if k in state]
    runs = []
    for layout in range(12):
        sizes = {**{k: state[k].size for k in placed}, "x": n_in, "y": n_out}
        order = rng.permutation(list(sizes)).tolist()
        if layout % 2:  # one after the other in one buffer
            gaps = rng.integers(1, 16, size=len(sizes))
            buf = np.zeros(sum(sizes.values()) + int(gaps.sum()) + 8)
            at, view = int(rng.integers(0, 8)), {}
            for name, gap in zip(order, gaps):
                view[name] = buf[at : at + sizes[name]]
                at += sizes[name] + int(gap)
        else:  # each in its own buffer, at an offset, allocated in any order
            view = {name: np.zeros(sizes[name] + 8)[(o := int(rng.integers(0, 8))) : o + sizes[name]] for name in order}
        for k in placed:
            view[k][:] = state[k]
        net = WindowNetwork.__new__(WindowNetwork)
        net.__setstate__({**state, **{k: view[k] for k in placed}})
        assert all(getattr(net, k).ctypes.data % 64 == 0 for k in ("theta", "m1", "m2", "_grad", "_x", "_y"))
        outputs = []
        for t in range(4, 10):
            view["x"][:], view["y"][:] = xs[t], ys[t]
            outputs.append(net.learn(view["x"], view["y"]))
            outputs.extend(net.forward(view["x"]).tolist())
        runs.append((net.theta.tobytes(), net.m1.tobytes(), np.array(outputs).tobytes()))
    assert all(run == runs[0] for run in runs)


def test_a_loaded_file_whose_keys_disagree_is_refused():
    model = GlobalForecaster(hidden_size=4, seed=2)
    for t in range(30):
        model.learn_one("a", float(t % 5))
    state = pickle.loads(pickle.dumps(model)).__dict__
    state["_series"]["b"] = state["_series"].pop("a")
    broken = GlobalForecaster.__new__(GlobalForecaster)
    with pytest.raises(ValueError, match="does not run on the shared network"):
        broken.__setstate__(state)


def test_max_idle_evicts_keys_not_learned_from():
    model = GlobalForecaster(hidden_size=4, seed=0, max_idle=10)
    for t in range(100):
        model.learn_one(f"new-{t}", 1.0 + t % 3)  # a stream of ever new keys
        model.learn_one("steady", float(t % 7))
    assert "steady" in model and len(model) <= 12
    assert len(model.bank) <= 12
    before = model.forecast("new-0", 3)
    assert before == [0.0, 0.0, 0.0]  # evicted: unseen again


def test_evict_and_unseen_keys():
    model = GlobalForecaster(hidden_size=4, seed=0)
    for t in range(40):
        model.learn_one("a", float(t % 4))
        model.learn_one("b", float(t))
    assert model.forecast("zzz", 2) == [0.0, 0.0] and "zzz" not in model
    with pytest.raises(KeyError):
        model.evict(["a", "zzz"])
    assert model.keys == ["a", "b"]
    model.evict(["a"])
    assert model.keys == ["b"] and model.bank.keys == ["b"]


def test_bad_input_is_refused_and_leaves_no_key():
    model = GlobalForecaster(hidden_size=4, seed=0)
    with pytest.raises(ValueError, match="NaN"):
        model.learn_one(float("nan"), 1.0)
    with pytest.raises(ValueError, match="finite"):
        model.learn_one("a", float("inf"))
    with pytest.raises(ValueError, match="dates"):
        model.learn_one("a", 1.0, {"temperature": 3.0})
    assert len(model) == 0 and len(model.bank) == 0
    with pytest.raises(ValueError, match="cell"):
        GlobalForecaster(cell="transformer")
    with pytest.raises(ValueError, match="horizon"):
        model.forecast_many(["a"], 0)
    with pytest.raises(ValueError, match="same length"):
        model.learn_many(["a", "b"], [1.0])


def test_dates_give_each_key_its_period():
    model = GlobalForecaster(hidden_size=4, seed=0)
    start = dt.datetime(2024, 1, 1)
    for t in range(5):
        model.learn_one("hourly", float(t), {"time": start + dt.timedelta(hours=t)})
        model.learn_one("daily", float(t), {"time": start + dt.timedelta(days=t)})
    assert model["hourly"].period == 24 and model["daily"].period == 7
    assert getattr(streamrnn, "GlobalForecaster") is GlobalForecaster


def test_future_dates_are_checked_not_used():
    model = GlobalForecaster(hidden_size=4, seed=0)
    start = dt.datetime(2024, 1, 1)
    for t in range(60):
        model.learn_one("a", float(t % 24), {"time": start + dt.timedelta(hours=t)})
    future = [{"time": start + dt.timedelta(hours=60 + k)} for k in range(3)]
    assert model.forecast("a", 3, future) == model.forecast("a", 3)
    assert model.forecast_interval("a", 3, 0.8, future) == model.forecast_interval("a", 3, 0.8)
    with pytest.raises(ValueError, match="dates"):
        model.forecast("a", 3, [{"load": 1.0}] * 3)


def test_the_window_network_sees_the_log_window_and_forecast_less_the_level():
    """The inputs at an origin, made from the values and the forecast kept,
    against NumPy: the last 168 log values and the log forecast (its last
    step repeated beyond what was given), less the mean of the last 24 log
    values, clipped at ±3."""
    from streamrnn.kernels.window_network import window_inputs
    from streamrnn.window_network import CLIP_INPUTS, HORIZON, LEVEL, WINDOW, WindowCorrector, window_network

    rng = np.random.default_rng(3)
    y = np.exp(rng.normal(0, 0.3, 400)) * 10
    y[390] = 1e4  # an input beyond the clip
    corrector, network = WindowCorrector(), window_network(0.0, seed=0)
    for i in range(400):
        forecast = y[i] * np.exp(rng.normal(0, 0.1, 20))  # 20 steps given
        corrector.update(float(y[i]), forecast, network)
    logs = np.log(y)
    level = logs[-LEVEL:].mean()
    filled = np.concatenate([np.log(forecast), np.full(HORIZON - 20, np.log(forecast[-1]))])
    expected = np.clip(np.concatenate([logs[-WINDOW:], filled]) - level, -CLIP_INPUTS, CLIP_INPUTS)
    x = np.empty(WINDOW + HORIZON)
    window_inputs(corrector.values, corrector.n, WINDOW, corrector.anchors[400 % HORIZON], LEVEL, CLIP_INPUTS, x)
    np.testing.assert_allclose(x, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(corrector.anchors[400 % HORIZON], filled, rtol=1e-12)
    assert not corrector.made[1][20:].any()  # nothing given beyond the 20 steps forecast


def test_a_store_of_correctors_updates_as_each_corrector_alone():
    """A :class:`~streamrnn.corrector_store.CorrectorStore` runs each batch of
    updates in one kernel call: the same bits as each corrector's own
    ``update`` row by row (repeated keys in a batch, forecasts of 12 to 48
    steps, a value <= 0 early and a forecast value <= 0 late making a
    corrector idle, a key let go and another taking its row, the store
    growing past 8 rows)."""
    from streamrnn.corrector_store import CorrectorStore
    from streamrnn.window_network import HORIZON, WindowCorrector, window_network

    rng = np.random.default_rng(3)
    n_keys, n = 12, 260
    truth = {k: np.exp(rng.normal(0, 0.05, n + HORIZON).cumsum() + k % 5) for k in range(n_keys)}
    truth[3][40] = -1.0  # idle early, by its value
    steps = {k: 12 if k % 3 == 0 else HORIZON for k in range(n_keys)}

    def forecast(k, i):
        f = truth[k][i + 1 : i + 1 + steps[k]] * (1.0 + 0.01 * (k % 4))
        if k == 5 and i == 220:
            f = f.copy()
            f[7] = 0.0  # refused by the kernel, once the window is full
        return f

    mine, alone = window_network(1e-3, seed=0), window_network(1e-3, seed=0)
    store, correctors = CorrectorStore(mine), {k: WindowCorrector() for k in range(n_keys)}
    for k in range(n_keys):
        store.attach(k, correctors[k])
    reference = {k: WindowCorrector() for k in range(n_keys)}
    at = dict.fromkeys(range(n_keys), 0)
    for batch in range(600):
        keys = rng.integers(0, n_keys, rng.integers(1, 20)).tolist()  # repeats included
        for k in keys:
            if at[k] < n:
                store.queue(k, float(truth[k][at[k]]), forecast(k, at[k]))
                reference[k].update(float(truth[k][at[k]]), forecast(k, at[k]), alone)
                at[k] += 1
        store.flush()
        if batch == 300:  # key 0 let go, key 12 takes its row
            store.detach(0)
            kept = correctors.pop(0)
            assert pickle.dumps(kept) == pickle.dumps(reference.pop(0))
            correctors[n_keys] = WindowCorrector()
            reference[n_keys] = WindowCorrector()
            truth[n_keys], steps[n_keys], at[n_keys] = truth[1] * 2.0, HORIZON, 0
            store.attach(n_keys, correctors[n_keys])
            n_keys += 1
    assert correctors[3].idle and correctors[5].idle and min(at.values()) == n
    assert len(store) == 12 and len(store._arrays["values"]) == 16
    for k in correctors:
        assert pickle.dumps(correctors[k]) == pickle.dumps(reference[k]), k
    assert mine.steps == alone.steps > 0
    for name in ("theta", "m1", "m2"):
        np.testing.assert_array_equal(getattr(mine, name), getattr(alone, name))


def test_learn_many_learns_the_rows_before_a_refused_one_whole():
    """A refused row raises after the rows before it are learned, their
    corrections included (queued, then run), as ``learn_one`` in a loop;
    both then continue alike. Keys repeat within the calls."""
    data = {k: _series(i, 240) for i, k in enumerate("abc")}
    a, b = GlobalForecaster(hidden_size=4, seed=1), GlobalForecaster(hidden_size=4, seed=1)
    for t in range(0, 240, 2):
        keys = [k for s in (t, t + 1) for k in data]
        ys = [float(data[k][s]) for s in (t, t + 1) for k in data]
        if t == 200:
            ys[4] = float("inf")
            with pytest.raises(ValueError, match="finite"):
                a.learn_many(keys, ys)
            for k, y in zip(keys[:4], ys[:4]):
                b.learn_one(k, y)
            with pytest.raises(ValueError, match="finite"):
                b.learn_one(keys[4], ys[4])
            continue
        a.learn_many(keys, ys)
        for k, y in zip(keys, ys):
            b.learn_one(k, y)
    assert a._window.steps == b._window.steps > 0
    assert pickle.dumps(a) == pickle.dumps(b)


def test_a_loaded_global_forecaster_holds_its_correctors_in_one_store(tmp_path):
    """On loading, the store is made from the correctors saved (it is not
    saved): each corrector's arrays are views of its row, equal to what
    was saved."""
    model = GlobalForecaster(hidden_size=4, seed=0)
    for t in range(200):
        model.learn_many(["a", "b", "c"], [1.0 + t % 7, 2.0 + t % 5, 3.0 + t % 3])
    assert "_store" not in model.__getstate__()
    save(model, tmp_path / "m.npz")
    for copy in (load(tmp_path / "m.npz"), pickle.loads(pickle.dumps(model))):
        for k in "abc":
            mine, theirs = copy._correctors[k], model._correctors[k]
            assert np.shares_memory(mine.values, copy._store._arrays["values"])
            assert np.shares_memory(mine.combination.abs_errors, copy._store._arrays["abs_errors"])
            assert _same_corrector(mine, theirs)


def _same_corrector(a, b) -> bool:
    """Two window correctors' states, bit for bit (arrays by their bytes)."""
    def same(x, y):
        if type(x) is np.ndarray:
            return type(y) is np.ndarray and x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
        if type(x) is tuple:
            return type(y) is tuple and len(x) == len(y) and all(same(u, v) for u, v in zip(x, y))
        return type(x) is type(y) and x == y

    ca, cb = a.combination.__dict__, b.combination.__dict__
    return (a.__dict__.keys() == b.__dict__.keys() and ca.keys() == cb.keys()
            and all(same(v, b.__dict__[k]) for k, v in a.__dict__.items() if k != "combination")
            and all(same(v, cb[k]) for k, v in ca.items()))


def test_learn_many_evicting_idle_keys_mid_call_equals_learn_one_in_a_loop():
    """``max_idle`` evicts a key inside a call (its queued correction run
    first); the key comes back as new within later calls; the corrections'
    network learning all along. The same bits as ``learn_one`` in a loop."""
    data = {k: _series(i, 260) for i, k in enumerate("abcd")}
    a, b = (GlobalForecaster(hidden_size=4, seed=3, max_idle=12) for _ in range(2))
    for t in range(260):
        keys = [k for k in data if not (k == "d" and 100 <= t < 150)]
        ys = [float(data[k][t]) for k in keys]
        a.learn_many(keys + keys[:1], ys + ys[:1])  # (the first key twice)
        for k, y in zip(keys + keys[:1], ys + ys[:1]):
            b.learn_one(k, y)
        if t == 120:
            assert "d" not in a and "d" not in a._correctors and len(a._store) == 3
    assert a._window.steps == b._window.steps > 0 and len(a._store) == 4
    assert pickle.dumps(a) == pickle.dumps(b)
