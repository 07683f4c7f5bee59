"""The `keras-legacy-ckpt` command line: inspect, verify, plan, rename, export and diff TF1 checkpoints.

    keras-legacy-ckpt inspect CKPT
    keras-legacy-ckpt verify CKPT
    keras-legacy-ckpt plan CKPT --model MODEL_CKPT_OR_NAMES_FILE [--map "ckpt/=model/"]
    keras-legacy-ckpt rename SRC DST --map "old/=new/" [--regex "PATTERN=>REPL"] [--exclude REGEX] [--dry_run]
    keras-legacy-ckpt export SRC DST.safetensors [--map ...] [--exclude REGEX] [--transpose REGEX=1,0]
    keras-legacy-ckpt diff A B [--map ...]        (exit status 0: identical, 1: different)

`keras-legacy-ckpt --help` lists the commands, examples and flags. TensorFlow's start-up logs are kept off
stderr by keras_legacy_ckpt._cli_env, which runs before TensorFlow is imported.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import sys
import textwrap
from typing import Dict, List, Optional, Sequence, Tuple

from absl import flags

FLAGS = flags.FLAGS
COMMANDS = ("diff", "export", "inspect", "plan", "rename", "verify")

# Each flag's help, also shown by `keras-legacy-ckpt --help` (absl appends its own notes to flag.help).
FLAG_HELP = {
    "map": "Name map entries 'old=new' or scopes 'old_scope/=new_scope/', comma separated; repeatable. For "
           "plan: checkpoint scope = model scope, as in init_from_checkpoint. For rename and export, 'old=' drops old; "
           "for diff, A's names = B's.",
    "regex": "A rename rule 'PATTERN=>REPLACEMENT' (Python re.sub syntax, \\1 for groups) applied to names no "
             "--map entry covers; the first matching rule wins; repeatable.",
    "exclude": "rename, export: drop source tensors whose name matches this regex (re.search), e.g. '/Adam(_1)?$' "
               "for Adam slots; diff: leave matching names of A and B out; repeatable.",
    "transpose": "rename, export: 'REGEX=1,0' transposes tensors whose new name matches; repeatable.",
    "reshape": "rename, export: 'REGEX=2,3,4' reshapes tensors whose new name matches; repeatable.",
    "dry_run": "rename: print old -> new without writing anything.",
    "verify": "rename: check every tensor's crc32c before writing.",
    "overwrite": "rename, export: replace an existing checkpoint (or .safetensors file) at DST.",
    "mode": "rename: zero_copy shares the data files (pure renames only); stream writes new ones; auto picks "
            "zero_copy when it can.",
    "model": "plan: the model's variable names: a checkpoint prefix whose keys are the model's legacy names, or a "
             "text file with one 'name [dim,dim,...]' per line.",
}
for _name in ("map", "regex", "exclude", "transpose", "reshape"):
    flags.DEFINE_multi_string(_name, [], FLAG_HELP[_name])
for _name in ("dry_run", "verify", "overwrite"):
    flags.DEFINE_bool(_name, False, FLAG_HELP[_name])
flags.DEFINE_enum("mode", "auto", ["auto", "zero_copy", "stream"], FLAG_HELP["mode"])
flags.DEFINE_string("model", None, FLAG_HELP["model"])


class UsageError(Exception):
    pass


PROG = "keras-legacy-ckpt"
# (command, arguments, one line on what it does, an example)
COMMAND_HELP = (
    ("inspect", "CKPT", "list the tensors: names, shapes, dtypes, sizes and totals",
     PROG + " inspect /old/model.ckpt-1000"),
    ("verify", "CKPT", "check the index and the crc32c of every tensor",
     PROG + " verify /old/train_dir"),
    ("plan", "CKPT --model M", "show which checkpoint tensor each model variable would get",
     PROG + " plan /old/model.ckpt-1000 --model names.txt --map /=backbone/"),
    ("rename", "SRC DST", "write a copy with renamed, dropped or transposed tensors",
     PROG + " rename /old/model.ckpt-1000 /new/ --map /=backbone/ --exclude '/Adam(_1)?$'"),
    ("export", "SRC DST", "write the tensors to one .safetensors file (renamed, dropped, transposed)",
     PROG + " export /old/model.ckpt-1000 /new/model.safetensors --exclude '/Adam(_1)?$'"),
    ("diff", "A B", "compare two checkpoints tensor by tensor; exit status 1 when they differ",
     PROG + " diff /old/model.ckpt-1000 /new/model.ckpt-1000 --map /=backbone/"),
)
# Our flags, in the order --help lists them, with the value each takes.
FLAG_METAVARS = (("map", "OLD=NEW,..."), ("regex", "'PATTERN=>REPL'"), ("exclude", "REGEX"), ("model", "M"),
                 ("transpose", "REGEX=1,0"), ("reshape", "REGEX=2,3"), ("mode", "auto|zero_copy|stream"),
                 ("dry_run", ""), ("verify", ""), ("overwrite", ""))
_HELP_ARGS = ("-h", "-help", "--help", "--helpshort", "--helpfull", "-?")


def _command_lines(examples: bool) -> List[str]:
    lines = []
    for name, args, what, example in COMMAND_HELP:
        lines.append("  %-22s %s" % ("%s %s" % (name, args), what))
        if examples:
            lines.append("      " + example)
    return lines


def usage_text() -> str:
    """The short usage: what a usage error prints on stderr."""
    return "\n".join(["usage: %s COMMAND ARGS... [FLAGS]" % PROG] + _command_lines(examples=False) +
                      ["Run '%s --help' for examples and flags." % PROG])


def help_text() -> str:
    """`keras-legacy-ckpt --help`: the commands, each with one line and an example, and the flags."""
    lines = ["usage: %s COMMAND ARGS... [FLAGS]   (python -m keras_legacy_ckpt ... is the same)" % PROG, "",
             "Inspect, verify, plan, rename, export (safetensors) and diff TF1 name-based checkpoints, without",
             "TF1 code. CKPT is a checkpoint prefix (/old/model.ckpt-1000), one of its files, or a directory",
             "with a 'checkpoint' state file (its latest checkpoint).", "", "commands:"]
    lines += _command_lines(examples=True)
    lines += ["", "flags:"]
    for name, metavar in FLAG_METAVARS:
        default = FLAGS[name].default
        text = FLAG_HELP[name] + ("" if default in (None, False, []) else " (default: %s)" % default)
        head = "  --%s%s" % (name, "=" + metavar if metavar else "")
        wrapped = textwrap.wrap(text, 100, initial_indent=" " * 28, subsequent_indent=" " * 28)
        if len(head) < 27:
            wrapped[0] = head.ljust(28) + wrapped[0][28:]
        else:
            wrapped.insert(0, head)
        lines += wrapped
    lines += ["", "exit status: 0 ok; 1 an error (one 'error: ...' line on stderr), or plan found a variable",
              "that would get no value or a wrong shape, or diff found a difference; 2 a usage error."]
    return "\n".join(lines)


def _shape_text(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def inspect(checkpoint: str) -> str:
    """A sorted table of names, shapes, dtypes and sizes, with totals."""
    from keras_legacy_ckpt.checkpoint_reader import CheckpointFile
    from keras_legacy_ckpt.warm_start_report import human_bytes

    ckpt = CheckpointFile(checkpoint)
    rows, total_bytes, total_params, by_dtype = [], 0, 0, {}
    for name, info in ckpt.tensors.items():
        slices = ckpt.slice_count(name)
        nbytes, dtype = info.nbytes, info.dtype_name
        total_params += math.prod(info.shape)
        total_bytes += nbytes
        by_dtype[dtype] = by_dtype.get(dtype, 0) + 1
        rows.append((name, _shape_text(info.shape), dtype,
                     human_bytes(nbytes) + ("  [%d slices]" % slices if slices else "")))
    width = max([len(r[0]) for r in rows] + [4])
    dtype_width = max([len(r[2]) for r in rows] + [8])
    lines = ["%-*s  %-16s  %-*s  %s" % (width, "name", "shape", dtype_width, "dtype", "size")]
    lines += ["%-*s  %-16s  %-*s  %s" % (width, name, shape, dtype_width, dtype, size)
              for name, shape, dtype, size in rows]
    lines.append("%d tensors, %s parameters, %s (%s) in %s" % (
        len(rows), format(total_params, ","), human_bytes(total_bytes),
        ", ".join("%s: %d" % kv for kv in sorted(by_dtype.items())), ckpt.prefix))
    return "\n".join(lines)


def _model_names(spec: str) -> Dict[str, Optional[Tuple[int, ...]]]:
    from keras_legacy_ckpt import checkpoint_kinds
    from keras_legacy_ckpt.checkpoint_reader import CheckpointFile

    if (os.path.isfile(spec) and not spec.endswith((".index", ".meta")) and not os.path.exists(spec + ".index")
            and checkpoint_kinds.v1_file_state(spec) is None):  # a V1 checkpoint is one file too
        names = {}
        with open(spec) as f:
            for number, line in enumerate(f, 1):
                name, _, dims = line.strip().partition(" ")
                if not name or name.startswith("#"):
                    continue
                # "8,16", "[8,16]" or "(8, 16)" (as inspect prints it); no dims: shape unknown.
                dims = dims.strip().strip("[]()").replace(" ", "")
                try:
                    shape = tuple(int(d) for d in dims.split(",") if d) if dims else None
                except ValueError:
                    raise UsageError("%s line %d: %r is not 'name' or 'name 8,16' (also [8,16] or (8, 16))."
                                     % (spec, number, line.strip()))
                names[name] = shape
        return names
    from keras_legacy_ckpt.errors import CheckpointNotFoundError

    try:
        return {name: info.shape for name, info in CheckpointFile(spec).tensors.items()}
    except CheckpointNotFoundError as e:
        if not os.path.exists(spec) and not spec.endswith("/"):
            raise CheckpointNotFoundError("--model %s: there is no such names file, and it is not a checkpoint either "
                                          "(%s). Pass a text file with one 'name [dim,dim,...]' per line, or a "
                                          "checkpoint whose keys are the model's names." % (spec, e)) from None
        raise


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
    from keras_legacy_ckpt.warm_start_report import is_training_state

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
    training = [k for k in unused if is_training_state(k)]
    other = [k for k in unused if not is_training_state(k)]
    if training:
        out.append("unused optimizer/step tensors (%d): %s" % (len(training), ", ".join(training)))
    if other:
        out.append("unused other tensors (%d): %s" % (len(other), ", ".join(other)))
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

    renames = rename_checkpoint(
        src, dst, _mapping_from_flags(), dry_run=FLAGS.dry_run, exclude=FLAGS.exclude,
        transpose=_int_list_rules(FLAGS.transpose, "transpose"), reshape=_int_list_rules(FLAGS.reshape, "reshape"),
        mode=FLAGS.mode, overwrite=FLAGS.overwrite, verify=FLAGS.verify, verbose=1)
    from keras_legacy_ckpt.warm_start_report import is_training_state

    from keras_legacy_ckpt.checkpoint_reader import list_variables

    lines = ["%s -> %s" % (old, new) for old, new in renames.items() if old != new]
    verb = "would write" if FLAGS.dry_run else "wrote"
    training = sum(1 for old in renames if is_training_state(old))
    dropped = len(list_variables(src)) - len(renames)
    lines.append("%s %d tensors to %s (%d weights, %d optimizer/step tensors%s)"
                 % (verb, len(renames), dst, len(renames) - training, training,
                    "; dropped %d" % dropped if dropped else ""))
    return "\n".join(lines)


def export(src: str, dst: str) -> str:
    from keras_legacy_ckpt.warm_start_report import human_bytes
    from keras_legacy_ckpt.export import _export

    result = _export(src, dst, _mapping_from_flags(), exclude=FLAGS.exclude,
                     transpose=_int_list_rules(FLAGS.transpose, "transpose"),
                     reshape=_int_list_rules(FLAGS.reshape, "reshape"), overwrite=FLAGS.overwrite, metadata=None,
                     verbose=1)
    lines = ["%s -> %s" % (old, new) for old, new in result.renames.items() if old != new]
    lines.append("wrote %d tensors (%s) to %s%s" % (
        len(result.renames), human_bytes(result.file_bytes), result.path,
        "; dropped %d" % len(result.dropped) if result.dropped else ""))
    return "\n".join(lines)


def diff(a: str, b: str) -> Tuple[str, bool]:
    from keras_legacy_ckpt.diff import diff_checkpoints

    result = diff_checkpoints(a, b, _mapping_from_flags(), exclude=FLAGS.exclude)
    return result.summary(), result.identical


# Flags that would silently do nothing for these commands.
_NOT_TAKEN = {"export": ("dry_run", "verify", "mode", "model"),
              "diff": ("dry_run", "verify", "mode", "model", "transpose", "reshape", "overwrite")}


def _usage_error(message: str) -> int:
    print("usage error: %s\n%s" % (message, usage_text()), file=sys.stderr)
    return 2


def main(argv: Sequence[str]) -> int:
    """Runs the command in `argv` (flags already parsed); returns the exit status."""
    from keras_legacy_ckpt.errors import LegacyCheckpointError

    args = list(argv[1:])
    try:
        if not args:
            raise UsageError("no command given")
        if args[0] not in COMMANDS:
            close = difflib.get_close_matches(args[0], COMMANDS, n=1)
            raise UsageError("unknown command %r%s" % (args[0], " (did you mean %s?)" % close[0] if close else ""))
        command, rest = args[0], args[1:]
        if command == "inspect" and len(rest) == 1:
            print(inspect(rest[0]))
        elif command == "verify" and len(rest) == 1:
            from keras_legacy_ckpt.checkpoint_reader import resolve_checkpoint, verify_checkpoint

            count = verify_checkpoint(rest[0])
            print("OK: %d tensors, index and crc32c of every tensor verified: %s" % (count, resolve_checkpoint(rest[0])))
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
        elif command in _NOT_TAKEN and any(FLAGS[f].present for f in _NOT_TAKEN[command]):
            flag = next(f for f in _NOT_TAKEN[command] if FLAGS[f].present)
            raise UsageError("%s does not take --%s" % (command, flag))
        elif command == "export" and len(rest) == 2:
            print(export(rest[0], rest[1]))
        elif command == "diff" and len(rest) == 2:
            text, same = diff(rest[0], rest[1])
            print(text)
            if not same:
                return 1
        else:
            expected = {name: arguments for name, arguments, _, _ in COMMAND_HELP}[command].split(" --")[0]
            raise UsageError("%s takes %s; got %s" % (command, expected, " ".join(rest) or "no argument"))
    except UsageError as e:
        return _usage_error(str(e))
    except (LegacyCheckpointError, OSError) as e:
        print("error: %s" % " ".join(str(e).split()), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


class _LogFormatter(logging.Formatter):
    """absl log records (ours: rename's notes) as one plain line: 'note: ...', 'warning: ...'."""

    def format(self, record: logging.LogRecord) -> str:
        level = "note" if record.levelno < logging.WARNING else record.levelname.lower()
        return "%s: %s" % (level, " ".join(record.getMessage().split()))


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LogFormatter())
    logger = logging.getLogger("absl")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False


def run(argv: Optional[Sequence[str]] = None) -> None:
    """Console-script entry point (and `python -m keras_legacy_ckpt`): exits with main's status.

    absl's app.run is not used: it would run TensorFlow's after-init callbacks, one of which lists the
    GPUs (a CUDA initialisation and its log lines), and its --help lists absl's own flags.
    """
    argv = list(sys.argv if argv is None else argv)
    args = argv[1:]
    options = args[:args.index("--")] if "--" in args else args
    if args[:1] == ["help"] or any(arg in _HELP_ARGS for arg in options):
        print(help_text())
        sys.exit(0)
    from keras_legacy_ckpt import _cli_env

    _cli_env.quiet_tensorflow_if_cli()  # TensorFlow, if a command imports it, imports quietly
    try:
        remaining = FLAGS(argv)
    except flags.Error as e:
        sys.exit(_usage_error(" ".join(str(e).split())))
    _setup_logging()
    sys.exit(main(remaining))
