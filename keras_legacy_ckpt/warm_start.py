"""`warm_start`: load a TF1 name-based checkpoint into a TF2 model, all or nothing."""

from __future__ import annotations

import dataclasses
import math
import os
import re
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from keras_legacy_ckpt import _compat, distribute, resume
from keras_legacy_ckpt import optimizer_state as optimizer_slots
from keras_legacy_ckpt.warm_start_report import WarmStartReport
from keras_legacy_ckpt.assignment_map import Match, NameMapping, SuggestedMap, compile_patterns, plan_assignment_map, suggest_map
from keras_legacy_ckpt.checkpoint_reader import (DEFAULT_BATCH_BYTES, CheckpointFile, ReadRequest, batches,
                                                 slice_spec)
from keras_legacy_ckpt.errors import AssignmentMapError, CorruptCheckpointError, LegacyCheckpointError, MissingVariablesError
from keras_legacy_ckpt.mixin import default_legacy_name, legacy_variables_of, warm_up_target
from keras_legacy_ckpt.progress import Progress, ProgressBar
from keras_legacy_ckpt.warm_start_plan import (check_options, dtype_mismatch_error, missing_message, moving_averages,
                                               nothing_loaded_message, part_layout, shape_mismatch_error)
from keras_legacy_ckpt.transforms import Transforms, VocabInfo

_STEP_TENSOR = re.compile(r"(^|/)(beta1_power|beta2_power|global_step)$")
Transform = Callable[[tf.Tensor], tf.Tensor]


def warm_start(target: Any, checkpoint: "str | os.PathLike[str]", assignment_map: NameMapping = None, *,
               sample_input: Any = None, strict: bool = True, ignore: Iterable[str] = (),
               on_shape_mismatch: str = "error", on_dtype_mismatch: str = "error",
               use_ema: bool = False, ema_fallback: bool = False, optimizer_state: Any = False,
               mod_partitioned: Iterable[str] = (), ema_name: str = "ExponentialMovingAverage",
               transpose: Optional[Mapping[str, Sequence[int]]] = None,
               reshape: Optional[Mapping[str, Sequence[int]]] = None,
               vocab_remap: Optional[Mapping[str, VocabInfo]] = None,
               batch_bytes: int = DEFAULT_BATCH_BYTES, verbose: int = 1) -> WarmStartReport:
    """Loads a TF1 name-based checkpoint into `target`'s variables, all or nothing.

    The whole mapping is planned and every shape, dtype and checkpoint index entry, and the
    crc32c of every byte to be assigned, is checked before the first variable is assigned;
    tensors are then read and assigned in batches of at most `batch_bytes`, so memory stays
    bounded. When the mapped tensors fit in `batch_bytes` they are read once: the checked
    bytes are the ones assigned.

    ```python
    report = klc.warm_start(model, "/ckpts/model.ckpt-1000", {"/": "backbone/"},
                            sample_input=x[:1])
    print(report.summary())
    ```

    Args:
        target: a tf_keras or Keras 3 layer/model, or a `tf.Module`.
        checkpoint: a checkpoint prefix, or a directory with a `checkpoint` state file.
        assignment_map: None (identity), a dict with `tf.compat.v1.train.init_from_checkpoint`
            semantics, a list of `(regex, replacement)` rules, or a callable.
        sample_input: input for one forward pass creating the shim weights; without it,
            each `LegacyCheckpointMixin` warms up from its `warm_up_input_spec`.
        strict: raise `MissingVariablesError` when a variable inside the mapped scopes
            would get no value; otherwise list it in `report.missing`.
        ignore: regexes (`re.search`, so anchor with "^" if needed) of model legacy names
            to leave alone.
        on_shape_mismatch: "error" (ShapeMismatchError, nothing assigned) or "skip" (leave
            such variables as initialised; listed in `report.skipped`).
        on_dtype_mismatch: "error" (DTypeMismatchError); "cast" for value-preserving casts
            only (float -> float, int -> wider int or -> float64; listed in `report.casts`),
            other pairs still raise DTypeMismatchError; "unsafe_cast" casts any numeric pair
            as `tf.cast` does (wrapping, truncating, dropping imaginary parts).
        use_ema: load `X/ExponentialMovingAverage` into X where the checkpoint has it (TF1's
            `tf.compat.v1.train.ExponentialMovingAverage` shadow variables).
        ema_name: the name of the EMA copies, for an ExponentialMovingAverage created with
            `name=...` (`X/<ema_name>`).
        ema_fallback: with use_ema, load raw values for trainable variables without an EMA
            copy instead of raising MissingVariablesError.
        mod_partitioned: regexes (`re.search`) of checkpoint keys of TF1 partitioned embeddings
            that were looked up with `embedding_lookup(partition_strategy="mod")` (TF1's
            default): their rows are reordered into id order for an unpartitioned variable.
        optimizer_state: True to also migrate the TF1 optimizer's slots (Adam, Momentum) and
            step into `target.optimizer`, or the Keras optimizer to migrate them into; see
            `keras_legacy_ckpt.optimizer_state`.
        transpose: {regex (`re.search`) on model names: permutation}: the checkpoint tensor is
            transposed into the variable (and into its optimizer slots).
        reshape: {regex on model names: shape, one -1 allowed}: the tensor is reshaped.
        vocab_remap: {model variable name: `klc.VocabInfo`}: rows (or columns) of an embedding
            whose vocabulary changed are remapped word by word, with the semantics of
            `tf.compat.v1.train.VocabInfo` in `tf.compat.v1.train.warm_start`.
        batch_bytes: read at most this many bytes of tensors at a time (a tensor larger than this
            is read on its own). Mapped tensors that fit in it in all are read once, checked and
            then assigned; larger ones are read twice: a crc32c pass over everything, then the
            reads that are assigned.
        verbose: 1 draws progress bars (on stderr, when it is a terminal) for the crc32c check and
            the assignment of more than 256 MiB; 0 never.

    Returns:
        A `WarmStartReport`.
    """
    check_options(assignment_map, ignore=ignore, on_shape_mismatch=on_shape_mismatch,
                  on_dtype_mismatch=on_dtype_mismatch, mod_partitioned=mod_partitioned, transpose=transpose,
                  reshape=reshape, vocab_remap=vocab_remap)
    options = _Options(strict, ignore, on_shape_mismatch, on_dtype_mismatch, use_ema, ema_fallback,
                       optimizer_state, mod_partitioned, "/" + ema_name,
                       Transforms(transpose or {}, reshape or {}, vocab_remap or {}), batch_bytes, verbose)
    strategy = distribute.strategy_of(target)
    multi_worker = distribute.is_multi_worker(strategy)
    error: Optional[LegacyCheckpointError] = None
    try:
        if multi_worker:
            # Variable creation is collective across workers: every worker warms up first,
            # then checks locally, then all agree before anything is assigned.
            with distribute.scope_of(target):
                warm_up_target(target, sample_input)
        ckpt = CheckpointFile(checkpoint)
        if not multi_worker:
            with distribute.scope_of(target):
                warm_up_target(target, sample_input)
        plan = _plan(target, ckpt, assignment_map, options)
    except LegacyCheckpointError as e:
        error = e
    if multi_worker:
        failures = distribute.failures_across_workers(strategy, error is not None)
        if error is None and failures:
            raise LegacyCheckpointError(
                "Warm start failed on %d other replica(s) of this multi-worker job (see their logs); "
                "nothing was assigned on this worker." % failures)
    if error is not None:
        raise error
    slots = plan.slots
    with ProgressBar("warm start: assign", verbose) as bar:
        _read_and_assign(ckpt, plan.requests + (slots.slots if slots else []), batch_bytes, bar)
    if slots:
        _assign_now(slots.optimizer.iterations, slots.iterations, ckpt.prefix)
    resume.mark_warm_started(target, ckpt.prefix)
    used = {m.key for m in plan.matches}
    casts = dict(plan.casts)
    if slots:  # the slots, and the step tensors the step count came from, were used too
        used |= {r.key for _, r, _ in slots.slots} | {k for k in ckpt.tensors if _STEP_TENSOR.search(k)}
        for slot, request, _ in slots.slots:
            have, saved = _compat.variable_dtype(slot), ckpt.tensors[request.key].dtype
            if have != saved:  # mixed precision: float16 slots of float16 variables
                casts[default_legacy_name(slot)] = "%s -> %s" % (saved.name, have.name)
    return WarmStartReport(
        checkpoint=ckpt.prefix,
        loaded={part: m.key for m in plan.matches for part in m.parts if part not in plan.ignored},
        missing=plan.missing,
        unused=[k for k in ckpt.tensors if k not in used],
        ignored=plan.ignored,
        skipped=plan.skipped,
        casts=casts,
        bytes_loaded=sum(r.nbytes for _, r, _ in plan.requests),
        optimizer_state=slots.summary() if slots else None,
        assignment_map=assignment_map,
        ema_name=ema_name if use_ema else None,
        transforms=plan.transformed)


@dataclasses.dataclass
class _Plan:
    """Everything a warm start will do, checked before the first assignment."""

    matches: List[Match]
    missing: List[str]
    requests: List[Tuple[Any, ReadRequest, Optional[Transform]]]
    ignored: List[str]
    skipped: Dict[str, str]
    casts: Dict[str, str]
    slots: Any
    transformed: Dict[str, str]


@dataclasses.dataclass
class _Options:
    strict: bool
    ignore: Iterable[str]
    on_shape_mismatch: str
    on_dtype_mismatch: str
    use_ema: bool
    ema_fallback: bool
    optimizer_state: Any
    mod_partitioned: Iterable[str]
    ema_suffix: str
    transforms: Transforms
    batch_bytes: int = DEFAULT_BATCH_BYTES
    verbose: int = 1


def suggest_assignment_map(target: Any, checkpoint: "str | os.PathLike[str]", *,
                           sample_input: Any = None) -> SuggestedMap:
    """`klc.suggest_assignment_map` (documented in numpy_warm_start) for models that TensorFlow runs."""
    ckpt = CheckpointFile(checkpoint)
    with distribute.scope_of(target):
        warm_up_target(target, sample_input)
    model = {name: _compat.variable_shape(v) for name, v in legacy_variables_of(target).items()}
    return suggest_map(model, {k: info.shape for k, info in ckpt.tensors.items()})


def _plan(target: Any, ckpt: CheckpointFile, assignment_map: NameMapping, options: _Options):
    """Everything that can fail before the first assignment (reads no tensor data)."""
    ignore_patterns = compile_patterns(options.ignore, "ignore")
    variables = legacy_variables_of(target)
    if not variables:
        raise MissingVariablesError(
            "%s has no variables to warm-start. Pass sample_input=<one batch> or set "
            "warm_up_input_spec on your LegacyCheckpointMixin layers so they are created first."
            % type(target).__name__)
    names_by_variable = {id(v): name for name, v in variables.items()}
    plan = plan_assignment_map(assignment_map, variables, ckpt.tensors, names_by_variable=names_by_variable)

    def ignored(name: str) -> bool:
        return any(p.search(name) for p in ignore_patterns)

    matches = [m for m in plan.matches.values() if not all(ignored(p) for p in m.parts)]
    missing = [n for n in plan.missing() if not ignored(n)]
    if options.strict and missing:
        raise MissingVariablesError(missing_message(ckpt.prefix, _shapes(ckpt), missing, plan.not_found, variables))
    if options.use_ema:
        matches = moving_averages(matches, variables, ckpt.prefix, ckpt.tensors, options.ema_fallback,
                                  options.ema_suffix)
    options.transforms.check_names(list(variables))
    requests, skipped, casts, transformed = _checked_requests(
        matches, variables, ckpt, options.transforms, options.on_shape_mismatch, options.on_dtype_mismatch)
    # Parts of a partitioned variable are read one by one: an ignored part is not read at all.
    ignored_ids = {id(variables[p]) for m in matches for p in m.parts if ignored(p)}
    requests = [r for r in requests if id(r[0]) not in ignored_ids]
    requests = _mod_partition_order(requests, ckpt, compile_patterns(options.mod_partitioned, "mod_partitioned"))
    matches = [m for m in matches if m.parts[0] not in skipped]
    if not requests:
        raise MissingVariablesError(nothing_loaded_message(ckpt.prefix, _shapes(ckpt), assignment_map, variables, skipped,
                                                            sorted(n for n in variables if ignored(n))))
    slots = None
    if options.optimizer_state is not False and options.optimizer_state is not None:
        optimizer = getattr(target, "optimizer", None) if options.optimizer_state is True else options.optimizer_state
        if optimizer is None:
            raise LegacyCheckpointError("optimizer_state=True, but %s has no optimizer: compile the model first, or "
                                        "pass the optimizer itself." % type(target).__name__)
        slots = optimizer_slots.plan_optimizer_state(optimizer, requests, names_by_variable,
                                                     list(target.trainable_variables), ckpt)
    # Every byte that will be assigned passes its crc32c check here, before the first assignment
    # and, under a multi-worker strategy, before the workers agree to assign. What fits in one
    # batch is kept as read here, so that it is read once.
    with ProgressBar("warm start: crc32c check", options.verbose) as bar:
        ckpt.verify_requests([r for _, r, _ in requests + (slots.slots if slots else [])], options.batch_bytes, bar)
    return _Plan(matches, missing, requests, sorted(n for n in variables if ignored(n)), skipped, casts, slots,
                 transformed)


def _mod_partition_order(requests, ckpt: CheckpointFile, patterns: List[re.Pattern]):
    """Reorders the rows of "mod"-partitioned embeddings loaded into one unpartitioned variable.

    With partition_strategy="mod", id i lives in partition i % n at row i // n, while the
    checkpoint stores the partitions one after another: same key, different row layout.
    """
    if not patterns:
        return requests
    result = []
    for variable, request, transform in requests:
        if not any(p.search(request.key) for p in patterns):
            result.append((variable, request, transform))
            continue
        slices = ckpt.slices_of(request.key)
        if request.slice_spec or not slices:
            raise AssignmentMapError(
                "mod_partitioned names %r, but it is %s. The option is for TF1 partitioned embeddings loaded into "
                "one unpartitioned variable." % (request.key, "loaded in parts" if request.slice_spec else
                                                 "not partitioned in the checkpoint"))
        starts = sorted(s.extent[0].start for s in slices)
        rows = ckpt.tensors[request.key].shape[0]
        count = len(starts)
        sizes = [b - a for a, b in zip(starts, starts[1:] + [rows])]
        if sizes != [len(range(p, rows, count)) for p in range(count)]:
            raise AssignmentMapError("Checkpoint tensor %r has partitions of %s rows, which is not the layout of a "
                                     "'mod' partitioning of %d rows." % (request.key, sizes, rows))
        order = tf.constant([starts[i % count] + i // count for i in range(rows)], tf.int64)
        result.append((variable, request, _then(lambda value, order=order: tf.gather(value, order), transform)))
    return result


def _shapes(ckpt: CheckpointFile) -> Dict[str, Tuple[int, ...]]:
    return {key: info.shape for key, info in ckpt.tensors.items()}


def _checked_requests(matches: List[Match], variables: Dict[str, Any], ckpt: CheckpointFile, transforms: Transforms,
                      on_shape_mismatch: str, on_dtype_mismatch: str):
    """ReadRequests for every match, after every shape and dtype check; applies the policies."""
    requests: List[Tuple[Any, ReadRequest, Optional[Transform]]] = []
    shape_errors, dtype_errors = [], []
    skipped: Dict[str, str] = {}
    casts: Dict[str, str] = {}
    transformed: Dict[str, str] = {}
    for match in sorted(matches, key=lambda m: m.model_name):
        info = ckpt.tensors[match.key]
        parts = [variables[p] for p in match.parts]
        part_shapes = [_compat.variable_shape(v) for v in parts]
        planned = transforms.plan(match.model_name, match.key, info.shape, _joined_shape(part_shapes))
        tensor_shape = planned.shape if planned else info.shape
        slices = _part_slices(tensor_shape, part_shapes)
        if slices is None:
            shapes = " + ".join(str(s) for s in part_shapes)
            problem = "%s %s <- %r %s%s" % (match.model_name, shapes, match.key, info.shape,
                                             " after %s: %s" % (planned.description, tensor_shape) if planned else "")
            if on_shape_mismatch == "skip":
                skipped.update({p: "shape %s" % problem for p in match.parts})
            else:
                shape_errors.append("  " + problem)
            continue
        for part_name, v in zip(match.parts, parts):
            have = _compat.variable_dtype(v)
            if have == info.dtype:
                continue
            problem = "%s (%s) <- %r (%s)" % (part_name, have.name, match.key, info.dtype.name)
            if _castable(info.dtype, have, on_dtype_mismatch) or _mixed_precision_cast(info.dtype, have):
                casts[part_name] = "%s -> %s" % (info.dtype.name, have.name)
                if on_dtype_mismatch != "unsafe_cast" and _overflows(ckpt, match.key, have):
                    dtype_errors.append("  %s: values beyond %s's range would become inf" % (problem, have.name))
            else:
                dtype_errors.append("  " + problem + (" is not value-preserving" if on_dtype_mismatch == "cast"
                                                       else ""))
        itemsize = info.dtype.size if info.dtype != tf.string else 1
        if planned is not None:
            # The whole tensor is read and transformed; each part then takes its slice of the result.
            transformed[match.model_name] = planned.description
            for v, (spec, _) in zip(parts, slices):
                requests.append((v, ReadRequest(match.key, "", info.nbytes), _then_slice(planned.apply, spec)))
            continue
        for v, (spec, count) in zip(parts, slices):
            requests.append((v, ReadRequest(match.key, spec, count * itemsize), None))
    if shape_errors:
        raise shape_mismatch_error(shape_errors)
    if dtype_errors:
        raise dtype_mismatch_error(dtype_errors, "tf.cast")
    return requests, skipped, casts, transformed


def _castable(source: tf.dtypes.DType, target: tf.dtypes.DType, policy: str) -> bool:
    """Whether `policy` allows casting checkpoint dtype `source` into a `target` variable."""
    numeric = all(d.is_floating or d.is_integer or d.is_complex or d == tf.bool for d in (source, target))
    if policy == "unsafe_cast":
        return numeric
    if policy != "cast":
        return False
    if source.is_floating and target.is_floating:
        return True
    if source.is_integer and target == tf.float64:
        return source.size <= 4  # every int32 is exactly a float64; not every int64 is
    if source.is_integer and target.is_integer:
        if source.is_unsigned == target.is_unsigned:
            return target.size > source.size
        return source.is_unsigned and target.size > source.size  # uint8 -> int16 keeps every value
    return False


def _mixed_precision_cast(source: tf.dtypes.DType, target: tf.dtypes.DType) -> bool:
    """A float checkpoint tensor into a variable that a mixed precision policy made float16 or
    bfloat16 (tf_keras v1 layers take their variables' dtype from their input): cast, reported."""
    return source.is_floating and target in _compat.mixed_precision_dtypes()


def _overflows(ckpt: CheckpointFile, key: str, target: tf.dtypes.DType) -> bool:
    """Whether casting the float tensor `key` to the narrower float `target` makes finite values inf.

    Checked before anything is assigned: the tensor is read once more, one at a time (only
    narrowing float casts are: float64 -> float32, float32 -> float16 or bfloat16, ...).
    """
    source = ckpt.tensors[key].dtype
    if not (source.is_floating and target.is_floating) or target.max >= source.max:
        return False
    value = ckpt.read([ReadRequest(key, "", ckpt.tensors[key].nbytes)])[0].numpy()
    return bool(np.any(np.isfinite(value) & ~np.isfinite(value.astype(target.as_numpy_dtype))))


def _then(first: Transform, second: Optional[Transform]) -> Transform:
    return first if second is None else (lambda value: second(first(value)))


def _then_slice(transform: Transform, spec: str) -> Transform:
    """`transform`, then the part of its result that a shape-and-slice `spec` names ("" = all)."""
    if not spec:
        return transform
    extents = spec.split(" ")[-1].split(":")
    begin = [0 if e == "-" else int(e.split(",")[0]) for e in extents]
    size = [-1 if e == "-" else int(e.split(",")[1]) for e in extents]
    return lambda value: tf.slice(transform(value), begin, size)


def _joined_shape(shapes: List[Tuple[int, ...]]) -> Tuple[int, ...]:
    """The shape of a variable whose parts have `shapes` (joined along the one axis where they differ, else 0)."""
    if len(shapes) == 1:
        return shapes[0]
    axes = {i for s in shapes for i, (a, b) in enumerate(zip(s, shapes[0])) if a != b}
    axis = axes.pop() if len(axes) == 1 else 0
    return tuple(sum(s[axis] for s in shapes) if i == axis else d for i, d in enumerate(shapes[0]))


def _part_slices(full: Tuple[int, ...], shapes: List[Tuple[int, ...]]) -> Optional[List[Tuple[str, int]]]:
    """(shape-and-slice spec, element count) for each part, or None if they cannot tile `full`."""
    layout = part_layout(full, shapes)
    if layout is None:
        return None
    if len(shapes) == 1:
        return [("", math.prod(full))]
    axis, starts = layout
    return [(slice_spec(full, axis, start, s[axis]), math.prod(s)) for s, start in zip(shapes, starts)]


def _read_and_assign(ckpt: CheckpointFile, requests: List[Tuple[Any, ReadRequest, Optional[Transform]]],
                     batch_bytes: int, progress: Optional[Progress] = None) -> None:
    # Every byte that will be assigned passed its crc32c check in _plan, before the first
    # assignment, so that damaged data fails while no variable has changed. Reads check it again:
    # a file that changes after that check fails here, saying how many variables were assigned.
    session = None if tf.executing_eagerly() else _tf1_session([v for v, _, _ in requests], ckpt.prefix)
    position = 0
    assigned = _Count()
    total, done = sum(r.nbytes for _, r, _ in requests), 0
    for batch in batches([r for _, r, _ in requests], batch_bytes):
        try:
            if session is None:
                _assign_batch(ckpt, batch, requests[position:position + len(batch)], assigned)
            else:
                with session.graph.as_default():
                    ops = _assign_batch(ckpt, batch, requests[position:position + len(batch)], assigned)
                _run(session, ops, ckpt, batch)
                assigned.n += len(batch)
        except CorruptCheckpointError as e:
            if assigned.n:
                raise CorruptCheckpointError(
                    "%s Checkpoint %s changed while it was being read: %d variable(s) were already "
                    "assigned. Run the warm start again." % (e, ckpt.prefix, assigned.n)) from None
            raise
        position += len(batch)
        done += sum(r.nbytes for r in batch)
        if progress is not None:
            progress(done, total)


@dataclasses.dataclass
class _Count:
    n: int = 0


def _assign_now(variable: Any, value: Any, prefix: str) -> None:
    op = assign(variable, value)
    if not tf.executing_eagerly():
        _tf1_session([variable], prefix).run(op)


def _assign_batch(ckpt: CheckpointFile, batch: List[ReadRequest],
                  requests: List[Tuple[Any, ReadRequest, Optional[Transform]]], assigned: "_Count") -> List[Any]:
    """Reads one batch and assigns it (eager, counting in `assigned`), or returns the ops that do
    (TF1 graph mode).

    Eagerly, each value is assigned as it is read (`CheckpointFile.read_each`), so that a batch
    of tensors read straight from the file holds one of them at a time: the variable takes the
    new tensor's memory and frees its old one before the next read.
    """
    eager = tf.executing_eagerly()
    ops = []
    values = ckpt.read_each(batch)
    try:
        for (variable, _, transform), value in zip(requests, values):
            if value.dtype != _compat.variable_dtype(variable):
                value = tf.cast(value, _compat.variable_dtype(variable))
            op = assign(variable, value if transform is None else transform(value))
            if eager:
                assigned.n += 1
            else:
                ops.append(op)
    finally:
        values.close()
    return ops


def assign(variable: Any, value: Any) -> Any:
    """`variable.assign(value)` without reading the variable back: reading a SyncOnRead
    variable (batch-norm statistics) under MultiWorkerMirroredStrategy is a collective."""
    if isinstance(variable, tf.Variable):
        return variable.assign(value, read_value=False)
    return variable.assign(value)


def _tf1_session(variables: List[Any], prefix: str) -> Any:
    """The session whose graph holds `variables` (TF1 behaviour: assign ops run there)."""
    graph = variables[0].graph if variables else tf.compat.v1.get_default_graph()
    session = tf.compat.v1.get_default_session()
    if session is not None and session.graph is graph:
        return session
    from tf_keras.src import backend

    # The session tf_keras trains in (fit in graph mode), if it has one; not a new one that
    # would hold values no one else sees.
    keras_session = getattr(backend._SESSION, "session", None)
    if keras_session is not None and keras_session.graph is graph:
        return keras_session
    raise LegacyCheckpointError(
        "Warm start from %s in TF1 graph mode (tf.compat.v1.disable_v2_behavior()): the variables live in a graph "
        "with no session to assign them in. Call warm_start inside `with tf.compat.v1.Session(graph=...) as "
        "sess:` (after running the variable initializers), or use the tf_keras backend session "
        "(tf_keras.backend.get_session())." % prefix)


def _run(session: Any, ops: List[Any], ckpt: CheckpointFile, batch: List[ReadRequest]) -> None:
    try:
        session.run(ops)
    except (tf.errors.OpError, IndexError) as e:
        raise CorruptCheckpointError(
            "Reading %s from checkpoint %s failed: %s. The data files are damaged (bit rot or a partial copy); copy "
            "the checkpoint again from its source." % (", ".join(r.key for r in batch[:5]), ckpt.prefix,
                                                        str(e).strip().splitlines()[0])) from None
