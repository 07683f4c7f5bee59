"""Our TensorFlow-free checkpoint protos and dtype tables agree with TensorFlow's, field by field."""

import numpy as np
import tensorflow as tf
from google.protobuf import descriptor
from tensorflow.core.framework import tensor_shape_pb2, tensor_slice_pb2, versions_pb2
from tensorflow.core.protobuf import tensor_bundle_pb2
from tensorflow.python.training import checkpoint_state_pb2

from keras_legacy_ckpt import _tf_protos, bundle_index, dtypes

PAIRS = [
    (_tf_protos.BundleHeaderProto, tensor_bundle_pb2.BundleHeaderProto),
    (_tf_protos.BundleEntryProto, tensor_bundle_pb2.BundleEntryProto),
    (_tf_protos.TensorShapeProto, tensor_shape_pb2.TensorShapeProto),
    (_tf_protos.TensorShapeProto.Dim, tensor_shape_pb2.TensorShapeProto.Dim),
    (_tf_protos.TensorSliceProto, tensor_slice_pb2.TensorSliceProto),
    (_tf_protos.TensorSliceProto.Extent, tensor_slice_pb2.TensorSliceProto.Extent),
    (_tf_protos.VersionDef, versions_pb2.VersionDef),
    (_tf_protos.CheckpointState, checkpoint_state_pb2.CheckpointState),
]


def _fields(message):
    out = {}
    for field in message.DESCRIPTOR.fields:
        kind = field.type
        if kind == descriptor.FieldDescriptor.TYPE_ENUM and field.name == "dtype":
            kind = descriptor.FieldDescriptor.TYPE_INT32  # ours holds DataType as int32: the same varint
        repeated = field.is_repeated if hasattr(field, "is_repeated") else field.label == field.LABEL_REPEATED
        oneof = field.containing_oneof.name if field.containing_oneof else None
        out[field.name] = (field.number, kind, repeated, oneof is not None)
    return out


def test_every_field_matches_tensorflows():
    for ours, theirs in PAIRS:
        assert _fields(ours) == _fields(theirs), theirs.DESCRIPTOR.full_name
    assert _tf_protos.BundleHeaderProto.BIG == tensor_bundle_pb2.BundleHeaderProto.BIG


def test_real_index_entries_parse_the_same_and_reserialize_byte_for_byte(mlp_ckpt):
    prefix, _ = mlp_ckpt
    index = bundle_index.read_bundle_index(prefix)
    reader = tf.train.load_checkpoint(prefix)
    for key, entry in index.entries.items():
        theirs = tensor_bundle_pb2.BundleEntryProto.FromString(entry.SerializeToString())
        assert theirs.SerializeToString() == entry.SerializeToString()
        record = index.records[key]
        assert record.shape == tuple(d.size for d in theirs.shape.dim) == tuple(reader.get_variable_to_shape_map()[
            key.decode()])
        assert (record.dtype, record.offset, record.size, record.crc32c) == (theirs.dtype, theirs.offset, theirs.size,
                                                                            theirs.crc32c)
    header = tensor_bundle_pb2.BundleHeaderProto.FromString(index.header.SerializeToString())
    assert header.num_shards == index.num_shards and header.version.producer == 1


def test_dtype_tables_match_tf_as_dtype():
    for enum in range(1, 34):
        dtype = tf.as_dtype(enum)
        assert dtypes.dtype_name(enum) == dtype.name and dtypes.itemsize(enum) == dtype.size, enum
        if enum in dtypes.NUMPY and dtype != tf.string:
            assert dtypes.NUMPY[enum] == np.dtype(dtype.as_numpy_dtype), enum
    assert dtypes.itemsize(99) is None and dtypes.dtype_name(99) == "DataType(99)"
