"""What warm starts and object checkpoints need to know about tf.distribute strategies."""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator, Optional

import tensorflow as tf


def strategy_of(target: Any) -> Optional[tf.distribute.Strategy]:
    """The strategy in scope, else the Keras model's own, else None."""
    if tf.distribute.has_strategy():
        return tf.distribute.get_strategy()
    strategy = getattr(target, "distribute_strategy", None)
    return strategy if isinstance(strategy, tf.distribute.Strategy) else None


@contextlib.contextmanager
def scope_of(target: Any) -> Iterator[None]:
    """Enters the model's strategy scope unless one is active, so shim weights are created in it."""
    strategy = None if tf.distribute.has_strategy() else strategy_of(target)
    if strategy is None:
        yield
    else:
        with strategy.scope():
            yield


def is_multi_worker(strategy: Optional[tf.distribute.Strategy]) -> bool:
    in_multi_worker_mode = getattr(getattr(strategy, "extended", None), "_in_multi_worker_mode", None)
    return bool(in_multi_worker_mode and in_multi_worker_mode())


def failures_across_workers(strategy: tf.distribute.Strategy, failed: bool) -> int:
    """How many replicas (across all workers) report a failure; a collective every worker joins."""
    flag = tf.constant(1.0 if failed else 0.0)

    @tf.function
    def count():
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, flag)

    result = strategy.experimental_local_results(strategy.run(count))[0]
    return int(round(float(result.numpy())))


def is_chief(strategy: Optional[tf.distribute.Strategy]) -> bool:
    if not is_multi_worker(strategy):
        return True
    return bool(strategy.extended.should_checkpoint)


def worker_directory(directory: str, strategy: Optional[tf.distribute.Strategy]) -> str:
    """Where this worker writes: the real directory on the chief, a temporary one elsewhere
    (as Keras' ModelCheckpoint does: every worker must take part in saving)."""
    if is_chief(strategy):
        return directory
    task_id = getattr(strategy.cluster_resolver, "task_id", 0)
    return os.path.join(directory, "workertemp_%s" % task_id)
