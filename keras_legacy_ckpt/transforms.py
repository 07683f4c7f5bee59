"""Tensor transforms in a warm start: transpose, reshape, and vocabulary remapping of embedding rows.

A transform turns a checkpoint tensor into the value of a model variable whose layout
differs: a kernel stored transposed, a flattened kernel, or an embedding whose vocabulary
changed (`tf.compat.v1.train.VocabInfo` in `tf.compat.v1.train.warm_start`). The warm
start plans every transform before it assigns anything: each gives the shape the tensor
will have, which is then checked against the variable like any other shape.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from typing import Callable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from keras_legacy_ckpt.assignment_map import compile_patterns
from keras_legacy_ckpt.errors import AssignmentMapError
from keras_legacy_ckpt.warm_start_plan import (VocabInfo, check_rules_match, check_vocab_remap,  # noqa: F401
                                               resolved_shape, transform_for)

Shape = Tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class PlannedTransform:
    """The shape a checkpoint tensor takes, and the function that makes it so."""

    description: str
    shape: Shape
    apply: Callable[[tf.Tensor], tf.Tensor]


@dataclasses.dataclass
class Transforms:
    """The transpose/reshape rules ({regex on model name: perm or shape}) and vocabulary remaps
    ({model variable name: VocabInfo}) of one warm start."""

    transpose: Mapping[str, Sequence[int]] = dataclasses.field(default_factory=dict)
    reshape: Mapping[str, Sequence[int]] = dataclasses.field(default_factory=dict)
    vocab_remap: Mapping[str, VocabInfo] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self._transpose = [(p, tuple(int(d) for d in perm)) for p, perm in
                           zip(compile_patterns(list(self.transpose), "transpose"), self.transpose.values())]
        self._reshape = [(p, tuple(int(d) for d in shape)) for p, shape in
                         zip(compile_patterns(list(self.reshape), "reshape"), self.reshape.values())]
        check_vocab_remap(self.vocab_remap)

    def __bool__(self) -> bool:
        return bool(self.transpose or self.reshape or self.vocab_remap)

    def check_names(self, model_names: Sequence[str]) -> None:
        """A vocab_remap name must be a model variable (a partitioned one by its full name), and every
        transpose/reshape pattern must match one: a mistyped pattern on a square kernel would otherwise
        load it untransposed, and no shape check could tell."""
        check_rules_match(self._transpose, "transpose", model_names)
        check_rules_match(self._reshape, "reshape", model_names)
        known = set(model_names) | {n.rsplit("/part_", 1)[0] for n in model_names if "/part_" in n}
        unknown = sorted(set(self.vocab_remap) - known)
        if unknown:
            raise AssignmentMapError(
                "vocab_remap names %s, which %s no variable of the model (a partitioned variable is named by its "
                "full name, without /part_N)." % (", ".join(map(repr, unknown)), "is" if len(unknown) == 1 else "are"))

    def plan(self, model_name: str, key: str, tensor_shape: Shape, model_shape: Shape) -> Optional[PlannedTransform]:
        """The transform of checkpoint tensor `key` for model variable `model_name`, if any."""
        extra = [("vocab_remap", self.vocab_remap[model_name])] if model_name in self.vocab_remap else []
        found = transform_for(model_name, (("transpose", self._transpose), ("reshape", self._reshape)), extra)
        if found is None:
            return None
        what, value = found
        if what == "transpose":
            return _transpose(key, tensor_shape, value)
        if what == "reshape":
            return _reshape(key, tensor_shape, value)
        return _vocab_remap(model_name, key, tensor_shape, model_shape, value)


def _transpose(key: str, shape: Shape, perm: Shape) -> PlannedTransform:
    if sorted(perm) != list(range(len(shape))):
        raise AssignmentMapError("transpose %r for %r (shape %s) is not a permutation of its %d axes."
                                 % (perm, key, shape, len(shape)))
    return PlannedTransform("transpose %s" % (perm,), tuple(shape[i] for i in perm),
                            lambda value: tf.transpose(value, perm))


def _reshape(key: str, shape: Shape, target: Shape) -> PlannedTransform:
    count = math.prod(shape)
    resolved = resolved_shape(count, target)
    if resolved is None:
        raise AssignmentMapError("Cannot reshape %r of shape %s (%d elements) to %s." % (key, shape, count, target))
    return PlannedTransform("reshape %s" % (resolved,), resolved, lambda value: tf.reshape(value, resolved))


def _read_vocab(path: str) -> List[str]:
    try:
        with tf.io.gfile.GFile(path, "r") as f:
            words = [line.rstrip("\r\n") for line in f]
    except tf.errors.OpError as e:
        raise AssignmentMapError("Cannot read vocabulary file %s: %s." % (path, e.message.splitlines()[0])) from None
    return words


def _vocab_remap(model_name: str, key: str, shape: Shape, model_shape: Shape, info: VocabInfo) -> PlannedTransform:
    axis = info.axis
    if len(shape) <= axis or len(model_shape) != len(shape):
        raise AssignmentMapError("vocab_remap[%r]: checkpoint tensor %r of shape %s has no axis %d matching the "
                                 "variable's shape %s." % (model_name, key, shape, axis, model_shape))
    new_size = model_shape[axis] - info.num_oov_buckets
    if new_size <= 0:
        raise AssignmentMapError("vocab_remap[%r]: the variable has %d rows along axis %d, no more than its %d OOV "
                                 "buckets." % (model_name, model_shape[axis], axis, info.num_oov_buckets))
    new_words = _read_vocab(info.new_vocab)
    if len(new_words) < new_size:
        raise AssignmentMapError("vocab_remap[%r]: %s has %d words, fewer than the variable's vocabulary of %d (its "
                                 "size %d along axis %d minus %d OOV buckets)." % (
                                     model_name, info.new_vocab, len(new_words), new_size, model_shape[axis], axis,
                                     info.num_oov_buckets))
    duplicates = sorted(w for w, n in collections.Counter(new_words[:new_size]).items() if n > 1)
    if duplicates:  # TF's warm_start refuses these too (one old row cannot go to two new ids)
        raise AssignmentMapError("vocab_remap[%r]: %s lists %s more than once." % (
            model_name, info.new_vocab, ", ".join(map(repr, duplicates[:5]))))
    old_words = _read_vocab(info.old_vocab)
    if info.old_vocab_size > len(old_words):
        raise AssignmentMapError("vocab_remap[%r]: old_vocab_size=%d, but %s has %d words." % (
            model_name, info.old_vocab_size, info.old_vocab, len(old_words)))
    old_words = old_words if info.old_vocab_size < 0 else old_words[:info.old_vocab_size]
    if len(old_words) > shape[axis]:
        raise AssignmentMapError("vocab_remap[%r]: %s has %d words but checkpoint tensor %r only %d rows along axis "
                                 "%d; pass old_vocab_size." % (model_name, info.old_vocab, len(old_words), key,
                                                                shape[axis], axis))
    old_index = {}
    for index, word in enumerate(old_words):
        old_index.setdefault(word, index)
    rows = np.array([old_index.get(word, -1) for word in new_words[:new_size]] + [-1] * info.num_oov_buckets,
                    np.int64)
    new_shape = tuple(model_shape[axis] if i == axis else d for i, d in enumerate(shape))
    found = rows >= 0

    def remap(value: tf.Tensor) -> tf.Tensor:
        taken = tf.gather(value, np.maximum(rows, 0), axis=axis)
        backup = (info.backup_initializer(new_shape, value.dtype) if info.backup_initializer is not None
                  else tf.zeros(new_shape, value.dtype))
        mask_shape = [-1 if i == axis else 1 for i in range(len(new_shape))]
        return tf.where(tf.reshape(found, mask_shape), taken, tf.cast(backup, value.dtype))

    return PlannedTransform("vocab_remap (%d of %d words found, %d OOV buckets)" % (
        int(found.sum()), new_size, info.num_oov_buckets), new_shape, remap)

