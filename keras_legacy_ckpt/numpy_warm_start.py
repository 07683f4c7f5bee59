"""The warm start without TensorFlow: Keras 3 models on the JAX, torch or numpy backend.

```python
import os
os.environ["KERAS_BACKEND"] = "jax"
import keras
import keras_legacy_ckpt as klc

model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(6, name="hidden"),
                          keras.layers.Dense(3, name="logits")], name="net")
report = klc.warm_start(model, "/old/model.ckpt-1000")   # TF1 keys net/hidden/kernel, ...
model.fit(x, y, callbacks=[klc.WarmStartFromTF1("/old/model.ckpt-1000")])   # or at on_train_begin
```

`klc.warm_start` is `warm_start` here: a dispatcher that imports no TensorFlow. A Keras 3 layer or
model whose backend (`keras.backend.backend()`) is not "tensorflow" is warm-started by
`warm_start_numpy`, which reads the checkpoint with `tf1_checkpoint.open_checkpoint` (numpy,
crc32c-checked) and assigns numpy arrays with `variable.assign`; TensorFlow need not be installed.
Everything else (tf_keras models, `tf.Module`s, Keras 3 on the TensorFlow backend) goes to
`keras_legacy_ckpt.warm_start.warm_start`, which needs TensorFlow.

The numpy route keeps the TensorFlow route's semantics: variables are named by `variable.path`;
the assignment map is planned by `assignment_map.plan_assignment_map` (init_from_checkpoint's
semantics, rules, callables); every shape and dtype is checked, and every byte to be assigned is
read and crc32c-checked, before the first variable is assigned, so a failure leaves every variable
as it was; it returns a `WarmStartReport`.

Options on the numpy route:

* supported: `assignment_map`, `sample_input`, `strict`, `ignore`, `on_shape_mismatch`,
  `on_dtype_mismatch` ("cast": float -> float and int -> wider int or -> float64, refusing values
  that would overflow to inf; "unsafe_cast": any numeric pair, as numpy's astype casts),
  `use_ema`, `ema_fallback`, `ema_name`, `transpose`, `reshape`, `batch_bytes`.
* not supported yet (LegacyCheckpointError, nothing assigned): `optimizer_state` (migrating TF1
  Adam/Momentum slots), `vocab_remap` and `mod_partitioned`. Warm-start the weights here and let
  the optimizer start fresh, or run the model on Keras 3's TensorFlow backend
  (KERAS_BACKEND=tensorflow), where `klc.warm_start` supports them.
"""

from __future__ import annotations

import collections
import importlib
import dataclasses
import inspect
import math
import os
import sys
import warnings
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import ml_dtypes
import numpy as np

from keras_legacy_ckpt import resume
from keras_legacy_ckpt.assignment_map import (Match, NameMapping, SuggestedMap, compile_patterns, plan_assignment_map,
                                              suggest_map)
from keras_legacy_ckpt.errors import (AssignmentMapError, CorruptCheckpointError, DTypeMismatchError,
                                      DuplicateVariableNameError, LegacyCheckpointError, MissingVariablesError)
from keras_legacy_ckpt.tf1_checkpoint import TF1Checkpoint, open_checkpoint
from keras_legacy_ckpt.progress import Progress, ProgressBar
from keras_legacy_ckpt.warm_start_plan import (WARM_START_OPTIONS, check_options, check_rules_match,
                                               dtype_mismatch_error, input_of_first_batch, missing_message,
                                               moving_averages, nothing_loaded_message, part_layout, resolved_shape,
                                               shape_mismatch_error, transform_for, unique_by_identity)
from keras_legacy_ckpt.warm_start_report import WarmStartReport

__all__ = ["WARM_START_OPTIONS", "check_options", "uses_numpy_route", "warm_start", "warm_start_numpy"]

DEFAULT_BATCH_BYTES = 64 * 1024 * 1024  # checkpoint_reader.DEFAULT_BATCH_BYTES
_AVAILABLE = False  # check_available found TensorFlow or Keras
# Options the numpy route does not support yet: what each does, and what to do instead.
_UNSUPPORTED = {
    "optimizer_state": ("migrating the TF1 optimizer's slots", "warm-start the weights alone (the optimizer then "
                        "starts fresh)"),
    "vocab_remap": ("remapping vocabulary rows", "remap the rows once with the TensorFlow backend and save the "
                    "weights, or warm-start the other variables (ignore=[...] the remapped one)"),
    "mod_partitioned": ("reordering 'mod'-partitioned embedding rows", "reorder the rows once with the TensorFlow "
                        "backend and save the weights"),
}


# --- the dispatcher -----------------------------------------------------------------------------------

def _keras3() -> Any:
    keras = sys.modules.get("keras")  # a Keras 3 target means Keras is imported already
    if keras is None or not str(getattr(keras, "__version__", "")).startswith("3"):
        return None
    return keras


def _backend_of(target: Any) -> Optional[str]:
    """The Keras 3 backend of a Keras 3 layer/model, None for anything else."""
    keras = _keras3()
    if keras is None or not isinstance(target, keras.layers.Layer):
        return None
    return keras.backend.backend()


def uses_numpy_route(target: Any) -> bool:
    """Whether `target` is a Keras 3 layer/model on a backend other than TensorFlow."""
    backend = _backend_of(target)
    return backend is not None and backend != "tensorflow"


def warm_start(target: Any, checkpoint: "str | os.PathLike[str]", assignment_map: NameMapping = None,
               **options: Any) -> WarmStartReport:
    """Loads a TF1 name-based checkpoint into `target`'s variables, all or nothing.

    A Keras 3 layer or model on the JAX, torch or numpy backend is warm-started without
    TensorFlow (`warm_start_numpy`; see this module's docstring for its options); anything else by
    `keras_legacy_ckpt.warm_start.warm_start`, with the same arguments, which documents every option.

    ```python
    report = klc.warm_start(model, "/ckpts/model.ckpt-1000", {"/": "backbone/"}, sample_input=x[:1])
    print(report.summary())
    ```

    Returns:
        A `WarmStartReport`.
    """
    if uses_numpy_route(target):
        return warm_start_numpy(target, checkpoint, assignment_map, **options)
    return _tensorflow_route(target, "warm_start", "Warm-starting")(target, checkpoint, assignment_map, **options)


def suggest_assignment_map(target: Any, checkpoint: "str | os.PathLike[str]", *,
                           sample_input: Any = None) -> SuggestedMap:
    """Proposes the assignment map that loads `checkpoint` into `target`, and what it leaves out.

    ```python
    suggestion = klc.suggest_assignment_map(model, "/old/model.ckpt-1000")
    suggestion.assignment_map   # e.g. {"/": "backbone/"}
    suggestion.unmatched        # model variables that would get nothing
    ```

    Keras 3 models on the JAX, torch or numpy backend without TensorFlow, as `warm_start`.
    """
    if not uses_numpy_route(target):
        return _tensorflow_route(target, "suggest_assignment_map", "Suggesting a map for")(
            target, checkpoint, sample_input=sample_input)
    with open_checkpoint(checkpoint) as ckpt:
        _warm_up(target, sample_input)
        model = {name: tuple(int(d) for d in v.shape) for name, v in _variables_by_name(target).items()}
        return suggest_map(model, {key: ckpt.shape(key) for key in ckpt.keys()})


def _tensorflow_route(target: Any, name: str, doing: str) -> Callable[..., Any]:
    """keras_legacy_ckpt.warm_start's function `name`, or a clear error when TensorFlow cannot be imported."""
    try:
        module = importlib.import_module("keras_legacy_ckpt.warm_start")
    except ImportError as e:
        raise LegacyCheckpointError(
            "%s a %s needs TensorFlow, which cannot be imported here (%s). Without TensorFlow, klc.warm_start and "
            "klc.suggest_assignment_map take Keras 3 models on the JAX, torch or numpy backend only (set "
            "KERAS_BACKEND=jax before importing keras); tf_keras models, tf.Modules and Keras 3 on the TensorFlow "
            "backend need `pip install tensorflow`." % (doing, type(target).__name__, e)) from e
    return getattr(module, name)


def check_available() -> None:
    """Raises ImportError when neither route can run here: no TensorFlow and no Keras (`klc.warm_start`
    is then a name that cannot be used, as when it needed TensorFlow alone)."""
    import importlib.util

    global _AVAILABLE
    if _AVAILABLE:
        return
    problems = []
    for name in ("tensorflow", "keras"):
        try:
            found = importlib.util.find_spec(name) is not None
        except ImportError as e:  # an import hook refusing it
            problems.append(str(e))
            continue
        except ValueError:  # a module already imported without a spec: it is there
            found = True
        if found:
            _AVAILABLE = True
            return
        problems.append("No module named %r" % name)
    raise ImportError("klc.warm_start needs tensorflow, or Keras 3 on the JAX, torch or numpy backend: %s."
                      % "; ".join(problems))


# --- options -------------------------------------------------------------------------------------------

def _unsupported_options(backend: str, optimizer_state: Any, vocab_remap: Any, mod_partitioned: Any) -> None:
    given = [name for name, value in (("optimizer_state", optimizer_state), ("vocab_remap", vocab_remap),
                                      ("mod_partitioned", mod_partitioned))
             if value is not None and value is not False and not (isinstance(value, (tuple, list, dict, str))
                                                                  and not value)]
    if given:
        raise LegacyCheckpointError(
            "%s is not supported on the %s backend yet; nothing was assigned. Instead: %s; or run this model on "
            "Keras 3's TensorFlow backend (KERAS_BACKEND=tensorflow), where klc.warm_start supports it."
            % (", ".join("%s (%s)" % (n, _UNSUPPORTED[n][0]) for n in given), backend,
               "; ".join(_UNSUPPORTED[n][1] for n in given)))


# --- transpose and reshape in numpy ---------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Planned:
    description: str
    shape: Tuple[int, ...]
    apply: Callable[[np.ndarray], np.ndarray]


class _Transforms:
    """transforms.Transforms' transpose and reshape, applied with numpy."""

    def __init__(self, transpose: Mapping[str, Sequence[int]], reshape: Mapping[str, Sequence[int]]):
        self._transpose = [(p, tuple(int(d) for d in perm)) for p, perm in
                           zip(compile_patterns(list(transpose), "transpose"), transpose.values())]
        self._reshape = [(p, tuple(int(d) for d in shape)) for p, shape in
                         zip(compile_patterns(list(reshape), "reshape"), reshape.values())]

    def check_names(self, model_names: Sequence[str]) -> None:
        check_rules_match(self._transpose, "transpose", model_names)
        check_rules_match(self._reshape, "reshape", model_names)

    def plan(self, model_name: str, key: str, shape: Tuple[int, ...]) -> Optional[_Planned]:
        found = transform_for(model_name, (("transpose", self._transpose), ("reshape", self._reshape)))
        if found is None:
            return None
        what, value = found
        if what == "transpose":
            if sorted(value) != list(range(len(shape))):
                raise AssignmentMapError("transpose %r for %r (shape %s) is not a permutation of its %d axes."
                                         % (value, key, shape, len(shape)))
            return _Planned("transpose %s" % (value,), tuple(shape[i] for i in value),
                            lambda array: np.ascontiguousarray(np.transpose(array, value)))
        count = math.prod(shape)
        resolved = resolved_shape(count, value)
        if resolved is None:
            raise AssignmentMapError("Cannot reshape %r of shape %s (%d elements) to %s." % (key, shape, count, value))
        return _Planned("reshape %s" % (resolved,), resolved, lambda array: array.reshape(resolved))


# --- dtypes ------------------------------------------------------------------------------------------------

def _numpy_dtype(dtype: Any) -> np.dtype:
    name = getattr(dtype, "name", dtype)
    try:
        return np.dtype(name)
    except TypeError:
        return np.dtype(getattr(ml_dtypes, str(name)))


def _is_float(dtype: np.dtype) -> bool:
    if dtype.kind == "f":
        return True
    if dtype.kind != "V":
        return False
    try:
        ml_dtypes.finfo(dtype)
        return True
    except (ValueError, TypeError):
        return False


def _is_int(dtype: np.dtype) -> bool:
    if dtype.kind in "iu":
        return True
    if dtype.kind != "V":
        return False
    try:
        ml_dtypes.iinfo(dtype)
        return True
    except (ValueError, TypeError):
        return False


def _is_unsigned(dtype: np.dtype) -> bool:
    return dtype.kind == "u" or dtype.name.startswith("uint")


def _castable(source: np.dtype, target: np.dtype, policy: str) -> bool:
    """warm_start._castable in numpy dtypes."""
    numeric = all(_is_float(d) or _is_int(d) or d.kind in "cb" for d in (source, target))
    if policy == "unsafe_cast":
        return numeric
    if policy != "cast":
        return False
    if _is_float(source) and _is_float(target):
        return True
    if _is_int(source) and target == np.float64:
        return source.itemsize <= 4  # every int32 is exactly a float64; not every int64 is
    if _is_int(source) and _is_int(target):
        if _is_unsigned(source) == _is_unsigned(target):
            return target.itemsize > source.itemsize
        return _is_unsigned(source) and target.itemsize > source.itemsize
    return False


def _mixed_precision_cast(source: np.dtype, target: np.dtype) -> bool:
    """A float tensor into a variable a Keras 3 mixed precision policy made float16 or bfloat16."""
    keras = _keras3()
    if keras is None or not _is_float(source):
        return False
    policy = keras.mixed_precision.global_policy()
    return policy.name.startswith("mixed_") and _numpy_dtype(policy.compute_dtype) == target


def _narrowing(source: np.dtype, target: np.dtype) -> bool:
    """A float -> float cast that can turn finite values into inf."""
    return _is_float(source) and _is_float(target) and float(ml_dtypes.finfo(target).max) < float(
        ml_dtypes.finfo(source).max)


def _cast(value: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if value.dtype == dtype:
        return value
    with warnings.catch_warnings():  # unsafe_cast: complex -> real drops the imaginary part, as tf.cast does
        warnings.simplefilter("ignore")
        return value.astype(dtype)


# --- the numpy route ---------------------------------------------------------------------------------------

@dataclasses.dataclass
class _Request:
    """One variable's value: checkpoint tensor `key`, transformed, then its part `index` (None: all)."""

    variable: Any
    name: str
    key: str
    transform: Optional[Callable[[np.ndarray], np.ndarray]]
    index: Optional[Tuple[slice, ...]]
    dtype: np.dtype
    nbytes: int


def warm_start_numpy(target: Any, checkpoint: "str | os.PathLike[str]", assignment_map: NameMapping = None, *,
                     sample_input: Any = None, strict: bool = True, ignore: Iterable[str] = (),
                     on_shape_mismatch: str = "error", on_dtype_mismatch: str = "error",
                     use_ema: bool = False, ema_fallback: bool = False, optimizer_state: Any = False,
                     mod_partitioned: Iterable[str] = (), ema_name: str = "ExponentialMovingAverage",
                     transpose: Optional[Mapping[str, Sequence[int]]] = None,
                     reshape: Optional[Mapping[str, Sequence[int]]] = None,
                     vocab_remap: Optional[Mapping[str, Any]] = None,
                     batch_bytes: int = DEFAULT_BATCH_BYTES, verbose: int = 1) -> WarmStartReport:
    """`klc.warm_start` for a Keras 3 layer/model on a backend other than TensorFlow, without TensorFlow.

    The arguments are `keras_legacy_ckpt.warm_start.warm_start`'s; `optimizer_state`, `vocab_remap` and
    `mod_partitioned` raise LegacyCheckpointError (not supported here yet). Every mapped tensor is read
    and its crc32c checked before the first assignment: when they fit in `batch_bytes` they are kept
    and assigned as read, else they are read once more, one tensor at a time, to be assigned.
    """
    check_options(assignment_map, ignore=ignore, on_shape_mismatch=on_shape_mismatch,
                  on_dtype_mismatch=on_dtype_mismatch, mod_partitioned=mod_partitioned, transpose=transpose,
                  reshape=reshape, vocab_remap=vocab_remap)
    backend = _backend_of(target)
    if backend is None:
        raise TypeError("warm_start_numpy takes a Keras 3 layer or model, got %s; klc.warm_start takes any "
                        "model." % type(target).__name__)
    _unsupported_options(backend, optimizer_state, vocab_remap, mod_partitioned)
    transforms = _Transforms(transpose or {}, reshape or {})
    with open_checkpoint(checkpoint) as ckpt:
        _warm_up(target, sample_input)
        variables = _variables_by_name(target)
        plan = _plan(target, ckpt, variables, assignment_map, strict=strict, ignore=ignore,
                     on_shape_mismatch=on_shape_mismatch, on_dtype_mismatch=on_dtype_mismatch, use_ema=use_ema,
                     ema_fallback=ema_fallback, ema_suffix="/" + ema_name, transforms=transforms)
        with ProgressBar("warm start: crc32c check", verbose) as check, \
                ProgressBar("warm start: assign", verbose) as assign:
            _read_check_and_assign(ckpt, plan.requests, plan.check_overflow, batch_bytes, check, assign)
        prefix = ckpt.prefix
        keys = ckpt.keys()
    resume.mark_warm_started(target, prefix)
    used = {m.key for m in plan.matches}
    return WarmStartReport(
        checkpoint=prefix,
        loaded={part: m.key for m in plan.matches for part in m.parts if part not in plan.ignored},
        missing=plan.missing,
        unused=[k for k in keys if k not in used],
        ignored=plan.ignored,
        skipped=plan.skipped,
        casts=plan.casts,
        bytes_loaded=sum(r.nbytes for r in plan.requests),
        optimizer_state=None,
        assignment_map=assignment_map,
        ema_name=ema_name if use_ema else None,
        transforms=plan.transformed)


def _model_input(sample_input: Any) -> Any:
    """mixin.model_input for Keras 3: a PyDataset or an iterator gives its first batch, whose x is used."""
    keras = _keras3()
    batches = None
    if keras is not None and isinstance(sample_input, getattr(keras.utils, "PyDataset", ())):
        batches = iter([sample_input[0]])
    elif hasattr(sample_input, "__next__"):
        batches = sample_input
    unpack = keras.utils.unpack_x_y_sample_weight if keras is not None else (lambda batch: (batch,))
    return input_of_first_batch(sample_input, batches, unpack)


def _warm_up(target: Any, sample_input: Any) -> None:
    """Creates the variables of an unbuilt model with one forward pass (training=False); the variables that
    existed before keep their values."""
    existing = unique_by_identity(target.weights)
    if getattr(target, "built", True) and existing:
        return
    if sample_input is None:
        if existing:
            return
        raise MissingVariablesError(
            "%s %r has no variables yet (it is not built), so there is nothing to warm-start. Pass "
            "sample_input=<one batch of input> (e.g. x[:1]) so that one forward pass creates them, or build the "
            "model first (keras.Input(...) as its first layer, model.build(input_shape), or call it once)."
            % (type(target).__name__, getattr(target, "name", "")))
    kwargs = {}
    try:
        if "training" in inspect.signature(target.call).parameters:
            kwargs["training"] = False
    except (TypeError, ValueError):
        pass
    saved = [(v, _to_numpy(v)) for v in existing]
    try:
        target(_model_input(sample_input), **kwargs)
    finally:
        for v, value in saved:
            v.assign(value)


def _to_numpy(variable: Any) -> np.ndarray:
    """A copy of a Keras 3 variable's value, on any backend."""
    keras = _keras3()
    if keras is None:
        return np.array(variable)
    return np.array(keras.ops.convert_to_numpy(getattr(variable, "value", variable)))


def _variables_by_name(target: Any) -> Dict[str, Any]:
    """Legacy name (`variable.path`) -> variable; DuplicateVariableNameError when two share a name."""
    by_name: Dict[str, List[Any]] = collections.defaultdict(list)
    for v in unique_by_identity(target.weights):
        by_name[v.path].append(v)
    clashes = {name: vs for name, vs in by_name.items() if len(vs) > 1}
    if clashes:
        lines = ["  %r is the name of %d variables (shapes %s)"
                 % (name, len(vs), ", ".join(str(tuple(v.shape)) for v in vs)) for name, vs in sorted(clashes.items())]
        raise DuplicateVariableNameError(
            "%s has %d variable path(s) shared by more than one variable, so a TF1 checkpoint cannot tell them "
            "apart:\n%s\nGive the layers distinct names, or warm-start each part on its own (klc.warm_start(tower, "
            "...) for a sub-model or layer whose paths are unique)." % (type(target).__name__, len(clashes),
                                                                       "\n".join(lines)))
    return {name: vs[0] for name, vs in by_name.items()}


@dataclasses.dataclass
class _Plan:
    matches: List[Match]
    missing: List[str]
    requests: List[_Request]
    ignored: List[str]
    skipped: Dict[str, str]
    casts: Dict[str, str]
    transformed: Dict[str, str]
    check_overflow: Dict[str, np.dtype]  # checkpoint key -> narrower float dtype it is cast to


def _plan(target: Any, ckpt: TF1Checkpoint, variables: Dict[str, Any], assignment_map: NameMapping, *,
          strict: bool, ignore: Iterable[str], on_shape_mismatch: str, on_dtype_mismatch: str, use_ema: bool,
          ema_fallback: bool, ema_suffix: str, transforms: _Transforms) -> _Plan:
    """Everything that can fail before a tensor is read (warm_start._plan without TensorFlow)."""
    ignore_patterns = compile_patterns(ignore, "ignore")
    if not variables:
        raise MissingVariablesError("%s has no variables to warm-start. Pass sample_input=<one batch> or build "
                                    "the model first." % type(target).__name__)
    shapes = {key: ckpt.shape(key) for key in ckpt.keys()}
    names_by_variable = {id(v): name for name, v in variables.items()}
    plan = plan_assignment_map(assignment_map, variables, shapes, names_by_variable=names_by_variable)

    def ignored(name: str) -> bool:
        return any(p.search(name) for p in ignore_patterns)

    matches = [m for m in plan.matches.values() if not all(ignored(p) for p in m.parts)]
    missing = [n for n in plan.missing() if not ignored(n)]
    if strict and missing:
        raise MissingVariablesError(missing_message(ckpt.prefix, shapes, missing, plan.not_found, variables))
    if use_ema:
        matches = moving_averages(matches, variables, ckpt.prefix, shapes, ema_fallback, ema_suffix)
    transforms.check_names(list(variables))
    requests, skipped, casts, transformed, overflow = _checked_requests(
        matches, variables, ckpt, shapes, transforms, on_shape_mismatch, on_dtype_mismatch)
    ignored_ids = {id(variables[p]) for m in matches for p in m.parts if ignored(p)}
    requests = [r for r in requests if id(r.variable) not in ignored_ids]
    matches = [m for m in matches if m.parts[0] not in skipped]
    if not requests:
        raise MissingVariablesError(nothing_loaded_message(ckpt.prefix, shapes, assignment_map, variables, skipped,
                                                            sorted(n for n in variables if ignored(n))))
    overflow = {key: dtype for key, dtype in overflow.items() if any(r.key == key for r in requests)}
    return _Plan(matches, missing, requests, sorted(n for n in variables if ignored(n)), skipped, casts,
                 transformed, overflow)


def _checked_requests(matches: List[Match], variables: Dict[str, Any], ckpt: TF1Checkpoint,
                      shapes: Dict[str, Tuple[int, ...]], transforms: _Transforms, on_shape_mismatch: str,
                      on_dtype_mismatch: str):
    requests: List[_Request] = []
    shape_errors, dtype_errors = [], []
    skipped: Dict[str, str] = {}
    casts: Dict[str, str] = {}
    transformed: Dict[str, str] = {}
    overflow: Dict[str, np.dtype] = {}
    for match in sorted(matches, key=lambda m: m.model_name):
        shape, dtype = shapes[match.key], ckpt.dtype(match.key)
        parts = [variables[p] for p in match.parts]
        part_shapes = [tuple(int(d) for d in v.shape) for v in parts]
        planned = transforms.plan(match.model_name, match.key, shape)
        tensor_shape = planned.shape if planned else shape
        indices = _part_indices(tensor_shape, part_shapes)
        if indices is None:
            problem = "%s %s <- %r %s%s" % (match.model_name, " + ".join(str(s) for s in part_shapes), match.key,
                                             shape, " after %s: %s" % (planned.description, tensor_shape)
                                             if planned else "")
            if on_shape_mismatch == "skip":
                skipped.update({p: "shape %s" % problem for p in match.parts})
            else:
                shape_errors.append("  " + problem)
            continue
        for part_name, v in zip(match.parts, parts):
            have = _numpy_dtype(v.dtype)
            if have == dtype:
                continue
            saved_name = ckpt.dtype_name(match.key)
            problem = "%s (%s) <- %r (%s)" % (part_name, have.name, match.key, saved_name)
            if _castable(dtype, have, on_dtype_mismatch) or _mixed_precision_cast(dtype, have):
                casts[part_name] = "%s -> %s" % (saved_name, have.name)
                if on_dtype_mismatch != "unsafe_cast" and _narrowing(dtype, have):
                    overflow[match.key] = have  # checked on the values, before anything is assigned
            else:
                dtype_errors.append("  " + problem + (" is not value-preserving" if on_dtype_mismatch == "cast"
                                                       else ""))
        if planned is not None:
            transformed[match.model_name] = planned.description
        full_bytes = math.prod(shape) * dtype.itemsize
        for part_name, v, part_shape, index in zip(match.parts, parts, part_shapes, indices):
            nbytes = full_bytes if planned is not None or index is None else math.prod(part_shape) * dtype.itemsize
            requests.append(_Request(v, part_name, match.key, planned.apply if planned else None, index,
                                     _numpy_dtype(v.dtype), nbytes))
    if shape_errors:
        raise shape_mismatch_error(shape_errors)
    if dtype_errors:
        raise dtype_mismatch_error(dtype_errors, "numpy's astype")
    return requests, skipped, casts, transformed, overflow


def _part_indices(full: Tuple[int, ...], shapes: List[Tuple[int, ...]]) -> Optional[List[Optional[Tuple[slice, ...]]]]:
    """The numpy index of each part in the tensor (None: the whole tensor), or None if they cannot tile it."""
    layout = part_layout(full, shapes)
    if layout is None:
        return None
    if len(shapes) == 1:
        return [None]
    axis, starts = layout
    return [tuple(slice(start, start + s[axis]) if i == axis else slice(None) for i in range(len(full)))
            for s, start in zip(shapes, starts)]


def _read_check_and_assign(ckpt: TF1Checkpoint, requests: List[_Request], overflow: Dict[str, np.dtype],
                           batch_bytes: int, check_progress: Optional[Progress] = None,
                           assign_progress: Optional[Progress] = None) -> None:
    """Reads (crc32c-checked) every tensor to be assigned, then assigns: all or nothing.

    When the tensors fit in `batch_bytes` they are read once and kept; else a first pass reads
    and checks each one and lets it go, and a second reads each again to assign it (a file that
    changed in between fails with CorruptCheckpointError saying how many variables were assigned).
    """
    by_key: Dict[str, List[_Request]] = collections.defaultdict(list)
    for r in requests:
        by_key[r.key].append(r)
    sizes = {key: math.prod(ckpt.shape(key)) * ckpt.dtype(key).itemsize for key in by_key}
    total = sum(sizes.values())
    report = check_progress or (lambda done, total: None)
    if total <= batch_bytes:
        values, done = {}, 0
        for key in by_key:
            values[key] = ckpt.read(key)
            _check_overflow(ckpt, key, values[key], overflow)
            done += sizes[key]
            report(done, total)
        assignments = [(r.variable, _value_of(r, values[r.key])) for r in requests]
        del values
        for variable, value in assignments:
            variable.assign(value)
        return
    done = 0
    for key in by_key:  # the crc32c pass: every byte checked before the first assignment
        _check_overflow(ckpt, key, ckpt.read(key), overflow)
        done += sizes[key]
        report(done, total)
    report = assign_progress or (lambda done, total: None)
    assigned, done = 0, 0
    for key, group in by_key.items():
        try:
            value = ckpt.read(key)
        except CorruptCheckpointError as e:
            if assigned:
                raise CorruptCheckpointError(
                    "%s Checkpoint %s changed while it was being read: %d variable(s) were already assigned. Run "
                    "the warm start again." % (e, ckpt.prefix, assigned)) from None
            raise
        for r in group:
            r.variable.assign(_value_of(r, value))
            assigned += 1
        del value
        done += sizes[key]
        report(done, total)


def _value_of(request: _Request, value: np.ndarray) -> np.ndarray:
    value = _cast(value, request.dtype)
    if request.transform is not None:
        value = request.transform(value)
    if request.index is not None:
        value = value[request.index]
    return np.ascontiguousarray(value)


def _check_overflow(ckpt: TF1Checkpoint, key: str, value: np.ndarray, overflow: Dict[str, np.dtype]) -> None:
    target = overflow.get(key)
    if target is None:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bad = np.isfinite(value) & ~np.isfinite(value.astype(target))
    if np.any(bad):
        raise DTypeMismatchError(
            "1 variable(s) do not have the dtype of the checkpoint tensor mapped to them (model <- checkpoint):\n"
            "  %r (%s) -> %s: values beyond %s's range would become inf\nNothing was assigned. Create the "
            "variables with the checkpoint's dtype, pass on_dtype_mismatch=\"unsafe_cast\" to cast anyway, or "
            "ignore=[...]." % (key, ckpt.dtype_name(key), target.name, target.name))
