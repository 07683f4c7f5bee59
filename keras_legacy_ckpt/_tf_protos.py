"""TensorFlow's checkpoint protos, defined here so that reading a checkpoint needs no TensorFlow.

The messages a TF1 checkpoint is made of (`tensor_bundle.proto`, `tensor_shape.proto`,
`tensor_slice.proto`, `versions.proto`, `checkpoint_state.proto`), with TensorFlow's field numbers
and types, built at import in a descriptor pool of their own (package `klc_tf`, so they never clash
with TensorFlow's when both are loaded). The wire and text formats are TensorFlow's:
`tests/test_tf_protos.py` checks each field against TensorFlow's descriptors and round-trips real
checkpoints. `dtype` is a plain int32 holding TensorFlow's `DataType` number (the same varint on the
wire); the numbers we use are in `DT_*` below.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

# TensorFlow's DataType numbers (tensorflow/core/framework/types.proto).
DT_INVALID, DT_FLOAT, DT_DOUBLE, DT_INT32, DT_UINT8, DT_INT16, DT_INT8, DT_STRING = 0, 1, 2, 3, 4, 5, 6, 7
DT_COMPLEX64, DT_INT64, DT_BOOL = 8, 9, 10
DT_BFLOAT16, DT_UINT16, DT_COMPLEX128, DT_HALF, DT_RESOURCE, DT_VARIANT, DT_UINT32, DT_UINT64 = (
    14, 17, 18, 19, 20, 21, 22, 23)

_F = descriptor_pb2.FieldDescriptorProto
# (name, number, type, repeated, message type or None)
_MESSAGES = {
    "TensorShapeProto.Dim": [("size", 1, _F.TYPE_INT64, False, None), ("name", 2, _F.TYPE_STRING, False, None)],
    "TensorShapeProto": [("dim", 2, _F.TYPE_MESSAGE, True, "TensorShapeProto.Dim"),
                         ("unknown_rank", 3, _F.TYPE_BOOL, False, None)],
    "TensorSliceProto.Extent": [("start", 1, _F.TYPE_INT64, False, None),
                                ("length", 2, _F.TYPE_INT64, False, None)],  # in oneof has_length
    "TensorSliceProto": [("extent", 1, _F.TYPE_MESSAGE, True, "TensorSliceProto.Extent")],
    "VersionDef": [("producer", 1, _F.TYPE_INT32, False, None), ("min_consumer", 2, _F.TYPE_INT32, False, None),
                   ("bad_consumers", 3, _F.TYPE_INT32, True, None)],
    "BundleHeaderProto": [("num_shards", 1, _F.TYPE_INT32, False, None),
                          ("endianness", 2, _F.TYPE_ENUM, False, "BundleHeaderProto.Endianness"),
                          ("version", 3, _F.TYPE_MESSAGE, False, "VersionDef")],
    "BundleEntryProto": [("dtype", 1, _F.TYPE_INT32, False, None),
                         ("shape", 2, _F.TYPE_MESSAGE, False, "TensorShapeProto"),
                         ("shard_id", 3, _F.TYPE_INT32, False, None), ("offset", 4, _F.TYPE_INT64, False, None),
                         ("size", 5, _F.TYPE_INT64, False, None), ("crc32c", 6, _F.TYPE_FIXED32, False, None),
                         ("slices", 7, _F.TYPE_MESSAGE, True, "TensorSliceProto")],
    "CheckpointState": [("model_checkpoint_path", 1, _F.TYPE_STRING, False, None),
                        ("all_model_checkpoint_paths", 2, _F.TYPE_STRING, True, None),
                        ("all_model_checkpoint_timestamps", 3, _F.TYPE_DOUBLE, True, None),
                        ("last_preserved_timestamp", 4, _F.TYPE_DOUBLE, False, None)],
}
_PACKAGE = "klc_tf"


def _file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(name="keras_legacy_ckpt/tf_checkpoint.proto", package=_PACKAGE,
                                              syntax="proto3")
    made = {}
    for full_name in sorted(_MESSAGES, key=lambda n: n.count(".")):  # parents before nested messages
        outer, _, inner = full_name.partition(".")
        if inner:
            made[full_name] = made[outer].nested_type.add(name=inner)
        else:
            made[full_name] = file.message_type.add(name=outer)
    made["BundleHeaderProto"].enum_type.add(name="Endianness").value.extend(
        [descriptor_pb2.EnumValueDescriptorProto(name="LITTLE", number=0),
         descriptor_pb2.EnumValueDescriptorProto(name="BIG", number=1)])
    for full_name, fields in _MESSAGES.items():
        message = made[full_name]
        for name, number, kind, repeated, type_name in fields:
            field = message.field.add(name=name, number=number, type=kind,
                                      label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL)
            if type_name:
                field.type_name = ".%s.%s" % (_PACKAGE, type_name)
    extent = made["TensorSliceProto.Extent"]
    extent.oneof_decl.add(name="has_length")
    extent.field[1].oneof_index = 0
    return file


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_file_descriptor())


def _message(name: str):
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName("%s.%s" % (_PACKAGE, name)))


BundleHeaderProto = _message("BundleHeaderProto")
BundleEntryProto = _message("BundleEntryProto")
TensorShapeProto = _message("TensorShapeProto")
TensorSliceProto = _message("TensorSliceProto")
VersionDef = _message("VersionDef")
CheckpointState = _message("CheckpointState")
