"""TensorFlow's dtypes by their `DataType` number, without TensorFlow: names, numpy dtypes, sizes.

A checkpoint stores each tensor's dtype as TensorFlow's enum number (types.proto). These tables give
what `tf.as_dtype(number)` gives (`.name`, `.as_numpy_dtype`, `.size`), checked against TensorFlow in
tests/test_tf_protos.py; bfloat16, float8, int4 and the other narrow floats come from ml_dtypes.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from keras_legacy_ckpt._tf_protos import DT_RESOURCE, DT_STRING, DT_VARIANT

NAMES = {
    1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 7: "string", 8: "complex64",
    9: "int64", 10: "bool", 11: "qint8", 12: "quint8", 13: "qint32", 14: "bfloat16", 15: "qint16",
    16: "quint16", 17: "uint16", 18: "complex128", 19: "float16", 20: "resource", 21: "variant", 22: "uint32",
    23: "uint64", 24: "float8_e5m2", 25: "float8_e4m3fn", 26: "float8_e4m3fnuz", 27: "float8_e4m3b11fnuz",
    28: "float8_e5m2fnuz", 29: "int4", 30: "uint4", 31: "int2", 32: "uint2", 33: "float4_e2m1fn",
}
# Tensors of these dtypes are not their memory on disk (strings: lengths then bytes).
ENCODED = frozenset((DT_STRING, DT_RESOURCE, DT_VARIANT))


# Bytes per element, as `tf.as_dtype(enum).size` (numpy is not imported for these: `inspect` never needs it).
_SIZES = {1: 4, 2: 8, 3: 4, 4: 1, 5: 2, 6: 1, 8: 8, 9: 8, 10: 1, 11: 1, 12: 1, 13: 4, 14: 2, 15: 2, 16: 2, 17: 2,
          18: 16, 19: 2, 22: 4, 23: 8, 24: 1, 25: 1, 26: 1, 27: 1, 28: 1, 29: 1, 30: 1, 31: 1, 32: 1, 33: 1}


def _numpy_dtypes() -> Dict[int, Any]:
    import ml_dtypes
    import numpy as np

    table = {
        1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8, 7: object,
        8: np.complex64, 9: np.int64, 10: np.bool_, 17: np.uint16, 18: np.complex128, 19: np.float16,
        22: np.uint32, 23: np.uint64,
        # TensorFlow's quantized types are these one-field records in numpy.
        11: [("qint8", np.int8)], 12: [("quint8", np.uint8)], 13: [("qint32", np.int32)],
        15: [("qint16", np.int16)], 16: [("quint16", np.uint16)],
    }
    for enum in (14, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33):  # ml_dtypes: bfloat16, float8, int4, ...
        kind = getattr(ml_dtypes, NAMES[enum], None)
        if kind is not None:
            table[enum] = kind
    return {enum: np.dtype(kind) for enum, kind in table.items()}


_numpy: Optional[Dict[int, Any]] = None


def __getattr__(name: str) -> Any:
    # NUMPY, {enum: numpy dtype}, is built on first use: importing numpy and ml_dtypes takes 0.15 s.
    global _numpy
    if name == "NUMPY":
        if _numpy is None:
            _numpy = _numpy_dtypes()
        return _numpy
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


def dtype_name(enum: int) -> str:
    """TensorFlow's name of dtype `enum` ("float32"), or "DataType(N)" for a number TensorFlow does not have."""
    return NAMES.get(enum, "DataType(%d)" % enum)


def itemsize(enum: int) -> Optional[int]:
    """Bytes per element as TensorFlow counts them (`tf.as_dtype(enum).size`; 0 for strings, resources and
    variants), or None for an unknown dtype."""
    if enum in ENCODED:
        return 0
    return _SIZES.get(enum)
