"""``--shards N``: the keyed models of ``detect`` and ``forecast`` spread
over Ray actors by key group (a local Ray cluster, or the one at
``--ray-address``), giving the output of one process with ``--seed-by-key``
row by row."""

from __future__ import annotations

import argparse
import importlib.util
import logging

from .rows import CommandError

#: Rows learned between the copies of every model the driver keeps to
#: recover a shard from (its log of rows to replay stays bounded).
MAX_LOG = 10_000
_OPEN: list = []  # the sharded models of this process's runs, closed by close_all()


def key_seeded(model, args: argparse.Namespace):
    """The command's keyed model after the options that choose how keys are
    seeded and where the models run: with ``--seed-by-key`` (or
    ``--shards``) a new model seeds each key from ``--seed`` and the key;
    with ``--shards`` the models are spread over that many Ray actors."""
    shards = getattr(args, "shards", None)
    if getattr(args, "ray_address", None) is not None and shards is None:
        raise CommandError("--ray-address needs --shards (the models it spreads over the cluster)", status=2)
    from ..keyed import KeyedDetector, KeyedForecaster

    if not isinstance(model, KeyedForecaster | KeyedDetector):
        for flag, given in (("--shards", shards is not None), ("--seed-by-key", getattr(args, "seed_by_key", False))):
            if given:
                raise CommandError(f"{flag} applies to models per key: not to --global", status=2)
        return model
    if args.load:
        if getattr(args, "seed_by_key", False):
            raise CommandError("--seed-by-key configures a new model: a loaded model keeps how it seeds keys",
                               status=2)
    elif getattr(args, "seed_by_key", False) or shards is not None:
        model.seed_by_key = True  # (a wrapper without models yet: as if made so)
    if shards is None:
        return model
    return spread(model, args)


def spread(model, args: argparse.Namespace):
    """The keyed wrapper ``model`` over ``--shards`` Ray actors."""
    from ..keyed import KeyedForecaster

    if not args.key:
        raise CommandError("--shards needs --key (it spreads the keys' models over the shards)", status=2)
    if not model.seed_by_key or model.seed is None:
        raise CommandError(f"--shards needs key-seeded models: {args.load} was saved without --seed-by-key or "
                           "--shards", status=2)
    if importlib.util.find_spec("ray") is None:
        raise CommandError('--shards runs on Ray, which is not installed: pip install "streamrnn[ray]"', status=2)
    import ray

    from ..distributed import ShardedKeyedDetector, ShardedKeyedForecaster, start_ray

    if not ray.is_initialized():
        options = {} if args.ray_address else {"include_dashboard": False}
        try:
            start_ray(args.ray_address, logging_level=logging.ERROR, log_to_driver=False, **options)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise CommandError(f"--ray-address: cannot join the Ray cluster at {args.ray_address}: {error}",
                               status=2) from None
    cls = ShardedKeyedForecaster if isinstance(model, KeyedForecaster) else ShardedKeyedDetector
    try:
        sharded = cls.from_keyed(model, n_shards=args.shards, n_groups=max(256, args.shards))
    except ValueError as error:
        raise CommandError(f"--shards: {error}", status=2) from None
    sharded.max_log = MAX_LOG
    _OPEN.append(sharded)
    return sharded


def close_all() -> None:
    """End the shard actors of this process's runs."""
    while _OPEN:
        _OPEN.pop().close()
