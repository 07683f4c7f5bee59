"""The error hierarchy of keras_legacy_ckpt.

Every error is a `LegacyCheckpointError`, which is a `ValueError`, so code that
already catches `ValueError` around TensorFlow's checkpoint helpers keeps working.
Messages name the file or variable involved and end with a suggested fix.
"""


class LegacyCheckpointError(ValueError):
    """Base class of every error raised by keras_legacy_ckpt."""


class CheckpointNotFoundError(LegacyCheckpointError):
    """The checkpoint prefix, directory or state file does not exist."""


class CorruptCheckpointError(LegacyCheckpointError):
    """A checkpoint file is truncated, damaged or not a TF checkpoint at all."""


class AssignmentMapError(LegacyCheckpointError):
    """An assignment map or rename mapping is malformed whatever the checkpoint holds."""


class ShapeMismatchError(LegacyCheckpointError):
    """A checkpoint tensor's shape differs from the variable it is mapped to."""


class DTypeMismatchError(LegacyCheckpointError):
    """A checkpoint tensor's dtype differs from the variable it is mapped to."""


class MissingVariablesError(LegacyCheckpointError):
    """Model variables inside the mapped scopes would get no checkpoint value."""


class DuplicateVariableNameError(LegacyCheckpointError):
    """Two or more variables share one legacy (TF1) name."""
