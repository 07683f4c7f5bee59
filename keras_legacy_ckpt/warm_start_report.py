"""What a warm start did: `WarmStartReport`, the same for every backend (TensorFlow-free)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Dict, List, Optional, Sequence

LIST_LIMIT = 20  # names listed in a summary or error message before "... and N more"

# Training state a warm start leaves behind: TF1 optimizer slots (and BERT's AdamWeightDecay
# `adam_m`/`adam_v`), moving averages, step counters.
_OPTIMIZER_STATE = re.compile(
    r"(/(Adam|Adam_\d+|Momentum|RMSProp|RMSProp_\d+|Adagrad|Adadelta|Adadelta_\d+|Ftrl|Ftrl_\d+|adam_m|adam_v|"
    r"ExponentialMovingAverage)$)|(^|/)(beta1_power|beta2_power|global_step)$")


def is_training_state(key: str) -> bool:
    """Whether checkpoint key `key` is optimizer or step state rather than a model weight."""
    return bool(_OPTIMIZER_STATE.search(key))


def human_bytes(n: float) -> str:
    """1536 -> "1.5 KiB"."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return "%d %s" % (n, unit) if unit == "B" else "%.1f %s" % (n, unit)
        n /= 1024.0
    return ""


def short_list(names: Sequence[str], limit: int = LIST_LIMIT) -> str:
    shown = ", ".join(names[:limit])
    return shown + (", ... and %d more" % (len(names) - limit) if len(names) > limit else "")


@dataclasses.dataclass
class WarmStartReport:
    """What a warm start did.

    Attributes:
        checkpoint: the checkpoint prefix that was read.
        loaded: model legacy name -> checkpoint key, for every variable assigned.
        missing: model variables inside the map's scopes that got no value.
        unused: checkpoint keys no variable took (optimizer slots, global_step, ...).
        ignored: model variables left alone because an `ignore` pattern matched.
        skipped: model name -> why, for variables left as initialised by
            `on_shape_mismatch="skip"`.
        casts: model name -> "float16 -> float32", for tensors cast by
            `on_dtype_mismatch="cast"`.
        bytes_loaded: bytes of tensor data assigned.
        optimizer_state: what was migrated into the optimizer (`optimizer_state=...`), or None.
        ema_name: the moving averages' name when `use_ema` was on, else None.
        transforms: model name -> the transpose, reshape or vocabulary remap applied.
    """

    checkpoint: str
    loaded: Dict[str, str] = dataclasses.field(default_factory=dict)
    missing: List[str] = dataclasses.field(default_factory=list)
    unused: List[str] = dataclasses.field(default_factory=list)
    ignored: List[str] = dataclasses.field(default_factory=list)
    skipped: Dict[str, str] = dataclasses.field(default_factory=dict)
    casts: Dict[str, str] = dataclasses.field(default_factory=dict)
    bytes_loaded: int = 0
    optimizer_state: Optional[str] = None
    assignment_map: Any = None
    ema_name: Optional[str] = None
    transforms: Dict[str, str] = dataclasses.field(default_factory=dict)

    def summary(self) -> str:
        """A one-screen, human-readable account of the warm start."""
        used = len(set(self.loaded.values()))
        lines = ["Warm start from %s (assignment map: %r)" % (self.checkpoint, self.assignment_map),
                 "  loaded:  %d variables, %s, from %d of %d checkpoint tensors"
                 % (len(self.loaded), human_bytes(self.bytes_loaded), used, used + len(self.unused))]
        if self.missing:
            lines.append("  missing: %d variables left as initialised: %s"
                         % (len(self.missing), short_list(self.missing)))
        if self.ignored:
            lines.append("  ignored: %d variables: %s" % (len(self.ignored), short_list(self.ignored)))
        if self.skipped:
            lines.append("  skipped: %d variables left as initialised (shape mismatch): %s"
                         % (len(self.skipped), short_list(sorted(self.skipped))))
        if self.casts:
            lines.append("  cast:    %d tensors: %s" % (len(self.casts), short_list(
                ["%s (%s)" % kv for kv in sorted(self.casts.items())])))
        if self.optimizer_state:
            lines.append("  optimizer: %s" % self.optimizer_state)
        if self.ema_name:
            ema = sorted({k for k in self.loaded.values() if k.endswith("/" + self.ema_name)})
            lines.append("  ema:     %d variables took their %s" % (len(ema), self.ema_name))
        if self.transforms:
            lines.append("  transformed: %s" % short_list(["%s (%s)" % kv for kv in sorted(self.transforms.items())], 4))
        optimizer = [k for k in self.unused if is_training_state(k)]
        other = [k for k in self.unused if not is_training_state(k)]
        if optimizer:
            lines.append("  unused:  %d optimizer/step tensors (%s)" % (len(optimizer), short_list(optimizer, 4)))
        if other:
            lines.append("  unused:  %d other tensors: %s" % (len(other), short_list(other)))
        return "\n".join(lines)
