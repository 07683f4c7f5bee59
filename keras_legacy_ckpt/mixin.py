"""`LegacyCheckpointMixin`: TF1 names for the variables of shim layers and modules.

Shim (`track_tf1_style_variables`) weights exist only after a forward pass, and their
eager names are their TF1 graph names. The mixin runs that forward pass on demand
(`warm_up`), without changing any variable's value, and lists the variables under
their TF1 ("legacy") names, refusing to guess when two variables share a name.
"""

from __future__ import annotations

import collections
import contextlib
import re
from typing import Any, Dict, Iterator, List, Optional, Tuple

import tensorflow as tf

from keras_legacy_ckpt import _compat, resume
from keras_legacy_ckpt.errors import DuplicateVariableNameError, LegacyCheckpointError
from keras_legacy_ckpt.warm_start_plan import input_of_first_batch, unique_by_identity

_OUTPUT_SUFFIX = re.compile(r":\d+$")


class LegacyCheckpointMixin:
    """Adds TF1-name bookkeeping to a tf_keras Layer/Model or a `tf.Module` using the shim.

    ```python
    class Backbone(klc.LegacyCheckpointMixin, tf_keras.layers.Layer):
        warm_up_input_spec = tf.TensorSpec([None, 8])

        @klc.track_tf1_style_variables
        def call(self, x):
            with tf.compat.v1.variable_scope("backbone"):
                return klc.v1_layers.dense(x, 4)

    layer = Backbone()
    layer.warm_up()
    layer.legacy_variables()  # {"backbone/dense/kernel": ..., "backbone/dense/bias": ...}
    ```

    Attributes:
        warm_up_input_spec: a `tf.TensorSpec` (or a nested structure of them) describing
            one input; `warm_up()` with no arguments calls the layer on zeros of that
            spec, with `None` dimensions set to 1.
    """

    warm_up_input_spec: Any = None

    def warm_up(self, *args: Any, **kwargs: Any) -> None:
        """Runs one forward pass so that the `get_variable` weights exist.

        Passes `training=False` when the call accepts it, and restores every variable's
        value afterwards, so batch-norm moving statistics are unchanged. Does nothing
        once the weights exist.
        """
        if not self._needs_warm_up():
            return
        if args or kwargs:
            call_preserving_values(self, *args, **kwargs)
            return
        if self.warm_up_input_spec is None:
            raise LegacyCheckpointError(
                "%s has not created its variables yet and has no warm_up_input_spec. Set "
                "`warm_up_input_spec = tf.TensorSpec([None, ...])` on the class, or pass a "
                "sample input: `layer.warm_up(x)`, or `sample_input=x` to warm_start / "
                "WarmStartFromTF1." % _describe(self))
        with self._explaining_spec_input_errors():
            call_preserving_values(self, zeros_like_spec(self.warm_up_input_spec))

    @contextlib.contextmanager
    def _explaining_spec_input_errors(self) -> Iterator[None]:
        try:
            yield
        except TypeError as e:
            raise LegacyCheckpointError(
                "Warming up %s with one input built from warm_up_input_spec failed: %s. If its call takes "
                "more arguments, call warm_up(x, ...) yourself or pass sample_input to the model."
                % (_describe(self), e)) from e

    def legacy_variables(self) -> Dict[str, tf.Variable]:
        """Maps legacy (TF1) name -> variable for every variable this object tracks."""
        return legacy_variables_of(self)

    def legacy_name(self, variable: Any) -> str:
        """The TF1 name of `variable`; override for `tf.Variable` attributes whose eager
        names differ from their TF1 graph names."""
        return default_legacy_name(variable)

    def _needs_warm_up(self) -> bool:
        if getattr(self, "_tf1_style_var_store", None) is not None:
            return False  # the shim has run: its get_variable weights exist
        if _compat.uses_shim(self):
            return True  # even if built: build() does not create get_variable weights
        if _compat.is_tf_keras_layer(self):
            return not self.built
        # A tf.Module without the shim: a pass can only create variables it does not have yet.
        return callable(self) and not variables_of(self)


def default_legacy_name(variable: Any) -> str:
    if _compat.is_keras3_variable(variable):
        return variable.path
    return _OUTPUT_SUFFIX.sub("", variable.name)


def _describe(obj: Any) -> str:
    name = getattr(obj, "name", None)
    return "%s %r" % (type(obj).__name__, name) if name else type(obj).__name__


def zeros_like_spec(spec: Any) -> Any:
    def zeros(s: tf.TensorSpec) -> tf.Tensor:
        if not isinstance(s, tf.TensorSpec):
            raise LegacyCheckpointError("warm_up_input_spec must be a tf.TensorSpec or a nested structure of "
                                        "them, e.g. tf.TensorSpec([None, 8]); got %r." % (s,))
        if s.shape.rank is None:
            raise LegacyCheckpointError("warm_up_input_spec %r has unknown rank; give every "
                                        "dimension (None for the batch)." % (s,))
        return tf.zeros([1 if d is None else d for d in s.shape.as_list()], s.dtype)

    return tf.nest.map_structure(zeros, spec)


def variables_of(target: Any) -> List[Any]:
    """Every variable of a tf_keras or Keras 3 layer/model, or of a tf.Module, once each."""
    if _compat.is_keras3_layer(target) or _compat.is_tf_keras_layer(target):
        try:
            variables = list(target.weights)
        except ValueError:  # tf_keras: an unbuilt Sequential (no Input) has no weights yet, its layers may
            variables = [v for layer in target.layers for v in variables_of(layer)]
    elif isinstance(target, tf.Module):
        variables = list(target.variables)
    else:
        raise TypeError("Expected a tf_keras or Keras 3 Layer/Model or a tf.Module, got %s."
                        % type(target).__name__)
    if not tf.executing_eagerly():
        variables += _graph_mode_shim_variables(target)
    return unique_by_identity(variables)


def _graph_mode_shim_variables(target: Any) -> List[Any]:
    """The shim's get_variable weights in TF1 graph mode (disable_v2_behavior()), where
    tf_keras keeps them in the shim's variable store but tracks none of them as weights."""
    modules = [target, *target.submodules] if isinstance(target, tf.Module) else [target]
    stores = [getattr(m, "_tf1_style_var_store", None) for m in modules]
    return [v for store in stores if store is not None for v in getattr(store, "_vars", {}).values()]


def mixins_of(target: Any) -> List[LegacyCheckpointMixin]:
    """`target` and its sub-modules that use the mixin, outermost first."""
    found = [target] if isinstance(target, LegacyCheckpointMixin) else []
    if isinstance(target, tf.Module):
        found += [m for m in target.submodules if isinstance(m, LegacyCheckpointMixin)]
    return found


def legacy_variables_of(target: Any) -> Dict[str, Any]:
    """Legacy name -> variable for `target`; the innermost mixin owning a variable names it.

    Raises DuplicateVariableNameError listing every name two variables share.
    """
    names: Dict[int, str] = {}
    # Walking a module's variables is the slow part with thousands of them: once per mixin.
    mixins = {id(m): m for m in mixins_of(target)}
    owned = {key: variables_of(m) for key, m in mixins.items()}
    # A nested mixin tracks a subset of its parent's variables: name from the smallest,
    # and on a tie from the deepest (mixins_of lists outermost first).
    for key in sorted(reversed(list(owned)), key=lambda k: len(owned[k])):
        for v in owned[key]:
            names.setdefault(id(v), mixins[key].legacy_name(v))
    by_name: Dict[str, List[Any]] = collections.defaultdict(list)
    for v in owned.get(id(target)) or variables_of(target):
        by_name[names.get(id(v)) or default_legacy_name(v)].append(v)
    clashes = {name: vs for name, vs in by_name.items() if len(vs) > 1}
    if clashes:
        lines = ["  %r is the name of %d variables (shapes %s)"
                 % (name, len(vs), ", ".join(str(tuple(v.shape)) for v in vs))
                 for name, vs in sorted(clashes.items())]
        raise DuplicateVariableNameError(
            "%s has %d legacy name(s) shared by more than one variable, so a TF1 checkpoint "
            "cannot tell them apart:\n%s\nGive the layers distinct names, wrap their calls in "
            "distinct tf.compat.v1.variable_scope / tf.name_scope blocks, or override "
            "legacy_name() for tf.Variable attributes." % (_describe(target), len(clashes), "\n".join(lines)))
    return {name: vs[0] for name, vs in by_name.items()}


@contextlib.contextmanager
def _values_preserved(existing: List[Any], new_too: bool = True) -> Iterator[None]:
    """Restores the values that existing (and, if `new_too`, newly created) variables had
    before the pass (at creation)."""
    saved = [(v, tf.identity(tf.convert_to_tensor(v))) for v in existing]

    def snapshot_new(next_creator, **kwargs):
        variable = next_creator(**kwargs)
        if new_too and tf.executing_eagerly():
            # convert_to_tensor, not read_value(): a ShardedVariable (ParameterServerStrategy
            # with a variable_partitioner) has no read_value.
            saved.append((variable, tf.identity(tf.convert_to_tensor(variable))))
        return variable

    try:
        with tf.variable_creator_scope(snapshot_new):
            yield
    finally:
        for variable, value in saved:
            variable.assign(value)


def _with_training_false(target: Any, kwargs: Dict[str, Any]) -> Dict[str, Any]:
    if "training" not in kwargs and _compat.accepts_training(_compat.call_function(target)):
        return dict(kwargs, training=False)
    return kwargs


def _values_of_target_preserved(target: Any) -> contextlib.AbstractContextManager:
    existing = variables_of(target) if _compat.is_keras3_layer(target) or isinstance(target, tf.Module) else []
    # A restore TensorFlow deferred until the variables exist (load_weights, Checkpoint.restore on
    # an unbuilt model) assigns them just after their creation: their values at creation are not
    # the ones to keep then.
    return _values_preserved(existing, new_too=not resume.pending_restore(target))


def call_preserving_values(target: Any, *args: Any, **kwargs: Any) -> Any:
    """Calls `target(*args, **kwargs)` (training=False when accepted); variables keep their values."""
    kwargs = _with_training_false(target, kwargs)
    with _values_of_target_preserved(target):
        return target(*args, **kwargs)


def model_input(sample_input: Any) -> Any:
    """The model input that `sample_input` holds, as `fit` would see it.

    A `tf.data.Dataset`, an iterator or generator, or a Keras `Sequence` gives its first
    batch; of a batch `(x, y[, sample_weight])` the `x` is used, as `fit` unpacks it. Anything
    else (an array, a tensor, a tuple/list/dict of inputs) is the input itself. An iterator
    loses the batch it gives.
    """
    from tf_keras.utils import Sequence, unpack_x_y_sample_weight

    batches = None
    if isinstance(sample_input, tf.data.Dataset):
        batches = iter(sample_input)
    elif isinstance(sample_input, Sequence):
        batches = iter([sample_input[0]])
    elif hasattr(sample_input, "__next__"):
        batches = sample_input
    return input_of_first_batch(sample_input, batches, unpack_x_y_sample_weight)


def warm_up_target(target: Any, sample_input: Optional[Any] = None) -> None:
    """Makes sure `target`'s variables exist and that calling it again creates no more.

    Calls `target` on `sample_input` if given (when its variables are not there yet), else
    warms up each mixin inside it from its `warm_up_input_spec`. Where the shim is used, a
    second pass then must create nothing (see `_check_second_pass_creates_nothing`). Every
    variable keeps its value.

    Raises:
        LegacyCheckpointError: the second pass created variables (TF1 auto-names drifting).
    """
    modules = [target, *_submodules(target)]  # one walk of a model that may have thousands of variables
    mixins = [m for m in modules if isinstance(m, LegacyCheckpointMixin)]
    if sample_input is not None:
        sample_input = model_input(sample_input)
        unbuilt = (_compat.is_keras3_layer(target) or _compat.is_tf_keras_layer(target)) and not target.built
        first_pass = unbuilt or any(m._needs_warm_up() for m in mixins) or not variables_of(target)
        _warm_up_and_check(target, (sample_input,), first_pass)
        return
    for mixin in mixins:
        mixin.warm_up()
    if any(_compat.uses_shim(m) for m in modules):
        _check_mixins_from_their_specs(target)


def _check_mixins_from_their_specs(target: Any) -> None:
    """The second-pass check for each outermost shim-using mixin that has a warm_up_input_spec.

    A mixin called from inside another shim method is not called on its own: alone it would
    be another TF1 program, with its own fresh name counters (see
    `_compat.track_tf1_style_variables`), and could name its layers differently.
    """
    not_alone = {id(m) for shim in _modules_using_shim(target) for m in _submodules(shim)}
    for mixin in mixins_of(target):  # outermost first
        if id(mixin) in not_alone or mixin.warm_up_input_spec is None or not _modules_using_shim(mixin):
            continue
        with mixin._explaining_spec_input_errors():
            _warm_up_and_check(mixin, (zeros_like_spec(mixin.warm_up_input_spec),), first_pass=False)
        not_alone.update(id(m) for m in _submodules(mixin))  # checked within this pass


def _submodules(target: Any) -> List[Any]:
    return list(target.submodules) if isinstance(target, tf.Module) else []


def _modules_using_shim(target: Any) -> List[Any]:
    """`target` and the modules inside it that have a `track_tf1_style_variables` method."""
    return [m for m in [target, *_submodules(target)] if _compat.uses_shim(m)]


def _warm_up_and_check(target: Any, args: Tuple[Any, ...], first_pass: bool) -> None:
    """The warm-up pass (if `first_pass`), then, where the shim is used, the stability check.

    Both passes run under one snapshot of the variable values (one copy and one restore
    for the two), and a failed check leaves every variable as it was.
    """
    check = bool(_modules_using_shim(target))  # plain Keras layers create variables in build() only
    if not first_pass and not check:
        return
    kwargs = _with_training_false(target, {})
    with _values_of_target_preserved(target):
        if first_pass:
            target(*args, **kwargs)
        if check:
            _check_second_pass_creates_nothing(target, args, kwargs)


def _check_second_pass_creates_nothing(target: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> None:
    """Calls `target` again and raises if that created variables.

    The shim looks its variables up by name on every call. TF1 layers without a name take
    auto-names (`dense`, `dense_1`, ...) from counters that, under tf_keras's own decorator,
    keep counting across calls; the next call then creates `dense_1/kernel` and runs on
    fresh random weights while the warm-started `dense/kernel` sits unused. Only this
    second pass shows it, so it runs before anything is loaded.
    """
    before = {id(v) for v in variables_of(target)}
    target(*args, **kwargs)
    created = [v for v in variables_of(target) if id(v) not in before]
    if created:
        raise _names_drift_error(target, created)


def _names_drift_error(target: Any, created: List[Any]) -> LegacyCheckpointError:
    names = sorted(default_legacy_name(v) for v in created)
    shown = ", ".join(names[:12]) + (", ... and %d more" % (len(names) - 12) if len(names) > 12 else "")
    return LegacyCheckpointError(
        "Calling %s a second time created %d new variable(s): %s. Its TF1 layers take auto-names "
        "(dense, dense_1, ...) that change from call to call, so after a warm start the next call "
        "would run on new random weights instead of the checkpoint's. Nothing was loaded. Fix: "
        "wrap the TF1 code inside the decorated method in `with tf.compat.v1.variable_scope(\"<name>\"):` "
        "(leaving a variable scope resets the auto-name counters inside it; then map the checkpoint "
        "with {\"/\": \"<name>/\"}), or decorate the method with klc.track_tf1_style_variables instead "
        "of tf_keras's own (it keeps auto-names stable), or pass name= to every TF1 layer."
        % (_describe(target), len(created), shown))
