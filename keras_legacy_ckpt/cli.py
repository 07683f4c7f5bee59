"""The `keras-legacy-ckpt` command line: inspect, plan and rename TF1 checkpoints.

    keras-legacy-ckpt inspect CKPT
    keras-legacy-ckpt verify CKPT
    keras-legacy-ckpt plan CKPT --model MODEL_CKPT_OR_NAMES_FILE [--map "ckpt/=model/"]
    keras-legacy-ckpt rename SRC DST --map "old/=new/" [--regex "PATTERN=>REPL"] [--exclude REGEX] [--dry_run]
"""

from __future__ import annotations

import math
import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
COMMANDS = ("inspect", "plan", "rename", "verify")

flags.DEFINE_multi_string("map", [], "Name map entries 'old=new' or scopes 'old_scope/=new_scope/', comma "
                          "separated; repeatable. For plan: checkpoint scope = model scope, as in "
                          "init_from_checkpoint. For rename, 'old=' drops old.")
flags.DEFINE_multi_string("regex", [], "A rename rule 'PATTERN=>REPLACEMENT' (Python re.sub syntax, \\1 for "
                          "groups) applied to names no --map entry covers; the first matching rule wins; "
                          "repeatable.")
flags.DEFINE_multi_string("exclude", [], "rename: drop source tensors whose name matches this regex (re.search), "
                          "e.g. '/Adam(_1)?$' for Adam slots; repeatable.")
flags.DEFINE_multi_string("transpose", [], "rename: 'REGEX=1,0' transposes tensors whose new name matches.")
flags.DEFINE_multi_string("reshape", [], "rename: 'REGEX=2,3,4' reshapes tensors whose new name matches.")
flags.DEFINE_bool("dry_run", False, "rename: print old -> new without writing anything.")
flags.DEFINE_bool("verify", False, "rename: check every tensor's crc32c before writing.")
flags.DEFINE_bool("overwrite", False, "rename: replace an existing checkpoint at DST.")
flags.DEFINE_enum("mode", "auto", ["auto", "zero_copy", "stream"],
                  "rename: zero_copy shares the data files (pure renames only); stream writes new ones; "
                  "auto picks zero_copy when it can.")
flags.DEFINE_string("model", None, "plan: the model's variable names: a checkpoint prefix whose keys are the model's "
                    "legacy names, or a text file with one 'name [dim,dim,...]' per line.")


class UsageError(Exception):
    pass


def _shape_text(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def inspect(checkpoint: str) -> str:
    """A sorted table of names, shapes, dtypes and sizes, with totals."""
    from keras_legacy_ckpt.checkpoint_reader import CheckpointFile, human_bytes

    ckpt = CheckpointFile(checkpoint)
    rows, total_bytes, total_params, by_dtype = [], 0, 0, {}
    for name, info in ckpt.tensors.items():
        entry = ckpt.index.entries.get(name.encode("utf-8"))
        slices = len(entry.slices) if entry is not None else 0
        total_params += math.prod(info.shape)
        total_bytes += info.nbytes
        by_dtype[info.dtype.name] = by_dtype.get(info.dtype.name, 0) + 1
        rows.append((name, _shape_text(info.shape), info.dtype.name,
                     human_bytes(info.nbytes) + ("  [%d slices]" % slices if slices else "")))
    width = max([len(r[0]) for r in rows] + [4])
    lines = ["%-*s  %-16s  %-8s  %s" % (width, "name", "shape", "dtype", "size")]
    lines += ["%-*s  %-16s  %-8s  %s" % (width, *row) for row in rows]
    lines.append("%d tensors, %s parameters, %s (%s) in %s" % (
        len(rows), format(total_params, ","), human_bytes(total_bytes),
        ", ".join("%s: %d" % kv for kv in sorted(by_dtype.items())), ckpt.prefix))
    return "\n".join(lines)


def _model_names(spec: str) -> Dict[str, Optional[Tuple[int, ...]]]:
    from keras_legacy_ckpt.checkpoint_reader import CheckpointFile

    if os.path.isfile(spec) and not spec.endswith((".index", ".meta")) and not os.path.exists(spec + ".index"):
        names = {}
        with open(spec) as f:
            for number, line in enumerate(f, 1):
                parts = line.split()
                if not parts or parts[0].startswith("#"):
                    continue
                try:
                    shape = tuple(int(d) for d in parts[1].split(",") if d) if len(parts) > 1 else None
                except ValueError:
                    raise UsageError("%s line %d: %r is not 'name [dim,dim,...]'." % (spec, number, line.strip()))
                names[parts[0]] = shape
        return names
    return {name: info.shape for name, info in CheckpointFile(spec).tensors.items()}


def _mapping_from_flags():
    from keras_legacy_ckpt.assignment_map import combine_mappings, parse_map_spec, parse_rule_spec

    mapping: Dict[str, Optional[str]] = {}
    for spec in FLAGS.map:
        parse_map_spec(spec, into=mapping)
    rules = [parse_rule_spec(r) for r in FLAGS.regex]
    return combine_mappings(mapping or None, rules)


def plan(checkpoint: str, model_spec: str) -> Tuple[str, bool]:
    """What the assignment map does: model name <- checkpoint key, missing, unused."""
    from keras_legacy_ckpt.assignment_map import plan_assignment_map, suggest_map
    from keras_legacy_ckpt.checkpoint_reader import CheckpointFile

    ckpt = CheckpointFile(checkpoint)
    model = _model_names(model_spec)
    mapping = _mapping_from_flags()
    result = plan_assignment_map(mapping, model, ckpt.tensors)
    lines, problems = [], 0
    for match in sorted(result.matches.values(), key=lambda m: m.model_name):
        want = ckpt.tensors[match.key].shape
        have = model.get(match.model_name)
        flag = "" if have is None or have == want else "   SHAPE MISMATCH: model %s" % _shape_text(have)
        problems += bool(flag)
        lines.append("  %s <- %s %s%s" % (match.model_name, match.key, _shape_text(want), flag))
    missing = result.missing()
    header = "%d model variables get a value from %s" % (len(result.matches), ckpt.prefix)
    out = [header] + lines
    if missing:
        problems += len(missing)
        out.append("missing (%d): %s" % (len(missing), ", ".join(missing)))
        shapes = {n: s for n, s in model.items() if s is not None}
        if shapes:
            suggestion = suggest_map(shapes, {k: info.shape for k, info in ckpt.tensors.items()})
            if suggestion.assignment_map:
                out.append("  suggestion: --map %s (leaves %d unmatched)" % (
                    ",".join("%s=%s" % kv for kv in suggestion.assignment_map.items()), len(suggestion.unmatched)))
    used = {m.key for m in result.matches.values()}
    unused = [k for k in ckpt.tensors if k not in used]
    if unused:
        out.append("unused checkpoint tensors (%d): %s" % (len(unused), ", ".join(unused)))
    return "\n".join(out), problems == 0


def _int_list_rules(specs: List[str], what: str) -> Dict[str, List[int]]:
    rules = {}
    for spec in specs:
        pattern, sep, values = spec.rpartition("=")
        try:
            rules[pattern] = [int(v) for v in values.split(",") if v.strip()]
        except ValueError:
            sep = ""
        if not sep or not pattern:
            raise UsageError("--%s %r must look like 'REGEX=1,0'." % (what, spec))
    return rules


def rename(src: str, dst: str) -> str:
    from keras_legacy_ckpt.rename import rename_checkpoint

    progress = None
    if sys.stdout.isatty() and not FLAGS.dry_run:
        from tf_keras.utils import Progbar

        bar = None

        def progress(done: int, total: int) -> None:
            nonlocal bar
            if bar is None:
                bar = Progbar(total, unit_name="byte")
            bar.update(done)

    renames = rename_checkpoint(
        src, dst, _mapping_from_flags(), dry_run=FLAGS.dry_run, exclude=FLAGS.exclude,
        transpose=_int_list_rules(FLAGS.transpose, "transpose"), reshape=_int_list_rules(FLAGS.reshape, "reshape"),
        mode=FLAGS.mode, overwrite=FLAGS.overwrite, verify=FLAGS.verify, progress=progress)
    lines = ["%s -> %s" % (old, new) for old, new in renames.items()]
    verb = "would write" if FLAGS.dry_run else "wrote"
    lines.append("%s %d tensors to %s" % (verb, len(renames), dst))
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    from keras_legacy_ckpt.errors import LegacyCheckpointError

    args = list(argv[1:])
    try:
        if not args or args[0] not in COMMANDS:
            raise UsageError("expected a command: %s" % ", ".join(COMMANDS))
        command, rest = args[0], args[1:]
        if command == "inspect" and len(rest) == 1:
            print(inspect(rest[0]))
        elif command == "verify" and len(rest) == 1:
            from keras_legacy_ckpt.checkpoint_reader import verify_checkpoint

            print("OK: %d tensors, index and crc32c of every tensor verified: %s" % (verify_checkpoint(rest[0]), rest[0]))
        elif command == "plan" and len(rest) == 1:
            if not FLAGS.model:
                raise UsageError("plan needs --model (a checkpoint prefix or a names file)")
            text, ok = plan(rest[0], FLAGS.model)
            print(text)
            if not ok:
                print("error: some model variables would get no value or the wrong shape", file=sys.stderr)
                return 1
        elif command == "rename" and len(rest) == 2:
            print(rename(rest[0], rest[1]))
        else:
            raise UsageError("wrong number of arguments for %s" % command)
    except UsageError as e:
        print("usage error: %s\n%s" % (e, __doc__.strip()), file=sys.stderr)
        return 2
    except LegacyCheckpointError as e:
        print("error: %s" % " ".join(str(e).split()), file=sys.stderr)
        return 1
    return 0


def _parse_flags(argv: List[str]) -> List[str]:
    try:
        return FLAGS(argv)
    except flags.Error as e:
        print("usage error: %s\n%s" % (e, __doc__.strip()), file=sys.stderr)
        sys.exit(2)


def run() -> None:
    """Console-script entry point."""
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=_parse_flags)
