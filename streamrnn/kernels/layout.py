"""Slots of the integer arrays shared by Python and the kernels.

A model lives in three arrays:

``lay`` (int64, read-only)
    Sizes, codes and offsets into ``buf``; the ``L_*`` constants index it.
``ctr`` (int64)
    Counters and the TBPTT schedule position; the ``C_*`` constants index it.
``buf`` (float32 or float64)
    One flat buffer holding parameters, optimizer moments, the carried
    hidden state, the compact TBPTT window and the hyperparameters (indexed
    by ``HP_*`` from ``lay[L_HP]``), then, from ``lay[L_PERSIST]``, scratch
    space (gradient, the window expanded into full rows, a row for single
    steps), which every kernel writes before it reads and which is therefore
    not model state.

The window keeps per step only what cannot be recomputed cheaply: the input,
the target, the prediction and each layer's gate activations (and, for the
GRU, ``W_hn h + b_hn``), in *compact rows* (``L_C_*`` offsets, stride
``lay[L_CROW]``), plus the state before its oldest step (``lay[L_WSTATE]``).
The cell and hidden states of the window's steps are rebuilt from these with
the forward pass's own operations, into *full rows* (``L_R_*`` offsets,
stride ``lay[L_ROW]``) in scratch, so every result is the same as if they
had been stored.

Plain Python integers, so Numba folds them into constants.
"""

CELL_RNN, CELL_GRU, CELL_LSTM = 0, 1, 2
CELL_CODES = {"rnn": CELL_RNN, "gru": CELL_GRU, "lstm": CELL_LSTM}
GATES = {"rnn": 1, "gru": 3, "lstm": 4}

LOSS_SQUARED, LOSS_HUBER, LOSS_CROSS_ENTROPY = 0, 1, 2
LOSS_CODES = {"squared": LOSS_SQUARED, "huber": LOSS_HUBER, "cross_entropy": LOSS_CROSS_ENTROPY}

OPT_SGD, OPT_RMSPROP, OPT_ADAM, OPT_ADAMW = 0, 1, 2, 3
OPT_CODES = {"sgd": OPT_SGD, "rmsprop": OPT_RMSPROP, "adam": OPT_ADAM, "adamw": OPT_ADAMW}

# --- lay: sizes and flags
L_CELL = 0
L_LAYERS = 1
L_INPUT = 2
L_HIDDEN = 3
L_OUTPUT = 4
L_GATES = 5
L_K1 = 6
L_K2 = 7
L_LOSS = 8
L_OPT = 9
L_APPROX = 10
L_RECOMPUTE = 11
# --- lay: regions of buf (offsets), each padded
L_NPARAM = 12  # parameters occupy buf[0:lay[L_NPARAM]]
L_GRAD = 13
L_M = 14
L_V = 15
L_STATE = 16  # carried state: per layer h then c, each lay[L_HSTRIDE] long
L_CACHE = 17  # TBPTT ring buffer: k2 compact rows of lay[L_CROW] values
L_RCACHE = 18  # k2 full rows where the window is expanded (or recomputed with the current weights)
L_PRED = 19  # one full row for single forward steps (learn, predict)
L_PSTATE = 20  # state scratch for pure forward steps and recomputation
L_HP = 21  # hyperparameters
L_ROW = 22  # stride between rows
L_ROW_LAYER = 23  # stride between the layer blocks of a row
L_HSTRIDE = 24  # padded hidden size
# --- lay: offsets inside a layer block of a row
L_R_XIN = 25  # layer input
L_R_HP = 26  # previous hidden state
L_R_CP = 27  # previous cell state (LSTM)
L_R_ACT = 28  # gate activations, G*H
L_R_AUX = 29  # LSTM tanh(c); GRU W_hn h + b_hn
L_R_HN = 30  # new hidden state
L_R_CN = 31  # new cell state (LSTM)
# --- lay: offsets inside a row, after the layer blocks
L_R_Y = 32  # target
L_R_YHAT = 33  # prediction
# --- lay: scratch offsets
L_S_AX = 34  # input-side pre-activations, G*H
L_S_AH = 35  # hidden-side pre-activations, G*H
L_PERSIST = 36  # buf[:lay[L_PERSIST]] is model state; the rest is scratch
L_WSTATE = 37  # state before the window's oldest step: per layer h then c, each lay[L_HSTRIDE] long
L_S_DIN = 38  # gradient arriving from above, max(I, H)
L_S_GH = 39  # gradient with respect to a layer's new hidden state
L_S_DH = 40  # recurrent gradient of h, per layer
L_S_DC = 41  # recurrent gradient of c, per layer
L_HEAD_W = 42
L_HEAD_B = 43
L_BUF = 44  # total length of buf
L_R_DAX = 45  # row, per layer: gradient of the input-side pre-activations, G*H
L_R_DAH = 46  # row, per layer: gradient of the hidden-side pre-activations, G*H
L_CROW = 47  # stride between compact rows of the window
L_CROW_LAYER = 48  # stride between the layer blocks of a compact row
# --- lay: offsets inside a compact row (the layer blocks after the input and target)
L_C_X = 49  # input
L_C_Y = 50  # target
L_C_ACT = 51  # layer block: gate activations, G*H
L_C_AUX = 52  # layer block: GRU W_hn h + b_hn (H; LSTM and RNN: none)
L_C_LAYER0 = 53  # offset of the first layer block
L_C_YHAT = 54  # prediction (made with the weights of its step: a shared model's may have changed since)
L_PARAMS0 = 56  # layer l: lay[L_PARAMS0 + 4*l + (0: W_x, 1: W_h, 2: b_x, 3: b_h)]

# --- hyperparameters, at buf[lay[L_HP] + HP_*]
HP_LR = 0
HP_MOMENTUM = 1
HP_BETA1 = 2
HP_BETA2 = 3
HP_EPS = 4
HP_WEIGHT_DECAY = 5
HP_CLIP = 6
HP_HUBER_DELTA = 7
HP_ALPHA = 8
N_HP = 9

# --- ctr
C_STEPS = 0  # samples learned from
C_UPDATES = 1  # weight updates applied
C_SKIPPED = 2  # updates or steps skipped by the non-finite policy
C_RESETS = 3  # hidden-state resets after it went non-finite
C_POS = 4  # next ring-buffer row
C_FILL = 5  # rows in the window
C_SINCE = 6  # steps since the last update attempt
C_OVERFLOWS = 7  # updates rolled back: they would have written a non-finite parameter or moment
N_CTR = 8

#: ``lay`` slots holding the offsets of scratch regions (at or past
#: ``lay[L_PERSIST]``): the only ones a bank moves to give each thread its own
#: scratch (the kernels reach scratch through these alone).
SCRATCH_SLOTS = (L_GRAD, L_RCACHE, L_PRED, L_PSTATE, L_S_AX, L_S_AH, L_S_DIN, L_S_GH, L_S_DH, L_S_DC)
