"""CUDA bank kernels: equal to the CPU bank (the independent reference, itself
tested against float64 references), and free of float64 in float32 code.

The device tests need numba-cuda and either a GPU or Numba's CUDA simulator,
which must be switched on before ``numba.cuda`` is first imported, so they
run in their own pytest process::

    NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/test_cuda.py

The simulator runs every GPU thread as a Python thread (~0.4 ms each) and
computes partly in float64: shapes are tiny. The PTX test compiles the
kernels for compute capability 9.0 in a subprocess without the simulator;
it needs NVVM and NVRTC (``pip install "streamrnn[cuda]"`` brings them) but
no GPU.
"""

import importlib.util
import json
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from streamrnn import ModelBank, OnlineRNN
from streamrnn.kernels import layout as L


def whole(bank):
    """A CPU bank's models as whole buffers (persistent part and scratch), one
    row per slot: the form the CUDA kernels and their CPU references take."""
    buf = np.zeros((bank._buf.shape[0], bank._lay[L.L_BUF]), dtype=bank._buf.dtype)
    buf[:, : bank._buf.shape[1]] = bank._buf
    return buf


def _device_skip_reason():
    if importlib.util.find_spec("numba_cuda") is None:
        return 'numba-cuda is not installed (pip install "streamrnn[cuda]")'
    from numba import cuda

    if cuda.is_available():
        return None
    return ("no CUDA GPU found and Numba's CUDA simulator is off: run "
            "NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/test_cuda.py")


_REASON = _device_skip_reason()
needs_cuda = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")

# hidden 3, k2 3, two outputs (so forecasts feed back), tiny for the simulator
BASE = dict(input_size=2, output_size=2, hidden_size=3, k1=2, k2=3, lr=0.05)
KEYS = ("a", "b", 7)


def tolerance(dtype):
    return dict(rtol=1e-10, atol=1e-10) if dtype == "float64" else dict(rtol=1e-4, atol=2e-5)


def make_batches(rng, n_batches=3, rows=6, keys=KEYS, poison=True):
    """Batches with several rows per key; the second has a non-finite input
    and a non-finite target."""
    out = []
    for b in range(n_batches):
        ks = [keys[i] for i in rng.integers(0, len(keys), size=rows)]
        X, Y = rng.normal(size=(rows, 2)), rng.normal(size=(rows, 2))
        if poison and b == 1:
            X[1, 0] = np.nan
            Y[3, 1] = np.inf
        out.append((ks, X, Y))
    return out


def pair(dtype="float64", capacity=2, **config):
    """The same bank on the CPU and on the GPU; capacity 2 makes both grow."""
    config = {**BASE, "dtype": dtype, **config}
    return (ModelBank(seed=3, capacity=capacity, **config),
            ModelBank(seed=3, capacity=capacity, device="cuda", **config))


def assert_banks_close(cpu, gpu, dtype):
    assert cpu.keys == gpu.keys
    persist = cpu._lay[L.L_PERSIST]
    for k in cpu.keys:
        a, b = cpu.model(k), gpu.model(k)
        np.testing.assert_array_equal(a._ctr, b._ctr)
        np.testing.assert_allclose(b._buf[:persist], a._buf[:persist], **tolerance(dtype))


def run_and_compare(cpu, gpu, batches, dtype):
    for keys, X, Y in batches:
        np.testing.assert_allclose(gpu.learn_many(keys, X, Y), cpu.learn_many(keys, X, Y), **tolerance(dtype))
    assert_banks_close(cpu, gpu, dtype)


@needs_cuda
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_cuda_bank_equals_the_cpu_bank(cell, num_layers, dtype, rng):
    cpu, gpu = pair(dtype, cell=cell, num_layers=num_layers)
    run_and_compare(cpu, gpu, make_batches(rng), dtype)
    assert sum(cpu.model(k).n_skipped for k in cpu.keys) >= 2  # the non-finite rows were met
    assert gpu._capacity >= 3  # it grew

    # predictions: several rows per key, an unseen key, a non-finite row
    keys = ["a", "new", "a", 7, "b", "new"]
    X = rng.normal(size=(6, 2))
    X[4, 1] = np.nan
    p_cpu, p_gpu = cpu.predict_many(keys, X), gpu.predict_many(keys, X)
    assert np.isnan(p_gpu[4]).all()
    np.testing.assert_allclose(p_gpu, p_cpu, **tolerance(dtype))

    # forecasts fed back, an unseen key, a non-finite start
    X0 = rng.normal(size=(4, 2))
    X0[2, 0] = np.inf
    keys = ["b", "other", 7, "a"]
    f_cpu, f_gpu = cpu.forecast_many(keys, 3, X0), gpu.forecast_many(keys, 3, X0)
    assert f_gpu.shape == (4, 3, 2) and np.isnan(f_gpu[2]).all()
    np.testing.assert_allclose(f_gpu, f_cpu, **tolerance(dtype))
    assert "new" not in gpu and "other" not in gpu
    assert_banks_close(cpu, gpu, dtype)  # predictions changed no state


@needs_cuda
@pytest.mark.parametrize("config", [
    dict(optimizer="sgd", momentum=0.5, weight_decay=0.01, clip_norm=None),
    dict(optimizer="rmsprop", weight_decay=0.001, clip_norm=0.05),
    dict(optimizer="adamw", loss="huber", huber_delta=0.3),
    dict(loss="cross_entropy", clip_norm=0.1),
    dict(k1=1, k2=3, recompute=True, cell="gru", num_layers=2),
    dict(k1=3, k2=2, cell="rnn", approx_activations=True),
], ids=["sgd", "rmsprop", "adamw-huber", "cross-entropy", "recompute", "k1>k2-approx"])
def test_optimizers_losses_and_schedules(config, rng):
    config = {"cell": "lstm", **config}
    cpu, gpu = pair("float64", **config)
    batches = make_batches(rng, poison=False)
    if config.get("loss") == "cross_entropy":  # targets: class probabilities
        batches = [(k, X, np.eye(2)[(Y[:, 0] > 0).astype(int)]) for k, X, Y in batches]
    run_and_compare(cpu, gpu, batches, "float64")
    assert sum(cpu.model(k).n_updates for k in cpu.keys) > 0


@needs_cuda
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the simulator computes with NumPy scalars
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_a_state_gone_non_finite_is_reset_as_on_the_cpu(cell, rng):
    cpu, _ = pair("float64", cell=cell)
    for keys, X, Y in make_batches(rng, poison=False):
        cpu.learn_many(keys, X, Y)
    snap = cpu.snapshot()
    lay = cpu._lay
    slot = snap["meta"]["keys"].index("b")
    snap["buf"][slot, lay[L.L_PARAMS0 + 1]] = np.nan  # a recurrent weight of b
    cpu, gpu = ModelBank.restore(snap), ModelBank.restore(snap, device="cuda")
    keys, X, Y = ["b", "a", "b"], rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    for _ in range(2):
        out_cpu, out_gpu = cpu.learn_many(keys, X, Y), gpu.learn_many(keys, X, Y)
        np.testing.assert_array_equal(np.isnan(out_gpu), np.isnan(out_cpu))
        np.testing.assert_allclose(out_gpu, out_cpu, rtol=1e-10, atol=1e-10)
    assert gpu.model("b").n_resets == cpu.model("b").n_resets > 0
    np.testing.assert_array_equal(gpu.model("b")._ctr, cpu.model("b")._ctr)


@needs_cuda
def test_snapshot_restore_and_pickle_on_the_device(rng):
    data = make_batches(rng, n_batches=5)
    whole, part = (ModelBank(seed=1, device="cuda", dtype="float64", **BASE) for _ in range(2))
    cpu = ModelBank(seed=1, dtype="float64", **BASE)
    for b in data[:2]:
        whole.learn_many(*b), part.learn_many(*b), cpu.learn_many(*b)
    for bank in (whole, part, cpu):
        bank.evict(["b"])
    snap = part.snapshot()
    assert snap["meta"]["device"] == "cuda"
    assert snap["buf"].shape == (len(snap["meta"]["keys"]), whole._lay[L.L_PERSIST])
    restored = ModelBank.restore(snap)
    thawed = pickle.loads(pickle.dumps(part))
    on_cpu = ModelBank.restore(snap, device="cpu")
    assert restored.device == thawed.device == "cuda" and on_cpu.device == "cpu"
    cpu_snap = cpu.snapshot()
    np.testing.assert_allclose(snap["buf"], cpu_snap["buf"], rtol=1e-10, atol=1e-10)
    from_cpu = ModelBank.restore(cpu_snap, device="cuda")
    for b in data[2:]:
        expected = whole.learn_many(*b)
        np.testing.assert_array_equal(restored.learn_many(*b), expected)
        np.testing.assert_array_equal(thawed.learn_many(*b), expected)
        np.testing.assert_allclose(on_cpu.learn_many(*b), expected, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(from_cpu.learn_many(*b), expected, rtol=1e-10, atol=1e-10)
    assert restored.keys == whole.keys == thawed.keys
    end = whole.snapshot()
    for bank in (restored, thawed):
        np.testing.assert_array_equal(bank.snapshot()["buf"], end["buf"])
        np.testing.assert_array_equal(bank.snapshot()["ctr"], end["ctr"])


@needs_cuda
def test_idle_keys_are_evicted_and_slots_reused_on_the_device(rng, monkeypatch):
    monkeypatch.setattr("streamrnn.bank._FLUSH_MODELS", 1)  # new models sent one at a time
    cpu, gpu = (ModelBank(seed=0, max_idle=1, dtype="float64", device=d, **BASE) for d in ("cpu", "cuda"))
    for keys in (["a", "b"], ["a"], ["c", "c"]):
        X, Y = rng.normal(size=(len(keys), 2)), rng.normal(size=(len(keys), 2))
        np.testing.assert_allclose(gpu.learn_many(keys, X, Y), cpu.learn_many(keys, X, Y), rtol=1e-10, atol=1e-10)
    assert gpu.keys == cpu.keys and gpu._slot_of == cpu._slot_of
    assert_banks_close(cpu, gpu, "float64")


@needs_cuda
def test_out_of_device_memory_while_growing_leaves_a_consistent_bank(rng, monkeypatch):
    """The keys registered before a failure keep models written to the GPU
    (they were lost with the pending ones), and the buffers are not left
    half grown (ctr narrower than buf: the next put would write past it)."""
    from streamrnn.kernels import cuda as KC

    cpu, gpu = (ModelBank(seed=0, capacity=2, dtype="float64", device=d, **BASE) for d in ("cpu", "cuda"))
    real_alloc = KC.cuda_module().device_array
    calls = []

    def failing_alloc(*args, **kwargs):  # the second array of a grow runs out of memory
        calls.append(1)
        if len(calls) == 2:
            raise MemoryError("out of device memory")
        return real_alloc(*args, **kwargs)

    monkeypatch.setattr(KC.cuda_module(), "device_array", failing_alloc)
    X, Y = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    with pytest.raises(MemoryError):
        gpu.learn_many(["a", "b", "c"], X, Y)
    monkeypatch.undo()
    assert gpu.keys == ["a", "b"] and gpu._capacity == 2 == gpu._dev.ctr.shape[1]
    persist = cpu._lay[L.L_PERSIST]
    for seed, key in enumerate(("a", "b")):  # fresh models (the batch failed before learning)
        np.testing.assert_array_equal(gpu.model(key)._buf[:persist],
                                      OnlineRNN(**BASE, dtype="float64", seed=seed)._buf[:persist])
    gpu.learn_many(["c"], X[2:], Y[2:])  # and the bank goes on
    assert gpu.keys == ["a", "b", "c"] and gpu._capacity == 4


@needs_cuda
def test_the_learning_launchers_refuse_host_models(rng):
    """Host ctr/buf would be copied to the GPU, updated there and dropped."""
    from streamrnn.kernels import cuda as KC

    cpu, _ = pair("float64", cell="gru")
    cpu.learn_many(["a"], rng.normal(size=(1, 2)), rng.normal(size=(1, 2)))
    one = np.array([0])
    for block in (False, True):
        with pytest.raises(ValueError, match="ctr and buf must be device arrays"):
            KC.bank_learn(cpu._lay, cpu._ctr.T.copy(), whole(cpu).T.copy(), one, np.array([0, 1]), one,
                          np.zeros((1, 2)), np.zeros((1, 2)), np.zeros((1, 2)), block_per_model=block)

@needs_cuda
def test_the_launchers_take_the_cpu_kernels_arguments(rng):
    from streamrnn.kernels import cuda as KC
    from streamrnn.kernels import recurrent as K

    cpu, _ = pair("float64", cell="gru")
    cpu.learn_many(list(KEYS) + ["a"], rng.normal(size=(4, 2)), rng.normal(size=(4, 2)))
    buf, ctr = whole(cpu).copy(), cpu._ctr.copy()
    dev = KC.DeviceBuffers(cpu._lay, buf, ctr)
    groups = np.array([0, 2], dtype=np.int64)
    starts = np.array([0, 2, 3], dtype=np.int64)
    order = np.array([2, 0, 1], dtype=np.int64)
    X, Y = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    out_cpu, out_gpu = np.full((3, 2), -1.0), np.full((3, 2), -1.0)
    K.bank_learn(cpu._lay, ctr, buf, groups, starts, order, X, Y, out_cpu)
    KC.bank_learn(cpu._lay, dev.ctr, dev.buf, groups, starts, order, X, Y, out_gpu)
    np.testing.assert_allclose(out_gpu, out_cpu, rtol=1e-10, atol=1e-10)
    b, c = dev.take(np.arange(3))
    np.testing.assert_array_equal(c, ctr[:3])
    persist = cpu._lay[L.L_PERSIST]
    np.testing.assert_allclose(b[:, :persist], buf[:3, :persist], rtol=1e-10, atol=1e-10)

    groups1, starts1, order1 = groups[:1], starts[:2], order[:2]
    out_cpu, out_gpu = np.full((3, 2), -1.0), np.full((3, 2), -1.0)  # row 1 is not predicted: kept
    K.bank_predict(cpu._lay, buf, groups1, starts1, order1, X, out_cpu)
    KC.bank_predict(dev.lay, dev.buf, groups1, starts1, order1, X, out_gpu)
    np.testing.assert_allclose(out_gpu, out_cpu, rtol=1e-10, atol=1e-10)
    assert (out_gpu[1] == -1).all()

    # rows 0 and 2 on model 2 (one after another on its scratch), row 1 on model 0
    groups, starts, order = np.array([0, 2]), np.array([0, 1, 3]), np.array([1, 0, 2])
    f_cpu, f_gpu = np.empty((3, 4, 2)), np.empty((3, 4, 2))
    K.bank_forecast(cpu._lay, buf, groups, starts, order, X, f_cpu)
    KC.bank_forecast(dev.lay, dev.buf, groups, starts, order, X, f_gpu)
    np.testing.assert_allclose(f_gpu, f_cpu, rtol=1e-10, atol=1e-10)
    assert not np.allclose(f_cpu[0], f_cpu[2])  # different inputs: different forecasts


def test_the_batch_check_names_what_would_read_out_of_bounds(rng):
    """Runs without numba-cuda: the check is plain numpy on the shapes."""
    from streamrnn.kernels import cuda as KC

    cpu = ModelBank(seed=3, capacity=2, **{**BASE, "cell": "gru"})
    cpu.learn_many(list(KEYS), rng.normal(size=(3, 2)), rng.normal(size=(3, 2)))
    lay, buf, ctr = cpu._lay, whole(cpu).T, cpu._ctr.T  # model-minor, 3 models (capacity 4)
    n_models = buf.shape[1]
    good = dict(groups=np.array([0, 2]), starts=np.array([0, 2, 3]), order=np.array([2, 0, 1]),
                X=np.zeros((3, 2)), out=np.zeros((3, 2)))
    KC.check_batch(lay, buf, ctr=ctr, Y=np.zeros((3, 2)), **good)
    KC.check_batch(lay, buf, **{**good, "out": np.zeros((3, 5, 2))})  # a forecast's output
    bad = [
        (dict(buf=cpu._buf), "buf must have shape"),  # row-per-model, as on the CPU
        (dict(ctr=cpu._ctr), "ctr must have shape"),
        (dict(groups=np.array([0, n_models])), f"groups must index the {n_models} models"),
        (dict(groups=np.array([-1, 2])), "groups must index"),
        (dict(groups=np.array([0.0, 2.0])), "groups must be a 1-D array of integers"),
        (dict(starts=np.array([0, 3])), "starts must hold one more element than groups"),
        (dict(starts=np.array([0, 2, 4])), "starts must rise"),
        (dict(starts=np.array([0, 3, 2])), "starts must rise"),
        (dict(order=np.array([2, 0, 3])), "order must index the 3 rows of X"),
        (dict(X=np.zeros((3, 1))), "X must have shape"),
        (dict(Y=np.zeros((2, 2))), "Y must have shape"),
        (dict(out=np.zeros((2, 2))), "out must have shape"),
        (dict(out=np.zeros((3, 1))), "out must have shape"),
    ]
    for change, match in bad:
        args = {"buf": buf, "ctr": ctr, "Y": np.zeros((3, 2)), **good, **change}
        with pytest.raises(ValueError, match=match):
            KC.check_batch(lay, args.pop("buf"), **args)
    one_in = ModelBank(seed=0, input_size=1, output_size=2, hidden_size=3, k2=2)
    one_in.learn_many(["a"], np.zeros((1, 1)), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="input_size .1. must equal output_size .2."):
        KC.check_batch(one_in._lay, whole(one_in).T, np.array([0]), np.array([0, 1]), np.array([0]),
                       np.zeros((1, 1)), np.zeros((1, 4, 2)))


@needs_cuda
def test_the_launchers_check_the_batch_before_launching(rng):
    from streamrnn.kernels import cuda as KC

    cpu, _ = pair("float64", cell="gru")
    cpu.learn_many(list(KEYS), rng.normal(size=(3, 2)), rng.normal(size=(3, 2)))
    dev = KC.DeviceBuffers(cpu._lay, whole(cpu), cpu._ctr)
    before = dev.take(np.arange(3))
    groups, starts, X = np.array([0]), np.array([0, 1]), rng.normal(size=(1, 2))
    beyond = np.array([1])  # row 1 of a one-row batch
    for block in (False, True):
        with pytest.raises(ValueError, match="order must index the 1 rows of X"):
            KC.bank_learn(dev.lay, dev.ctr, dev.buf, groups, starts, beyond, X, X, np.zeros((1, 2)),
                          block_per_model=block)
        with pytest.raises(ValueError, match="order must index"):
            KC.bank_predict(dev.lay, dev.buf, groups, starts, beyond, X, np.zeros((1, 2)), block_per_model=block)
    with pytest.raises(ValueError, match="out must have shape"):
        KC.bank_forecast(dev.lay, dev.buf, groups, starts, np.array([0]), X, np.zeros((1, 3, 1)))
    after = dev.take(np.arange(3))
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[1], before[1])


def block_kernel_matches_cpu(rng, dtype="float64", threads=None, poison_weight=False, predict=False, **config):
    """Batches through the CPU's ``bank_learn`` and the block-per-model CUDA
    kernel from the same buffers: outputs, counters and model state agree;
    with ``predict``, so do the predictions of both ``bank_predict``."""
    from streamrnn.kernels import cuda as KC
    from streamrnn.kernels import recurrent as K

    cpu, _ = pair(dtype, **config)
    targets = (lambda Y: np.eye(2)[(Y[:, 0] > 0).astype(int)]) if config.get("loss") == "cross_entropy" else None
    warm = make_batches(rng, n_batches=1, poison=False)[0]
    keys = list(KEYS) + warm[0][3:]  # every key registered before the copies
    cpu.learn_many(keys, warm[1], targets(warm[2]) if targets else warm[2])
    buf, ctr = whole(cpu).copy(), cpu._ctr.copy()
    lay = cpu._lay
    if poison_weight:  # model 1's recurrent weight: its state goes non-finite and is reset
        buf[1, lay[L.L_PARAMS0 + 1]] = np.nan
    dev = KC.DeviceBuffers(lay, buf, ctr)
    for keys, X, Y in make_batches(rng, poison=not targets):
        Y = targets(Y) if targets else Y
        groups, starts, order = cpu._groups(cpu._slots(keys))
        out_cpu, out_gpu = np.full((len(keys), 2), -1.0, dtype), np.full((len(keys), 2), -1.0, dtype)
        K.bank_learn(lay, ctr, buf, groups, starts, order, X.astype(dtype), Y.astype(dtype), out_cpu)
        KC.bank_learn(dev.lay, dev.ctr, dev.buf, groups, starts, order, X.astype(dtype), Y.astype(dtype), out_gpu,
                      block_per_model=True, threads=threads)
        np.testing.assert_array_equal(np.isnan(out_gpu), np.isnan(out_cpu))
        np.testing.assert_allclose(out_gpu, out_cpu, **tolerance(dtype))
    b, c = dev.take(np.arange(len(cpu.keys)))
    np.testing.assert_array_equal(c, ctr[: len(cpu.keys)])
    persist = lay[L.L_PERSIST]
    np.testing.assert_allclose(b[:, :persist], buf[: len(cpu.keys), :persist], **tolerance(dtype))
    if predict:  # several rows per model, a non-finite row; the state is not changed
        X = rng.normal(size=(5, 2)).astype(dtype)
        X[3, 1] = np.nan
        groups, starts, order = cpu._groups(np.array([0, 2, 0, 1, 0]))
        p_cpu, p_gpu = np.empty((5, 2), dtype), np.empty((5, 2), dtype)
        K.bank_predict(lay, buf, groups, starts, order, X, p_cpu)
        KC.bank_predict(dev.lay, dev.buf, groups, starts, order, X, p_gpu, block_per_model=True, threads=threads)
        assert np.isnan(p_gpu[3]).all()
        np.testing.assert_allclose(p_gpu, p_cpu, **tolerance(dtype))
        np.testing.assert_array_equal(dev.take(np.arange(len(cpu.keys)))[0][:, :persist], b[:, :persist])
    return ctr[: len(cpu.keys)]


@needs_cuda
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_the_block_per_model_kernel_equals_the_cpu_bank(cell, dtype, rng):
    ctr = block_kernel_matches_cpu(rng, dtype, predict=True, cell=cell)
    assert ctr[:, L.C_UPDATES].sum() > 0 and ctr[:, L.C_SKIPPED].sum() >= 2  # learned; met the non-finite rows


@needs_cuda
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("config", [
    dict(threads=2, predict=True),  # fewer threads than units: every loop strides
    dict(threads=32, cell="gru"),  # more threads than work
    dict(optimizer="sgd", momentum=0.5, weight_decay=0.01, clip_norm=None),
    dict(optimizer="rmsprop", weight_decay=0.001, clip_norm=0.05),
    dict(optimizer="adamw", loss="huber", huber_delta=0.3),
    dict(loss="cross_entropy", clip_norm=0.1),
    dict(k1=3, k2=2, cell="rnn", approx_activations=True, recompute=True),
    dict(poison_weight=True),
], ids=["2-threads", "32-threads", "sgd", "rmsprop", "adamw-huber", "cross-entropy", "k1>k2-approx",
        "non-finite-state"])
def test_the_block_per_model_kernel_with_every_optimizer_loss_and_schedule(config, rng):
    config = {"cell": "lstm", **config}
    ctr = block_kernel_matches_cpu(rng, **config)
    if config.get("poison_weight"):
        assert ctr[1, L.C_RESETS] > 0


#: Unclipped SGD at lr = 1e300 in float64: the steps of a model fed values of
#: about 1e10 overflow (its gradients stay finite), those of a model fed
#: values of about 0.01 do not. Float64, because the simulator computes
#: float32 expressions partly in float64.
OVERFLOWING = dict(BASE, dtype="float64", optimizer="sgd", lr=1e300, clip_norm=None, cell="gru")


def overflowing_batches(rng, n_batches=3, rows=8):
    out = []
    for _ in range(n_batches):
        keys = ["big", "calm"] * (rows // 2)
        scale = np.where(np.array(keys)[:, None] == "big", 1e10, 0.01)
        out.append((keys, scale * rng.normal(size=(rows, 2)), scale * rng.normal(size=(rows, 2))))
    return out


@needs_cuda
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_the_cuda_bank_rolls_back_overflowing_updates_as_the_cpu(rng):
    cpu = ModelBank(seed=3, capacity=2, **OVERFLOWING)
    gpu = ModelBank(seed=3, capacity=2, device="cuda", **OVERFLOWING)
    run_and_compare(cpu, gpu, overflowing_batches(rng), "float64")  # counters equal, overflows among them
    assert gpu.model("big").n_overflows > 0 and gpu.model("calm").n_overflows == 0
    assert gpu.model("calm").n_updates > 0
    assert np.isfinite(gpu.model("big")._buf[: gpu._lay[L.L_STATE]]).all()  # its parameters and moments


@needs_cuda
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_the_block_per_model_kernel_rolls_back_overflowing_updates_as_the_cpu(rng):
    from streamrnn.kernels import cuda as KC
    from streamrnn.kernels import recurrent as K

    cpu = ModelBank(seed=3, capacity=2, **{**OVERFLOWING, "cell": "lstm"})
    cpu._slots(["big", "calm"])
    buf, ctr, lay = whole(cpu), cpu._ctr.copy(), cpu._lay
    dev = KC.DeviceBuffers(lay, buf, ctr)
    for keys, X, Y in overflowing_batches(rng):
        groups, starts, order = cpu._groups(cpu._slots(keys))
        out_cpu, out_gpu = np.empty((len(keys), 2)), np.empty((len(keys), 2))
        K.bank_learn(lay, ctr, buf, groups, starts, order, X, Y, out_cpu)
        KC.bank_learn(dev.lay, dev.ctr, dev.buf, groups, starts, order, X, Y, out_gpu, block_per_model=True,
                      threads=4)
        np.testing.assert_allclose(out_gpu, out_cpu, **tolerance("float64"))
    b, c = dev.take(np.arange(2))
    np.testing.assert_array_equal(c, ctr[:2])
    assert c[0, L.C_OVERFLOWS] > 0 and c[1, L.C_OVERFLOWS] == 0 and c[1, L.C_UPDATES] > 0
    assert np.isfinite(b[:, : lay[L.L_STATE]]).all()  # parameters and moments
    persist = lay[L.L_PERSIST]
    np.testing.assert_allclose(b[:, :persist], buf[:2, :persist], **tolerance("float64"))


@needs_cuda
def test_the_block_per_model_kernel_refuses_what_it_does_not_run(rng):
    from streamrnn.kernels import cuda as KC

    for config, message in ((dict(num_layers=2), "one-layer"), (dict(k1=1, k2=3, recompute=True), "stored windows")):
        cpu, _ = pair("float64", **config)
        dev = KC.DeviceBuffers(cpu._lay, whole(cpu), cpu._ctr)
        one = np.zeros(1, dtype=np.int64)
        with pytest.raises(ValueError, match=message):
            KC.bank_learn(dev.lay, dev.ctr, dev.buf, one, np.array([0, 1]), one, np.zeros((1, 2)), np.zeros((1, 2)),
                          np.zeros((1, 2)), block_per_model=True)
        if message == "one-layer":  # predictions need no window: only the layers count
            with pytest.raises(ValueError, match=message):
                KC.bank_predict(dev.lay, dev.buf, one, np.array([0, 1]), one, np.zeros((1, 2)), np.zeros((1, 2)),
                                block_per_model=True)
    cpu, _ = pair("float32", hidden_size=64)  # W_h alone is 64 KB: over what a block is granted
    dev = KC.DeviceBuffers(cpu._lay, whole(cpu), cpu._ctr)
    with pytest.raises(ValueError, match="shared memory"):
        KC.bank_predict(dev.lay, dev.buf, one, np.array([0, 1]), one, np.zeros((1, 2), np.float32),
                        np.zeros((1, 2), np.float32), block_per_model=True)


def test_a_single_model_on_cuda_says_to_use_a_bank():
    with pytest.raises(ValueError, match=r"ModelBank\(device='cuda'\)"):
        OnlineRNN(device="cuda")
    with pytest.raises(ValueError, match="device must be one of"):
        ModelBank(device="tpu", **BASE)


def test_a_missing_numba_cuda_gives_an_actionable_error(monkeypatch):
    from streamrnn.kernels import cuda as KC

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "numba_cuda" else real(name, *a))
    with pytest.raises(RuntimeError, match=r'pip install "streamrnn\[cuda\]"'):
        ModelBank(device="cuda", **BASE)
    with pytest.raises(RuntimeError, match="numba-cuda"):
        KC.bank_predict(None, None, None, None, None, None, None)


def test_importing_streamrnn_does_not_import_numba_cuda():
    code = "import sys, streamrnn, streamrnn.kernels.cuda; print('numba.cuda' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


_PTX_SCRIPT = textwrap.dedent(r"""
    import json, sys, types
    from numba import config
    assert not config.ENABLE_CUDASIM
    from numba import cuda
    import numba.cuda.dispatcher as dispatcher

    # device functions ask the current device for its compute capability:
    # there is none here, so say 9.0 (the PTX is not run)
    dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=(9, 0))

    def probe(a):
        a[0] = 1.0

    try:
        cuda.compile_ptx(probe, "void(float32[::1])", cc=(9, 0))
    except Exception as e:  # the toolchain (NVVM, NVRTC) is missing
        print(json.dumps({"skip": f"{type(e).__name__}: {e}"}))
        sys.exit(0)

    # the activations keep a NaN a NaN: no max.f32 / min.f32, which return the
    # other operand (a NaN state would look finite and never be reset)
    import re
    from streamrnn.kernels._math import act_sigmoid, act_tanh

    def activations(a):
        i = cuda.grid(1)
        if i < a.shape[0]:
            a[i] = act_tanh(a[i], True) + act_sigmoid(a[i], True)

    ptx, _ = cuda.compile_ptx(activations, "void(float32[::1])", cc=(9, 0))
    nan_dropping = [line.strip() for line in ptx.splitlines() if re.match(r"\s*(max|min)\.f32", line)]

    from streamrnn.kernels.cuda import recurrent as R

    R.build()
    signatures = {
        "bank_learn_kernel": "void(int64[::1], int64[:, ::1], {f}[:, ::1], int64[::1], int64[::1], int64[::1], "
                             "{f}[:, ::1], {f}[:, ::1], {f}[:, ::1])",
        "bank_predict_kernel": "void(int64[::1], {f}[:, ::1], int64[::1], int64[::1], int64[::1], {f}[:, ::1], "
                               "{f}[:, ::1])",
        "bank_forecast_kernel": "void(int64[::1], {f}[:, ::1], int64[::1], int64[::1], int64[::1], {f}[:, ::1], "
                                "{f}[:, :, ::1])",
        "copy_columns_kernel": "void({f}[:, ::1], {f}[:, ::1])",
        "put_columns_kernel": "void({f}[:, ::1], int64[::1], {f}[:, ::1])",
        "take_columns_kernel": "void({f}[:, ::1], int64[::1], {f}[:, ::1])",
    }
    assert set(signatures) == set(R.KERNELS)
    result = {}
    for name, sig in signatures.items():
        for f in sys.argv[1:]:
            ptx, _ = cuda.compile_ptx(R.python_function(name), sig.format(f=f), cc=(9, 0))
            result[f"{name}:{f}"] = [line.strip() for line in ptx.splitlines() if ".f64" in line][:5]
        if name.startswith(("copy", "put", "take")):  # they also move the int64 counters
            cuda.compile_ptx(R.python_function(name), sig.format(f="int64"), cc=(9, 0))
    import numpy as np
    from numba import from_dtype
    from streamrnn.kernels.cuda import cooperative as C

    for f in sys.argv[1:]:
        C.build(f)  # binds its device functions
        kernels = {
            "bank_learn": C.make_learn_kernel(from_dtype(np.dtype(f)), from_dtype(np.dtype(np.int64))),
            "bank_predict": C.make_predict_kernel(from_dtype(np.dtype(f))),
        }
        for name, kernel in kernels.items():
            ptx, _ = cuda.compile_ptx(kernel, signatures[f"{name}_kernel"].format(f=f), cc=(9, 0))
            result[f"{name}_block_kernel:{f}"] = [line.strip() for line in ptx.splitlines() if ".f64" in line][:5]
    print(json.dumps({"kernels": result, "nan_dropping": nan_dropping}))
""")


def test_every_kernel_compiles_to_ptx_for_sm90_without_float64_in_float32():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    if importlib.util.find_spec("numba_cuda") is None:
        pytest.skip('numba-cuda is not installed (pip install "streamrnn[cuda]")')
    dtypes = ["float32"] + (["float64"] if os.environ.get("STREAMRNN_PTX_FLOAT64") else [])
    result = subprocess.run([sys.executable, "-c", _PTX_SCRIPT, *dtypes], capture_output=True, text=True, env=env,
                            timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    if "skip" in report:
        pytest.skip("cuda.compile_ptx needs NVVM and NVRTC (pip install nvidia-cuda-nvrtc nvidia-nvvm, or "
                    f"numba-cuda[cu13]): {report['skip'][:300]}")
    assert report["nan_dropping"] == [], "the float32 activations would turn a NaN into a number on a GPU"
    report = report["kernels"]
    assert len(report) == 8 * len(dtypes)
    for name, lines in report.items():
        if name.endswith(":float32"):
            assert lines == [], f"{name} has float64 instructions: {lines}"
