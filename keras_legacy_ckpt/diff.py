"""`diff_checkpoints`: what differs between two TF1 checkpoints, read one tensor pair at a time.

```python
import keras_legacy_ckpt as klc

diff = klc.diff_checkpoints("/old/model.ckpt-1000", "/new/model.ckpt", {"/": "backbone/"})
diff.identical                  # False
diff.max_abs_diff               # {"backbone/net/hidden/kernel": 0.0123, "backbone/global_step": 0.0, ...}
print(diff.summary())
```

Names: `mapping` renames A's names to B's as `rename_checkpoint` does (the same planner, so the same
forms and errors); every name in the result is B's, except `only_in_a` (A's own names) and `ignored` (A's
names the mapping or `exclude` dropped). Both checkpoints are opened with `open_checkpoint` and each pair is
read, compared and dropped before the next (crc32c checked; partitioned variables whole).

Values: the max absolute difference is computed in float64 (complex128 for complex tensors: the modulus
of the difference), in chunks of 1M elements, so memory is the two tensors plus a few MB. Integer tensors of
one kind are compared exactly (int64 values above 2**53 that differ by 1 give 1.0, not 0.0). Where both
values are equal (inf == inf; 0.0 == -0.0) the difference is 0; where both are NaN it is 0 (equal NaN
positions count as equal, whatever the payload); where only one is NaN it is inf. String tensors are
compared element by element: 0.0 when equal, inf when not. A pair whose shapes differ is not compared
(`shape_changed`); a pair whose dtypes differ is listed in `dtype_changed` and compared numerically when
both are numbers or bool (strings against numbers are not compared).
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np

from keras_legacy_ckpt.tf1_checkpoint import open_checkpoint

__all__ = ["CheckpointDiff", "diff_checkpoints"]

_CHUNK = 1 << 20  # elements per comparison step: the float64 temporaries stay at a few MB
_TENSORFLOW_ONLY = {"resource", "variant"}


@dataclasses.dataclass(frozen=True)
class CheckpointDiff:
    """The differences between checkpoints `a` and `b` (names are B's, after the mapping).

    Attributes:
        a, b: the two checkpoint prefixes.
        only_in_a: A's names (its own) with no tensor of their mapped name in B, sorted.
        only_in_b: B's names no A tensor maps to, sorted.
        shape_changed: {name: (shape in A, shape in B)}; these pairs are not compared.
        dtype_changed: {name: (dtype in A, dtype in B)} (TensorFlow's dtype names).
        max_abs_diff: {name: float} for every compared pair, zeros included.
        pairs: {name: A's name} for every name found on both sides (compared or not).
        ignored: A's names that the mapping (None) or `exclude` dropped, B's that `exclude` dropped, and
            pairs of TensorFlow variant/resource tensors (a dataset iterator's state), which only TensorFlow reads.
    """

    a: str
    b: str
    only_in_a: List[str]
    only_in_b: List[str]
    shape_changed: Dict[str, Tuple[Tuple[int, ...], Tuple[int, ...]]]
    dtype_changed: Dict[str, Tuple[str, str]]
    max_abs_diff: Dict[str, float]
    pairs: Dict[str, str]
    ignored: List[str] = dataclasses.field(default_factory=list)

    @property
    def differing(self) -> Dict[str, float]:
        """{name: max abs diff} of the compared pairs whose values differ."""
        return {name: value for name, value in self.max_abs_diff.items() if value != 0.0}

    @property
    def identical(self) -> bool:
        """True when both hold the same names (after the mapping), shapes, dtypes and values."""
        return not (self.only_in_a or self.only_in_b or self.shape_changed or self.dtype_changed or self.differing)

    def summary(self) -> str:
        """One line per difference ("-" only in A, "+" only in B, "!" shape or dtype changed, "~" values
        differ), then a total line."""
        def name_of(name: str) -> str:
            old = self.pairs.get(name, name)
            return name if old == name else "%s (A: %s)" % (name, old)

        lines = ["--- A %s" % self.a, "+++ B %s" % self.b]
        lines += ["- %s   only in A" % name for name in self.only_in_a]
        lines += ["+ %s   only in B" % name for name in self.only_in_b]
        for name, (shape_a, shape_b) in sorted(self.shape_changed.items()):
            lines.append("! %s   shape %s -> %s" % (name_of(name), _shape_text(shape_a), _shape_text(shape_b)))
        for name, (dtype_a, dtype_b) in sorted(self.dtype_changed.items()):
            value = self.max_abs_diff.get(name)
            lines.append("! %s   dtype %s -> %s%s" % (name_of(name), dtype_a, dtype_b,
                                                      "" if value is None else ", max abs diff %.6g" % value))
        for name, value in sorted(self.differing.items()):
            if name not in self.dtype_changed:
                lines.append("~ %s   max abs diff %.6g" % (name_of(name), value))
        compared = len(self.max_abs_diff)
        differing = len(self.differing)
        parts = ["%d compared: %d equal, %d differ" % (compared, compared - differing, differing)]
        for count, what in ((len(self.only_in_a), "only in A"), (len(self.only_in_b), "only in B"),
                            (len(self.shape_changed), "shape changed"), (len(self.dtype_changed), "dtype changed"),
                            (len(self.ignored), "ignored")):
            if count:
                parts.append("%d %s" % (count, what))
        lines.append("%s (%s)" % ("identical" if self.identical else "different", "; ".join(parts)))
        return "\n".join(lines)


def _shape_text(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


# --- comparing values ---------------------------------------------------------------------------------

def _plain(array: np.ndarray) -> np.ndarray:
    """A quantized tensor (numpy's one-field record: qint8, ...) as its integer field."""
    if array.dtype.names:
        return array[array.dtype.names[0]]
    return array


def _is_integer(dtype: np.dtype) -> bool:
    return dtype.kind in "biu"


def _integer_max_diff(x: np.ndarray, y: np.ndarray) -> float:
    """Exact max |x - y| of two integer (or bool) arrays, as a float."""
    unsigned = {x.dtype.kind, y.dtype.kind} <= {"u", "b"}
    if not unsigned and np.uint64 in (x.dtype.type, y.dtype.type):  # uint64 against signed: Python ints
        best = 0
        for start in range(0, x.size, _CHUNK):
            a = x[start:start + _CHUNK].astype(object)
            b = y[start:start + _CHUNK].astype(object)
            if a.size:
                best = max(best, int(np.max(np.abs(a - b))))
        return float(best)
    wide = np.uint64 if unsigned else np.int64
    best = 0
    for start in range(0, x.size, _CHUNK):
        a = x[start:start + _CHUNK].astype(wide)
        b = y[start:start + _CHUNK].astype(wide)
        if a.size:
            # max - min as uint64 is exact: the true difference is below 2**64, and wraps agree modulo 2**64.
            diff = np.maximum(a, b).astype(np.uint64) - np.minimum(a, b).astype(np.uint64)
            best = max(best, int(diff.max()))
    return float(best)


def _float_max_diff(x: np.ndarray, y: np.ndarray) -> float:
    kind = np.complex128 if "c" in (x.dtype.kind, y.dtype.kind) else np.float64
    best = 0.0
    with np.errstate(invalid="ignore", over="ignore"):
        for start in range(0, x.size, _CHUNK):
            a = x[start:start + _CHUNK].astype(kind)
            b = y[start:start + _CHUNK].astype(kind)
            if not a.size:
                continue
            diff = np.abs(a - b)
            nan_a, nan_b = np.isnan(a), np.isnan(b)
            diff[(a == b) | (nan_a & nan_b)] = 0.0  # inf == inf, and NaN where both are NaN
            diff[nan_a ^ nan_b] = math.inf
            best = max(best, float(diff.max()))
            if best == math.inf:
                break
    return best


def max_abs_diff(x: np.ndarray, y: np.ndarray) -> Optional[float]:
    """max |x - y| over two arrays of one shape (0.0 for empty ones), or None when they cannot be compared
    (strings against numbers). See the module docstring for NaN, inf and strings."""
    x, y = _plain(x), _plain(y)
    if x.dtype == object or y.dtype == object:
        if x.dtype != y.dtype:
            return None
        return 0.0 if all(a == b for a, b in zip(x.reshape(-1), y.reshape(-1))) else math.inf
    x, y = x.reshape(-1), y.reshape(-1)
    if _is_integer(x.dtype) and _is_integer(y.dtype):
        return _integer_max_diff(x, y)
    return _float_max_diff(x, y)


# --- the diff -----------------------------------------------------------------------------------------

def diff_checkpoints(a: "str | os.PathLike[str]", b: "str | os.PathLike[str]", mapping=None, *,
                     exclude: Iterable[str] = ()) -> CheckpointDiff:
    """Compares checkpoints `a` and `b` tensor by tensor, streaming (one pair in memory at a time).

    ```python
    diff = klc.diff_checkpoints("/old/model.ckpt-1000", "/new/model.ckpt", {"/": "backbone/"})
    if not diff.identical:
        print(diff.summary())
    ```

    Args:
        a, b: TF1 checkpoints (any form `open_checkpoint` takes: prefix, file, directory; local or remote;
            V2 or V1).
        mapping: renames A's names to B's, with the forms and rules of `rename_checkpoint` (a dict of names
            or scopes ending in "/", a list of (regex, replacement) rules, a callable; names it does not
            cover keep their name). A name mapped to None is left out of the comparison (`ignored`).
        exclude: regexes (re.search) of names to leave out: A's names (before the mapping) and B's.

    Returns:
        a CheckpointDiff: `.only_in_a`, `.only_in_b`, `.shape_changed`, `.dtype_changed`, `.max_abs_diff`
        (every compared pair, zeros included), `.identical`, `.summary()`.
    """
    from keras_legacy_ckpt.assignment_map import compile_patterns
    from keras_legacy_ckpt.rename import plan_rename  # the same renaming rules as rename_checkpoint

    with open_checkpoint(a) as ckpt_a, open_checkpoint(b) as ckpt_b:
        plan = plan_rename(ckpt_a.prefix, mapping, exclude=exclude)
        excluded = compile_patterns(exclude, "exclude")
        names_b = [n for n in ckpt_b.keys() if not any(p.search(n) for p in excluded)]
        ignored = sorted(set(plan.dropped) | (set(ckpt_b.keys()) - set(names_b)))
        present = set(names_b)
        pairs = {new: old for old, new in plan.renames.items() if new in present}
        only_in_a = sorted(old for old, new in plan.renames.items() if new not in present)
        only_in_b = sorted(n for n in names_b if n not in pairs)
        shape_changed: Dict[str, Tuple[Tuple[int, ...], Tuple[int, ...]]] = {}
        dtype_changed: Dict[str, Tuple[str, str]] = {}
        diffs: Dict[str, float] = {}
        for name in sorted(pairs):
            old = pairs[name]
            shape_a, shape_b = tuple(ckpt_a.shape(old)), tuple(ckpt_b.shape(name))
            dtype_a, dtype_b = ckpt_a.dtype_name(old), ckpt_b.dtype_name(name)
            if dtype_a != dtype_b:
                dtype_changed[name] = (dtype_a, dtype_b)
            if shape_a != shape_b:
                shape_changed[name] = (shape_a, shape_b)
                continue
            if dtype_a != dtype_b and (dtype_a == "string") != (dtype_b == "string"):
                continue  # strings against numbers: nothing to subtract
            if {dtype_a, dtype_b} & _TENSORFLOW_ONLY:
                ignored.append(name)  # a dataset iterator's state, say: only TensorFlow can read it
                continue
            value = max_abs_diff(ckpt_a.read(old), ckpt_b.read(name))
            if value is not None:
                diffs[name] = value
        return CheckpointDiff(ckpt_a.prefix, ckpt_b.prefix, only_in_a, only_in_b, shape_changed, dtype_changed,
                              diffs, pairs, sorted(set(ignored)))
