"""Migrating TF1 optimizer slots into a Keras optimizer, so training resumes where TF1 left it.

Supported pairs (tf_keras and Keras 3 optimizers alike):

* `tf.compat.v1.train.AdamOptimizer` -> `Adam`: `X/Adam` -> first moment, `X/Adam_1` -> second
  moment; `iterations` = t, the number of TF1 Adam steps. TF1 keeps beta1^(t+1) in `beta1_power`
  (and beta2^(t+1) in `beta2_power`), multiplying by beta each step in float32, so 0.9^t reaches 0
  after ~830 steps and 0.999^t after ~87,000. t is therefore `global_step` when the checkpoint has
  one that agrees with both powers (minimize(global_step=...) counts Adam's steps), else it is read
  from the powers that have not underflowed; when neither tells t, it is an error. The Keras
  optimizer's beta_1/beta_2 are checked against the powers (as long as they have not underflowed);
  epsilon and the learning rate are not in a TF1 checkpoint: set them as in TF1 (TF1's default
  epsilon is 1e-8, Keras' 1e-7).
* `tf.compat.v1.train.MomentumOptimizer` -> `SGD(momentum=...)`: TF1 accumulates
  `accum = momentum * accum + grad` and steps `-lr * accum`; Keras keeps `m = -lr * accum`, so
  the slot is scaled by the optimizer's (constant) learning rate. `iterations` = `global_step`.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import sys
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from keras_legacy_ckpt.errors import LegacyCheckpointError, MissingVariablesError
from keras_legacy_ckpt.warm_start_report import is_training_state


_KINDS = {"Adam": (("Adam", "_momentums"), ("Adam_1", "_velocities")), "SGD": (("Momentum", "momentums"),)}


@dataclasses.dataclass
class OptimizerStatePlan:
    """Slot variables to fill (slot variable, checkpoint key, scale) and the step to set."""

    kind: str
    slots: List[Tuple[Any, Any, Any]]
    iterations: int
    optimizer: Any
    step_source: str = ""  # where `iterations` comes from, e.g. "from global_step"

    def summary(self) -> str:
        source = " (%s)" % self.step_source if self.step_source else ""
        return "%s state of %d slot variables, iterations = %d%s" % (self.kind, len(self.slots), self.iterations,
                                                                      source)


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


def _checkpoint_key(ckpt: Any, suffix: str) -> Optional[str]:
    """The one key named `suffix` or ending in "/`suffix`", None if there is none."""
    keys = [k for k in ckpt.tensors if k == suffix or k.endswith("/" + suffix)]
    if len(keys) > 1:
        raise LegacyCheckpointError("Checkpoint %s has several %s tensors (%s); cannot tell which optimizer's "
                                    "state to migrate." % (ckpt.prefix, suffix, ", ".join(keys)))
    return keys[0] if keys else None


def _read_scalar(ckpt: Any, key: str) -> np.generic:
    return ckpt.read([_request(key, ckpt)])[0].numpy()


def _global_step(ckpt: Any) -> Optional[int]:
    key = _checkpoint_key(ckpt, "global_step")
    return None if key is None else int(_read_scalar(ckpt, key))


def _request(key: str, ckpt: Any):
    from keras_legacy_ckpt.checkpoint_reader import ReadRequest

    return ReadRequest(key, "", ckpt.tensors[key].nbytes)


def _hyper(optimizer: Any, name: str) -> float:
    value = getattr(optimizer, name)
    return float(value.numpy()) if hasattr(value, "numpy") else float(value)


# Beyond this many steps (16 MB of float32 powers; ~4 million steps, which only betas above
# 0.99998 leave above 0) a power is computed in float64, within the rounding tolerance.
_MAX_SIMULATED_STEPS = 1 << 22


def _tf1_powers(beta: float, dtype: Any, count: int) -> np.ndarray:
    """What a TF1 Adam beta power holds after 0, 1, ..., count - 1 steps, cut where it becomes 0.

    TF1 starts at beta and multiplies by beta after each step, rounding each product to `dtype`;
    np.multiply.accumulate does exactly that, one element after the other. TensorFlow flushes
    results below the smallest normal number to 0 (numpy keeps them as denormals), and so do we.
    """
    tiny = np.finfo(dtype).tiny
    if beta <= 0:
        count = min(count, 1)
    else:  # beyond this many steps the power is 0 (1% more than exact: rounding may delay it a little)
        count = min(count, int(math.log(tiny) / math.log(beta) * 1.01) + 2)
    powers = np.multiply.accumulate(np.full(min(count, _MAX_SIMULATED_STEPS), beta, dtype=dtype))
    powers[powers < tiny] = 0
    return powers


@dataclasses.dataclass(frozen=True)
class _BetaPower:
    """TF1 Adam's `beta1_power` or `beta2_power` as stored, and the Keras beta it should be a power of."""

    key: str  # the checkpoint key
    hyperparameter: str  # the Keras name of the beta: "beta_1" or "beta_2"
    beta: float  # as TF1 keeps it: rounded to `dtype`
    stored: float
    dtype: Any  # float32 in TF1

    @property
    def informative(self) -> bool:
        """False once it underflowed: 0, or a denormal where flush-to-zero was off (it then stops moving)."""
        return self.stored >= np.finfo(self.dtype).tiny

    def tf1_value_after(self, steps: int) -> float:
        powers = _tf1_powers(self.beta, self.dtype, steps + 1)
        if steps < len(powers):
            return float(powers[steps])
        if len(powers) < _MAX_SIMULATED_STEPS:  # it underflowed before
            return 0.0
        value = self.beta ** (steps + 1)
        return value if value >= np.finfo(self.dtype).tiny else 0.0

    def agrees_with(self, steps: int) -> bool:
        """Whether TF1 with this beta would hold this value after `steps` steps.

        Equal on CPUs. The tolerance admits other rounding (each of the steps + 1 products is off by at
        most half an ulp), yet still tells betas apart that differ in float32: a relative difference d
        in beta is (steps + 1) * d in its power. An underflowed power agrees with any t past underflow.
        """
        tiny = float(np.finfo(self.dtype).tiny)
        tolerance = (steps + 1) * float(np.finfo(self.dtype).eps)
        stored = self.stored if self.informative else 0.0
        expected = self.tf1_value_after(steps)
        if stored == 0 or expected == 0:
            return max(stored, expected) <= tiny * (1 + tolerance)
        return abs(stored - expected) <= tolerance * expected

    def steps(self) -> Optional[int]:
        """The step count whose TF1 value is closest to the stored one; None once it underflowed."""
        if not self.informative:
            return None
        powers = _tf1_powers(self.beta, self.dtype, sys.maxsize)
        if len(powers) == _MAX_SIMULATED_STEPS and self.stored < powers[-1]:
            return round(math.log(self.stored) / math.log(self.beta)) - 1
        return int(np.argmin(np.abs(powers - np.asarray(self.stored, self.dtype))))


def _beta_powers(optimizer: Any, ckpt: Any) -> List[_BetaPower]:
    powers = []
    for name, hyperparameter in (("beta1_power", "beta_1"), ("beta2_power", "beta_2")):
        beta = _hyper(optimizer, hyperparameter)
        if not 0 <= beta < 1:
            raise LegacyCheckpointError("Adam's %s must be in [0, 1) to migrate TF1 Adam state from %s; got %g."
                                        % (hyperparameter, ckpt.prefix, beta))
        key = _checkpoint_key(ckpt, name)
        if key is None:
            if name == "beta1_power":
                raise MissingVariablesError(
                    "Checkpoint %s has no beta1_power: it was not written by a TF1 AdamOptimizer, so its Adam "
                    "state cannot be migrated. Leave optimizer_state off to load the weights only." % ckpt.prefix)
            continue
        dtype = ckpt.tensors[key].dtype.as_numpy_dtype
        # TF1 keeps its beta as a `dtype` constant: compare powers of that, not of the Python float.
        powers.append(_BetaPower(key, hyperparameter, float(dtype(beta)), float(_read_scalar(ckpt, key)), dtype))
    return powers


def _adam_steps(optimizer: Any, ckpt: Any) -> Tuple[int, str]:
    """The number of TF1 Adam steps t, and where it was read from; checks the betas on the way.

    global_step is t when Adam's minimize() incremented it, which the beta powers confirm. Otherwise
    (no global_step, or one Adam did not count) the powers that have not underflowed tell t: beta1's
    first, as it resolves t best. A global_step that disagrees is overruled only when it is 0 (never
    incremented) or both powers tell the same t: with one power alone, wrong betas are as likely.
    """
    powers = _beta_powers(optimizer, ckpt)
    global_step = _global_step(ckpt)
    if global_step is not None and all(p.agrees_with(global_step) for p in powers):
        return global_step, "from global_step"
    informative = sorted((p for p in powers if p.informative), key=lambda p: p.beta)
    inferred = informative[0].steps() if informative else None
    consistent = inferred is not None and all(p.agrees_with(inferred) for p in powers)
    if global_step is None:
        if inferred is None:
            raise _unknown_steps_error(ckpt, powers)
        if not consistent:
            raise _beta_mismatch_error(ckpt, powers, inferred, "read from " + informative[0].key)
        return inferred, "from " + informative[0].key
    if consistent and (global_step == 0 or len(informative) == len(powers)):
        return inferred, "from %s; global_step = %d did not count Adam's steps" % (informative[0].key, global_step)
    raise _beta_mismatch_error(ckpt, powers, global_step, "its global_step",
                               _global_step_hint(ckpt, powers_fit_another_t=consistent, underflowed=inferred is None))


def _global_step_hint(ckpt: Any, powers_fit_another_t: bool, underflowed: bool) -> str:
    """What to do when the betas are right and global_step is what is wrong."""
    if powers_fit_another_t:
        return ("If they do match, global_step does not count this optimizer's steps (TF1's minimize() was not given "
                "it): drop it (keras-legacy-ckpt rename %s NEW --exclude '^global_step$') so that the step is read "
                "from the beta powers." % ckpt.prefix)
    if underflowed:  # any t past underflow fits the powers
        return ("If they do match, global_step does not count this optimizer's steps, and the underflowed powers "
                "cannot tell them: leave optimizer_state off to load the weights only.")
    return ""


def _beta_mismatch_error(ckpt: Any, powers: List[_BetaPower], steps: int, source: str,
                         hint: str = "") -> LegacyCheckpointError:
    wrong = [p for p in powers if not p.agrees_with(steps)]
    betas = ", ".join("%s=%g" % (p.hyperparameter, p.beta) for p in powers)
    details = "; ".join("%s = %g, not %s^%d = %g" % (p.key, p.stored, p.hyperparameter, steps + 1,
                                                     p.tf1_value_after(steps)) for p in wrong)
    return LegacyCheckpointError(
        "The Keras optimizer's betas (%s) do not match checkpoint %s after t = %d TF1 Adam steps (%s): %s. Create "
        "the Keras Adam with the TF1 optimizer's beta1/beta2.%s" % (betas, ckpt.prefix, steps, source, details,
                                                                    " " + hint if hint else ""))


def _unknown_steps_error(ckpt: Any, powers: List[_BetaPower]) -> LegacyCheckpointError:
    stored = " and ".join("%s = %g" % (p.key, p.stored) for p in powers)
    return LegacyCheckpointError(
        "Cannot tell how many steps TF1's AdamOptimizer took from checkpoint %s: it has no global_step, and %s "
        "have underflowed (TF1 multiplies them by beta in float32 each step: 0.9^t reaches 0 after ~830 steps, "
        "0.999^t after ~87,000), so Keras Adam's iterations (its bias correction) would be a guess. Re-save the "
        "checkpoint with an int64 global_step holding the step count (in TF1, train with "
        "minimize(loss, global_step=tf.compat.v1.train.get_or_create_global_step())), or leave optimizer_state off "
        "to load the weights only." % (ckpt.prefix, stored))


def plan_optimizer_state(optimizer: Any, weight_requests: List[Tuple[Any, Any, Any]],
                         names: Dict[int, str], trainable: List[Any], ckpt: Any) -> OptimizerStatePlan:
    """Works out every slot assignment; raises before anything is assigned if one is missing.

    `weight_requests` are the (variable, ReadRequest, transform) of the weights being loaded; each
    trainable one gets its slots from "<its checkpoint key>/<slot>", sliced the same way.
    """
    from keras_legacy_ckpt.checkpoint_reader import ReadRequest

    # A LossScaleOptimizer (mixed precision) keeps the slots and step in the optimizer it wraps.
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
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
            "optimizer_state: %d optimizer slot(s) are not in checkpoint %s:\n%s\nNothing was assigned. %s Leave "
            "optimizer_state off to load the weights only."
            % (len(missing), ckpt.prefix, "\n".join(missing[:20]), _slots_found(ckpt, kind)))
    if kind == "Adam":
        iterations, source = _adam_steps(optimizer, ckpt)
    else:  # Keras' SGD uses iterations only for learning rate schedules
        global_step = _global_step(ckpt)
        iterations, source = (global_step, "from global_step") if global_step is not None else (0, "no global_step")
    return OptimizerStatePlan(kind, slots, iterations, optimizer, source)


def _slots_found(ckpt: Any, kind: str) -> str:
    """What optimizer the checkpoint's slots do come from, for the error message."""
    expected = "AdamOptimizer" if kind == "Adam" else "MomentumOptimizer"
    suffixes = collections.Counter(k.rsplit("/", 1)[1] for k in ckpt.tensors if is_training_state(k) and "/" in k)
    if not suffixes:
        return "The checkpoint holds no optimizer slots: was the TF1 model trained with tf.compat.v1.train.%s?" % expected
    found = ", ".join("/%s" % s for s, _ in suffixes.most_common(4))
    bert = " (BERT's AdamWeightDecay, which this migration does not support)" if "adam_m" in suffixes else ""
    return ("The checkpoint's slots are %s%s: this optimizer needs tf.compat.v1.train.%s's."
            % (found, bert, expected))


def _then(transform: Any, scale: Optional[float]):
    """`transform` (or nothing), then multiplication by `scale` (or nothing)."""
    if scale is None:
        return transform
    if transform is None:
        return lambda value: value * tf.cast(scale, value.dtype)
    return lambda value: transform(value) * tf.cast(scale, value.dtype)
