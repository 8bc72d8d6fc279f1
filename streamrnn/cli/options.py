"""The command line's fixed choices and limits (no import of the models:
the parser, ``--help`` and ``--version`` start at once)."""

CELLS = ("lstm", "gru", "rnn")
# Default alarm level of ``detect``: an alarm at a tail probability of 1e-3
# (an alarm scores 0.5 + (-log10(Q) / 30) / 2; streamrnn.anomaly.THRESHOLD,
# written out so that the parser imports no model).
DEFAULT_THRESHOLD = 0.55
#: The options that configure a new model, with their defaults (the parser
#: leaves them None, so that one given with ``--load`` can be told apart).
MODEL_OPTIONS = {"model": "--model", "hidden_size": "--hidden-size", "seed": "--seed"}
MODEL_DEFAULTS = {"model": "lstm", "seed": 0}
#: The largest ``--hidden-size``: a model of N hidden units takes about
#: 100 * N**2 bytes (its weights, their gradients and optimizer state;
#: 1.6 GiB at 4096, a numpy MemoryError of 596 GiB at 100,000).
MAX_HIDDEN_SIZE = 4096
#: The longest ``--horizon`` (each row writes that many columns per target).
MAX_HORIZON = 10_000
