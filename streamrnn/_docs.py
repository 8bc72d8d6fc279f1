"""The Parameters sections of the public estimators' docstrings, written
once: each class's section lists its own ``__init__`` parameters (types and
defaults from the signature), described by the nearest docstring in its
class hierarchy that documents them, else by :data:`SHARED`."""

from __future__ import annotations

import inspect
import re
import textwrap

#: Descriptions of the parameters the estimators share with
#: :class:`~streamrnn.OnlineRNN` (see its docstring for the full story).
SHARED = {
    "cell": '``"lstm"``, ``"gru"`` or ``"rnn"`` (tanh Elman).',
    "hidden_size": "Hidden units per layer.",
    "num_layers": "Stacked recurrent layers.",
    "k1": "Samples between weight updates (truncated backpropagation through time, TBPTT(k1, k2)).",
    "k2": "Steps backpropagated through at each update (the window length).",
    "optimizer": '``"sgd"``, ``"rmsprop"``, ``"adam"`` or ``"adamw"``, with PyTorch\'s update formulas.',
    "lr": "Learning rate.",
    "clip_norm": "Gradients are rescaled to this global norm when larger; None disables clipping.",
    "loss": '``"squared"`` or ``"huber"``.',
    "dtype": '``"float32"`` (fast) or ``"float64"`` (reference).',
    "device": '``"cpu"``: a single model\'s steps are a sequential chain that a GPU runs no faster '
              '(:class:`~streamrnn.ModelBank` with ``device="cuda"`` runs many models at once).',
    "seed": "Seed of the parameter initialisation; the same seed gives bit-identical results "
            "(None: a random one).",
    "scale_target": "Standardise the target online (predictions are unscaled back).",
    "revealed_targets": "How many of the last targets learned are inputs of the next step (for classifiers, "
                        "one-hots; 0: none); see the class description for their exact semantics.",
    "model_change": '``"auto"``, ``"change"`` or ``"level"``: learn the target\'s change over the last one '
                    "revealed, its level, or both and forecast with whichever (or no change) erred less.",
    "key": "Name of the feature whose value is the row's entity: each entity carries its own hidden state, "
           "window and revealed targets, the weights shared (None: one state for the stream).",
    "max_idle": "With ``key``: an entity not learned in the last ``max_idle`` rows is forgotten "
                "(None: none is).",
}

_SECTION = re.compile(r"^(\s*)Parameters\n\1-+\n(.*?)(?=\n\s*\n\1[A-Z][A-Za-z ]*\n\1-+\n|\Z)", re.M | re.S)


def documented(doc: str | None, groups: bool = False) -> dict[str, str]:
    """The descriptions of a numpy-style Parameters section, by name; with
    ``groups``, those of the entries naming several (``a, b``) instead.

    >>> doc = '''Summary.
    ...
    ...     Parameters
    ...     ----------
    ...     lr, k1
    ...         Learning things.
    ...     window : int
    ...         Points.
    ... '''
    >>> documented(doc), documented(doc, groups=True)
    ({'window': 'Points.'}, {'lr': 'Learning things.', 'k1': 'Learning things.'})
    """
    found: dict[str, str] = {}
    if not doc:
        return found
    match = _SECTION.search(inspect.cleandoc(doc))
    if not match:
        return found
    entries = re.split(r"\n(?=\S)", match.group(2).strip("\n"))
    for entry in entries:
        head, _, body = entry.partition("\n")
        text = " ".join(body.split())
        names = [name.strip() for name in head.split(":")[0].split(",") if name.strip()]
        if text and (len(names) > 1) == groups:
            found.update(dict.fromkeys(names, text))
    return found


def parameters_section(cls: type) -> str:
    """The Parameters section of ``cls``: each ``__init__`` parameter with
    its type and default, and its description."""
    docs = [klass.__dict__.get("__doc__") for klass in reversed(cls.__mro__)]
    descriptions = {}  # a group's description ("those of OnlineRNN") only where nothing says more
    for doc in docs:
        descriptions.update(documented(doc, groups=True))
    descriptions.update(SHARED)
    for doc in docs:
        descriptions.update(documented(doc))
    lines = ["Parameters", "----------"]
    for name, p in list(inspect.signature(cls.__init__).parameters.items())[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        kind = p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", "")
        default = "" if p.default is p.empty else f", default {p.default!r}"
        lines.append(f"{name} : {kind}{default}".replace(" : ,", " :"))
        text = descriptions.get(name, "See the class description.")
        lines.extend(textwrap.wrap(text, 80, initial_indent="    ", subsequent_indent="    "))
    return "\n".join(lines)


def document(cls: type) -> type:
    """Give ``cls`` a docstring of its own with its Parameters section (in
    place of one it has), before its Notes or Examples."""
    doc = inspect.cleandoc(cls.__doc__ or cls.__name__)
    doc = re.sub(r"\n{3,}", "\n\n", _SECTION.sub("", doc)).rstrip() + "\n"
    section = parameters_section(cls)
    where = re.search(r"^(Notes|Examples)\n-+\n", doc, re.M)
    if where:
        doc = doc[: where.start()] + section + "\n\n" + doc[where.start():]
    else:
        doc = doc + "\n" + section + "\n"
    cls.__doc__ = doc
    return cls
