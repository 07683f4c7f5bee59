"""Migrating TF1 optimizer slots into a Keras optimizer, so training resumes where TF1 left it.

Supported pairs (tf_keras and Keras 3 optimizers alike):

* `tf.compat.v1.train.AdamOptimizer` -> `Adam`: `X/Adam` -> first moment, `X/Adam_1` -> second
  moment; `iterations` = the number of TF1 Adam steps, read from `beta1_power` (TF1 keeps
  beta1^(t+1) there). The Keras optimizer's beta_1/beta_2 are checked against
  `beta1_power`/`beta2_power`; epsilon and the learning rate are not in a TF1 checkpoint: set
  them as in TF1 (TF1's default epsilon is 1e-8, Keras' 1e-7).
* `tf.compat.v1.train.MomentumOptimizer` -> `SGD(momentum=...)`: TF1 accumulates
  `accum = momentum * accum + grad` and steps `-lr * accum`; Keras keeps `m = -lr * accum`, so
  the slot is scaled by the optimizer's (constant) learning rate. `iterations` = `global_step`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, List, Optional, Tuple

import tensorflow as tf

from keras_legacy_ckpt.errors import LegacyCheckpointError, MissingVariablesError

_KINDS = {"Adam": (("Adam", "_momentums"), ("Adam_1", "_velocities")), "SGD": (("Momentum", "momentums"),)}


@dataclasses.dataclass
class OptimizerStatePlan:
    """Slot variables to fill (slot variable, checkpoint key, scale) and the step to set."""

    kind: str
    slots: List[Tuple[Any, Any, Any]]
    iterations: int
    optimizer: Any

    def summary(self) -> str:
        return "%s state of %d slot variables, iterations = %d" % (self.kind, len(self.slots), self.iterations)


def _kind(optimizer: Any) -> str:
    name = type(optimizer).__name__
    if name not in _KINDS or not hasattr(optimizer, "_var_key"):
        raise LegacyCheckpointError(
            "optimizer_state supports tf_keras and Keras 3 Adam and SGD(momentum > 0) optimizers; got %s.%s. "
            "Leave optimizer_state off to load the weights only." % (type(optimizer).__module__, name))
    if name == "SGD" and not float(getattr(optimizer, "momentum", 0.0)):
        raise LegacyCheckpointError("optimizer_state with SGD needs momentum > 0 (TF1 MomentumOptimizer's "
                                    "slots have nowhere to go otherwise).")
    return name


def _slot_variable(optimizer: Any, attribute: str, variable: Any) -> Any:
    if hasattr(optimizer, "_get_variable_index"):  # Keras 3
        index = optimizer._get_variable_index(variable)
    else:  # tf_keras
        index = optimizer._index_dict[optimizer._var_key(variable)]
    return getattr(optimizer, attribute)[index]


def _ensure_built(optimizer: Any, trainable: List[Any]) -> None:
    built = getattr(optimizer, "built", None)
    if built is None:
        built = getattr(optimizer, "_built", False)
    if not built:
        optimizer.build(trainable)


def _scalar(ckpt: Any, suffix: str) -> Optional[Tuple[str, float]]:
    keys = [k for k in ckpt.tensors if k == suffix or k.endswith("/" + suffix)]
    if len(keys) > 1:
        raise LegacyCheckpointError("Checkpoint %s has several %s tensors (%s); cannot tell which optimizer's "
                                    "state to migrate." % (ckpt.prefix, suffix, ", ".join(keys)))
    if not keys:
        return None
    value = ckpt.read([_request(keys[0], ckpt)])[0].numpy()
    return keys[0], float(value)


def _request(key: str, ckpt: Any):
    from keras_legacy_ckpt.checkpoint_reader import ReadRequest

    return ReadRequest(key, "", ckpt.tensors[key].nbytes)


def _hyper(optimizer: Any, name: str) -> float:
    value = getattr(optimizer, name)
    return float(value.numpy()) if hasattr(value, "numpy") else float(value)


def _adam_iterations(optimizer: Any, ckpt: Any) -> int:
    beta1 = _scalar(ckpt, "beta1_power")
    if beta1 is None:
        raise MissingVariablesError("Checkpoint %s has no beta1_power: it was not written by a TF1 AdamOptimizer, "
                                    "so its Adam state cannot be migrated." % ckpt.prefix)
    b1 = _hyper(optimizer, "beta_1")
    steps = int(round(math.log(beta1[1]) / math.log(b1))) - 1
    beta2 = _scalar(ckpt, "beta2_power")
    b2 = _hyper(optimizer, "beta_2")
    for (key, stored), beta in ((beta1, b1), (beta2, b2)):
        if stored is not None and not math.isclose(stored, beta ** (steps + 1), rel_tol=1e-4):
            raise LegacyCheckpointError(
                "The Keras optimizer's betas (beta_1=%g, beta_2=%g) do not match checkpoint %s: %s = %g is not "
                "beta^%d. Create the Keras Adam with the TF1 optimizer's beta1/beta2." % (
                    b1, b2, ckpt.prefix, key, stored, steps + 1))
    return steps


def plan_optimizer_state(optimizer: Any, weight_requests: List[Tuple[Any, Any, Any]],
                         names: Dict[int, str], trainable: List[Any], ckpt: Any) -> OptimizerStatePlan:
    """Works out every slot assignment; raises before anything is assigned if one is missing.

    `weight_requests` are the (variable, ReadRequest, transform) of the weights being loaded; each
    trainable one gets its slots from "<its checkpoint key>/<slot>", sliced the same way.
    """
    from keras_legacy_ckpt.checkpoint_reader import ReadRequest

    kind = _kind(optimizer)
    _ensure_built(optimizer, trainable)
    trainable_ids = {id(v) for v in trainable}
    scale = None
    if kind == "SGD":
        learning_rate = optimizer.learning_rate
        if callable(learning_rate) and not hasattr(learning_rate, "numpy"):
            raise LegacyCheckpointError("Migrating TF1 Momentum slots needs a constant learning rate (Keras keeps "
                                        "lr * accumulator); got the schedule %r." % learning_rate)
        scale = -_hyper(optimizer, "learning_rate")
    slots, missing = [], []
    for variable, request, transform in weight_requests:
        if id(variable) not in trainable_ids:
            continue
        for suffix, attribute in _KINDS[kind]:
            slot_key = request.key + "/" + suffix
            info = ckpt.tensors.get(slot_key)
            if info is None or info.shape != ckpt.tensors[request.key].shape:
                missing.append("  %s <- %r" % (names.get(id(variable), variable.name), slot_key))
                continue
            # A slot takes the same row reordering (mod_partitioned) as its weight.
            slots.append((_slot_variable(optimizer, attribute, variable),
                          ReadRequest(slot_key, request.slice_spec, request.nbytes), _then(transform, scale)))
    if missing:
        raise MissingVariablesError(
            "optimizer_state: %d optimizer slot(s) are not in checkpoint %s:\n%s\nNothing was assigned. Was the TF1 "
            "model trained with tf.compat.v1.train.%s? Leave optimizer_state off to load the weights only."
            % (len(missing), ckpt.prefix, "\n".join(missing[:20]),
               "AdamOptimizer" if kind == "Adam" else "MomentumOptimizer"))
    if kind == "Adam":
        iterations = _adam_iterations(optimizer, ckpt)
    else:
        step = _scalar(ckpt, "global_step")
        iterations = int(step[1]) if step else 0
    return OptimizerStatePlan(kind, slots, iterations, optimizer)


def _then(transform: Any, scale: Optional[float]):
    """`transform` (or nothing), then multiplication by `scale` (or nothing)."""
    if scale is None:
        return transform
    if transform is None:
        return lambda value: value * tf.cast(scale, value.dtype)
    return lambda value: transform(value) * tf.cast(scale, value.dtype)
