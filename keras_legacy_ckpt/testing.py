"""Numerical equivalence of a migrated model and its TF1 original, in one call.

The migration guide's "Validating numerical equivalence" step: run the TF1 graph code with
its checkpoint restored and the warm-started TF2 model on the same inputs, and compare.

```python
from keras_legacy_ckpt import testing

klc.warm_start(model, ckpt, {"/": "backbone/"})
result = testing.compare_with_tf1(tf1_network, ckpt, model, x)
print(result.summary())          # max abs / rel difference per output
assert result.max_abs <= 1e-6
```
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, List

import numpy as np
import tensorflow as tf

from keras_legacy_ckpt import _compat
from keras_legacy_ckpt.checkpoint_reader import resolve_checkpoint

v1 = tf.compat.v1


@dataclasses.dataclass
class OutputDifference:
    index: int
    shape: tuple
    max_abs: float
    max_rel: float


@dataclasses.dataclass
class EquivalenceReport:
    """Per-output differences between the TF1 program and the TF2 model."""

    outputs: List[OutputDifference]

    @property
    def max_abs(self) -> float:
        return max((o.max_abs for o in self.outputs), default=0.0)

    @property
    def max_rel(self) -> float:
        return max((o.max_rel for o in self.outputs), default=0.0)

    def summary(self) -> str:
        lines = ["TF1 vs TF2 on the same inputs:"]
        lines += ["  output %d %s: max |diff| %.3g, max relative diff %.3g" % (o.index, o.shape, o.max_abs, o.max_rel)
                  for o in self.outputs]
        return "\n".join(lines)


def run_tf1(tf1_fn: Callable[..., Any], checkpoint: str, *inputs: np.ndarray) -> List[np.ndarray]:
    """Runs `tf1_fn(*placeholders)` in a TF1 graph with every checkpointed variable restored."""
    prefix = resolve_checkpoint(checkpoint)
    keys = set(tf.train.load_checkpoint(prefix).get_variable_to_shape_map())
    with tf.Graph().as_default():
        placeholders = [v1.placeholder(tf.as_dtype(np.asarray(x).dtype), [None] + list(np.shape(x))[1:])
                        for x in inputs]
        outputs = tf.nest.flatten(tf1_fn(*placeholders))
        restorable = [v for v in v1.global_variables() if v.op.name in keys]
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            v1.train.Saver(restorable).restore(sess, prefix)
            return sess.run(outputs, dict(zip(placeholders, inputs)))


def compare_with_tf1(tf1_fn: Callable[..., Any], checkpoint: str, model: Any, *inputs: np.ndarray) -> EquivalenceReport:
    """Runs the TF1 function (checkpoint restored) and `model` on `inputs`; compares every output.

    Args:
        tf1_fn: builds the TF1 graph from one placeholder per input and returns its output(s);
            it is called in inference mode, as the TF1 program would be for evaluation.
        checkpoint: the TF1 checkpoint (prefix or directory).
        model: the warm-started TF2 model (called with training=False when it accepts it).
        *inputs: numpy arrays, one per model input.
    """
    expected = run_tf1(tf1_fn, checkpoint, *inputs)
    kwargs = {"training": False} if _compat.accepts_training(_compat.call_function(model)) else {}
    actual = [np.asarray(t) for t in tf.nest.flatten(model(*inputs, **kwargs))]
    if len(actual) != len(expected):
        raise ValueError("The TF1 function returns %d outputs and the model %d." % (len(expected), len(actual)))
    differences = []
    for i, (a, e) in enumerate(zip(actual, expected)):
        if a.shape != e.shape:
            raise ValueError("Output %d has shape %s in TF2 and %s in TF1." % (i, a.shape, e.shape))
        diff = np.abs(a.astype(np.float64) - e.astype(np.float64))
        scale = np.maximum(np.abs(e.astype(np.float64)), np.finfo(np.float32).tiny)
        differences.append(OutputDifference(i, e.shape, float(diff.max(initial=0.0)),
                                            float((diff / scale).max(initial=0.0))))
    return EquivalenceReport(differences)
