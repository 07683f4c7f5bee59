"""What both warm-start routes share, TensorFlow-free: option checks, moving-average keys, and the
messages that say why a warm start would assign nothing or leave variables without a value.

The TensorFlow route (`warm_start.py`) and the numpy route for Keras 3 on JAX, torch or numpy
(`numpy_warm_start.py`) plan with `assignment_map.plan_assignment_map`, then call these, so the
two check the same things and word their errors the same way. Checkpoints are given as
`shapes`, {checkpoint key: shape}; variables as {legacy name: variable} (`.shape`, `.trainable`).
"""

from __future__ import annotations

import collections
import dataclasses
import difflib
import math
import re
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

from keras_legacy_ckpt.assignment_map import Match, NameMapping, _scopes_of, compile_patterns, forward_mapper, suggest_map
from keras_legacy_ckpt.checkpoint_reader import closest_keys
from keras_legacy_ckpt.errors import (AssignmentMapError, DTypeMismatchError, LegacyCheckpointError,
                                      MissingVariablesError, ShapeMismatchError)
from keras_legacy_ckpt.warm_start_report import LIST_LIMIT, is_training_state, short_list

# The keyword-only options of warm_start (both routes; a test checks the TensorFlow route's signature).
WARM_START_OPTIONS = ("sample_input", "strict", "ignore", "on_shape_mismatch", "on_dtype_mismatch", "use_ema",
                      "ema_fallback", "optimizer_state", "mod_partitioned", "ema_name", "transpose", "reshape",
                      "vocab_remap", "batch_bytes", "verbose")
SHAPE_POLICIES = ("error", "skip")
DTYPE_POLICIES = ("error", "cast", "unsafe_cast")


def check_options(assignment_map: NameMapping, *, ignore: Iterable[str] = (), on_shape_mismatch: str = "error",
                  on_dtype_mismatch: str = "error", mod_partitioned: Iterable[str] = (),
                  transpose: Optional[Mapping[str, Sequence[int]]] = None,
                  reshape: Optional[Mapping[str, Sequence[int]]] = None,
                  vocab_remap: Optional[Mapping[str, Any]] = None, **_: Any) -> None:
    """What can be checked of warm_start's arguments without a model or checkpoint (so that
    `WarmStartFromTF1` fails when it is built, not when `fit` has started)."""
    for name, value, allowed in (("on_shape_mismatch", on_shape_mismatch, SHAPE_POLICIES),
                                 ("on_dtype_mismatch", on_dtype_mismatch, DTYPE_POLICIES)):
        if value not in allowed:
            raise LegacyCheckpointError("%s=%r is not one of %s." % (name, value, ", ".join(map(repr, allowed))))
    if isinstance(assignment_map, Mapping) and not assignment_map:
        raise AssignmentMapError(
            "The assignment map {} maps nothing, so the warm start would assign no variable (TensorFlow's "
            "init_from_checkpoint silently does nothing with it). Pass None for identity names, or "
            "{\"/\": \"model_scope/\"} to load the whole checkpoint under a scope.")
    if assignment_map is not None and not isinstance(assignment_map, Mapping):
        forward_mapper(assignment_map)  # compiles the rules: a bad regex or form raises AssignmentMapError
    compile_patterns(ignore, "ignore")
    compile_patterns(mod_partitioned, "mod_partitioned")
    check_transform_rules(transpose or {}, reshape or {})
    check_vocab_remap(vocab_remap or {})


def check_vocab_remap(vocab_remap: Mapping[str, Any]) -> None:
    for name, info in vocab_remap.items():
        if not isinstance(info, VocabInfo):
            raise AssignmentMapError("vocab_remap[%r] must be a klc.VocabInfo, got %r." % (name, info))
        if info.axis not in (0, 1):
            raise AssignmentMapError("vocab_remap[%r]: axis must be 0 (rows) or 1 (columns), got %r."
                                     % (name, info.axis))


def check_transform_rules(transpose: Mapping[str, Sequence[int]], reshape: Mapping[str, Sequence[int]]) -> None:
    """transpose= and reshape= rules: compilable regexes and sequences of ints (checked against each tensor's
    shape when the warm start plans it)."""
    for what, rules in (("transpose", transpose), ("reshape", reshape)):
        compile_patterns(list(rules), what)
        for pattern, values in rules.items():
            try:
                [int(d) for d in values]
            except (TypeError, ValueError):
                raise AssignmentMapError("%s[%r] = %r is not a sequence of ints." % (what, pattern, values)) from None


def transform_for(model_name: str, rules: Sequence[Tuple[str, Sequence[Tuple[Any, Any]]]],
                  extra: Sequence[Tuple[str, Any]] = ()) -> Optional[Tuple[str, Any]]:
    """(kind, value) of the one transform whose pattern matches `model_name` among `rules` ((kind, [(compiled
    pattern, value)]) pairs) and `extra` ((kind, value) pairs that apply), None for none; two is an error."""
    found = [(kind, value) for kind, pairs in rules for pattern, value in pairs if pattern.search(model_name)]
    found += list(extra)
    if len(found) > 1:
        raise AssignmentMapError("%s has %d transforms (%s); give it one." % (
            model_name, len(found), ", ".join(kind for kind, _ in found)))
    return found[0] if found else None


def resolved_shape(count: int, shape: Sequence[int]) -> Optional[Tuple[int, ...]]:
    """`shape` with its -1 (at most one) resolved for `count` elements, or None when no such shape holds
    exactly `count` elements."""
    unknown = [i for i, d in enumerate(shape) if d == -1]
    known = math.prod(d for d in shape if d != -1)
    if len(unknown) > 1 or any(d < -1 for d in shape) or (unknown and (known == 0 or count % known)) or (
            not unknown and known != count):
        return None
    return tuple(count // known if d == -1 else d for d in shape)


def unique_by_identity(items: Iterable[Any]) -> List[Any]:
    """`items` without repeats of the same object, in order (variables are not hashable by value)."""
    seen, unique = set(), []
    for item in items:
        if id(item) not in seen:
            seen.add(id(item))
            unique.append(item)
    return unique


def input_of_first_batch(sample_input: Any, batches: Optional[Iterator[Any]], unpack: Callable[[Any], Any]) -> Any:
    """The model input `fit` would see in `sample_input`: with `batches` (an iterator over its batches, when it
    is a dataset, a sequence or an iterator), the x of the first batch (`unpack(batch)[0]`), else
    `sample_input` itself."""
    if batches is None:
        return sample_input
    try:
        batch = next(batches)
    except StopIteration:
        raise LegacyCheckpointError("sample_input is an empty %s: give it at least one batch, or pass the batch "
                                    "itself (e.g. x[:1])." % type(sample_input).__name__) from None
    return unpack(batch)[0]


def check_rules_match(rules: Sequence[Tuple[Any, Any]], what: str, model_names: Sequence[str]) -> None:
    """Every transpose/reshape pattern must match a model variable: a mistyped pattern on a square kernel
    would otherwise load it untransposed, and no shape check could tell."""
    for pattern, _ in rules:
        if not any(pattern.search(name) for name in model_names):
            raise AssignmentMapError("%s pattern %r matches no model variable name (they look like %r)."
                                     % (what, pattern.pattern, sorted(model_names)[0] if model_names else ""))


def shape_mismatch_error(problems: List[str]) -> ShapeMismatchError:
    return ShapeMismatchError(
        "%d variable(s) do not have the shape of the checkpoint tensor mapped to them (model <- "
        "checkpoint):\n%s\nNothing was assigned. Fix the model so the shapes agree, correct the "
        "assignment map, pass ignore=[...] for layers you changed on purpose (e.g. a new "
        "classification head), or on_shape_mismatch=\"skip\" to leave them as initialised."
        % (len(problems), "\n".join(problems)))


def dtype_mismatch_error(problems: List[str], unsafe_cast_like: str) -> DTypeMismatchError:
    """`unsafe_cast_like`: what on_dtype_mismatch="unsafe_cast" casts as ("tf.cast", "numpy's astype")."""
    return DTypeMismatchError(
        "%d variable(s) do not have the dtype of the checkpoint tensor mapped to them (model <- "
        "checkpoint):\n%s\nNothing was assigned. Create the variables with the checkpoint's dtype, "
        "pass on_dtype_mismatch=\"cast\" to convert float -> float and int -> wider int (reported), "
        "on_dtype_mismatch=\"unsafe_cast\" to cast any numeric pair as %s does (it may wrap, "
        "truncate or drop imaginary parts), or ignore=[...]." % (len(problems), "\n".join(problems), unsafe_cast_like))


def part_layout(full: Sequence[int], shapes: List[Tuple[int, ...]]) -> Optional[Tuple[int, List[int]]]:
    """How the parts of a partitioned variable (shapes `shapes`, in order) tile a checkpoint tensor of shape
    `full`: (the axis they split, each part's start along it), or None if they do not tile it. One part must be
    the whole tensor: (0, [0])."""
    full = tuple(full)
    if len(shapes) == 1:
        return (0, [0]) if tuple(shapes[0]) == full else None
    if any(len(s) != len(full) for s in shapes):
        return None
    axes = {i for s in shapes for i, (a, b) in enumerate(zip(s, full)) if a != b}
    axis = axes.pop() if len(axes) == 1 else 0
    if axes or any(s[i] != full[i] for s in shapes for i in range(len(full)) if i != axis):
        return None
    if sum(s[axis] for s in shapes) != full[axis]:
        return None
    starts, start = [], 0
    for s in shapes:
        starts.append(start)
        start += s[axis]
    return axis, starts


# --- vocabulary remaps ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class VocabInfo:
    """How to remap the rows (or columns) of an embedding whose vocabulary changed.

    The semantics of `tf.compat.v1.train.VocabInfo` in `tf.compat.v1.train.warm_start`:
    the variable's size along `axis`, minus `num_oov_buckets`, is its vocabulary size, the
    first words of `new_vocab`. Each of those words takes the checkpoint's row of the same
    word in `old_vocab` (its first `old_vocab_size` words; -1 for all). Rows of new words
    and of the OOV buckets (the last `num_oov_buckets`) take `backup_initializer`'s values
    (zeros when None), not the variable's starting value.

    ```python
    klc.warm_start(model, ckpt, vocab_remap={
        "embeddings/words": klc.VocabInfo("new_vocab.txt", "old_vocab.txt", num_oov_buckets=1)})
    ```

    Args:
        new_vocab: the new vocabulary file, one word a line (any tf.io.gfile path).
        old_vocab: the vocabulary file the checkpoint was trained with.
        old_vocab_size: how many words of `old_vocab` the checkpoint has rows for; -1: all.
        num_oov_buckets: out-of-vocabulary rows after the vocabulary in the variable.
        backup_initializer: a callable(shape, dtype) for rows with no checkpoint row; it is
            called once with the variable's whole shape and those rows are taken from it.
        axis: 0 to remap rows (embeddings), 1 to remap columns (an output layer's classes).
    """

    new_vocab: str
    old_vocab: str
    old_vocab_size: int = -1
    num_oov_buckets: int = 0
    backup_initializer: Optional[Callable[..., Any]] = None
    axis: int = 0



# --- moving averages -------------------------------------------------------------------------------

def moving_averages(matches: List[Match], variables: Dict[str, Any], prefix: str, keys: Iterable[str],
                    fallback: bool, suffix: str) -> List[Match]:
    """Swaps each key for its ExponentialMovingAverage copy where the checkpoint (`keys`) has one.

    Like TF1's `ExponentialMovingAverage.variables_to_restore()`, non-trainable variables
    (batch-norm statistics, counters) without a copy keep their own values; a trainable
    variable without a copy is an error unless `fallback`.
    """
    result, without, found = [], [], 0
    for match in matches:
        ema_key = match.key + suffix
        if ema_key in keys:
            result.append(Match(match.model_name, match.parts, ema_key))
            found += 1
            continue
        if any(getattr(variables[p], "trainable", False) for p in match.parts):
            without.append("  %s <- %r" % (match.model_name, match.key))
        result.append(match)
    if without and (not fallback or not found):
        other = _other_ema_names(keys, [m.key for m in matches], suffix)
        hint = ("The checkpoint has copies named %s: pass ema_name=%r. " % (
            ", ".join("X/%s" % n for n in other), other[0]) if other else "")
        raise MissingVariablesError(
            "use_ema=True, but %d trainable variable(s) have no %r copy in checkpoint %s%s:\n%s\nNothing was "
            "assigned. %sWas the TF1 model trained with tf.compat.v1.train.ExponentialMovingAverage over these "
            "variables? %s" % (len(without), suffix, prefix, " (no variable has one)" if not found else "",
                               "\n".join(without[:LIST_LIMIT]), hint,
                               "Pass ema_fallback=True to load their raw values instead." if found else
                               "Leave use_ema off to load the raw values."))
    return result


def _other_ema_names(keys: Iterable[str], mapped: List[str], suffix: str) -> List[str]:
    """Names X/<name> that the checkpoint has for most mapped keys X, other than optimizer slots: a
    moving average created with ExponentialMovingAverage(name=...)."""
    counts: Dict[str, int] = collections.Counter()
    for key in mapped:
        prefix = key + "/"
        counts.update({k[len(prefix):] for k in keys if k.startswith(prefix) and "/" not in k[len(prefix):]
                       and not is_training_state(k) and "/" + k[len(prefix):] != suffix})
    return [name for name, n in counts.most_common() if n * 2 >= len(mapped)]


# --- messages -------------------------------------------------------------------------------------

def _suggested_map_text(shapes: Mapping[str, Tuple[int, ...]], variables: Dict[str, Any], passed: NameMapping,
                        limit: int = 4) -> Optional[str]:
    """The map suggest_map proposes, shortened for a message; None if none, or the one passed."""
    model = {n: tuple(int(d) for d in v.shape) for n, v in variables.items()}
    suggestion = suggest_map(model, shapes).assignment_map
    if not suggestion or suggestion == passed:
        return None
    if len(suggestion) <= limit:
        return repr(suggestion)
    shown = dict(list(suggestion.items())[:limit])
    return "%r (+%d more entries: see klc.suggest_assignment_map)" % (shown, len(suggestion) - limit)


def missing_message(prefix: str, shapes: Mapping[str, Tuple[int, ...]], missing: List[str],
                     not_found: Dict[str, str], variables: Dict[str, Any]) -> str:
    lines = []
    for name in missing[:LIST_LIMIT]:
        key = not_found.get(name) or not_found.get(re.sub(r"/part_\d+$", "", name))
        if key is None:
            lines.append("  %s: no assignment map entry covers it" % name)
            continue
        close = closest_keys(key, list(shapes))
        lines.append("  %s <- %r is not in the checkpoint%s"
                     % (name, key, (" (closest: %s)" % ", ".join(close)) if close else ""))
    if len(missing) > LIST_LIMIT:
        lines.append("  ... and %d more" % (len(missing) - LIST_LIMIT))
    suggestion = _suggested_map_text(shapes, variables, None)
    hint = "the assignment map %s would match more; " % suggestion if suggestion else ""
    return ("%d model variable(s) would get no value from checkpoint %s:\n%s\nNothing was assigned. Fix: "
            "%spass ignore=[...] for variables that should keep their initial values, or "
            "strict=False to load what matches." % (len(missing), prefix, "\n".join(lines), hint))


def _top_scopes(names: Iterable[str], limit: int = 6) -> str:
    counts = collections.Counter(name.split("/", 1)[0] + ("/" if "/" in name else "") for name in names)
    shown = ["%s (%d)" % (scope, n) for scope, n in counts.most_common(limit)]
    return ", ".join(shown) + (", ..." if len(counts) > limit else "")


def nothing_loaded_message(prefix: str, shapes: Mapping[str, Tuple[int, ...]], assignment_map: NameMapping,
                            variables: Dict[str, Any], skipped: Dict[str, str], ignored: List[str]) -> str:
    """Why a warm start would assign nothing, with the scopes closest to what the map names."""
    lines = []
    if isinstance(assignment_map, Mapping):
        for ckpt_side in sorted(k for k in assignment_map if isinstance(k, str) and k.endswith("/") and k != "/"):
            if not any(key.startswith(ckpt_side) for key in shapes):
                close = difflib.get_close_matches(ckpt_side, sorted(_scopes_of(shapes)), n=3, cutoff=0.5)
                lines.append("  the checkpoint has no scope %r%s" % (
                    ckpt_side, " (closest: %s)" % ", ".join(close) if close else ""))
    if skipped:
        lines.append("  every mapped variable was skipped for its shape (on_shape_mismatch=\"skip\")")
    if ignored:
        lines.append("  %d variable(s) are ignored (ignore=...): %s" % (len(ignored), short_list(ignored, 4)))
    lines.append("  checkpoint scopes: %s" % _top_scopes(shapes))
    lines.append("  model scopes:      %s" % _top_scopes(variables))
    suggestion = _suggested_map_text(shapes, variables, assignment_map)
    fix = ("try the assignment map %s (klc.suggest_assignment_map proposes it)" % suggestion if suggestion
           else "check that this is the checkpoint of this model, map its scopes onto the model's, and that "
                "ignore=[...] leaves something to load")
    return ("The warm start from %s with assignment map %r would assign no variable:\n%s\nNothing was assigned "
            "(a warm start that loads nothing is an error, strict or not). Fix: %s."
            % (prefix, assignment_map, "\n".join(lines), fix))
