"""The CLI (inspect, plan, rename) and the absl flags for training binaries."""

import concurrent.futures
import json
import logging
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from absl import flags

import keras_legacy_ckpt as klc
from keras_legacy_ckpt import cli
from keras_legacy_ckpt import flags as klc_flags
from tests import tf1_programs
from tests.tf1_programs import mlp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return tf1_programs.save_tf1_checkpoint(str(tmp_path_factory.mktemp("cli")), mlp, 5)


def run_cli(capsys, *args):
    cli.FLAGS.unparse_flags()
    remaining = cli.FLAGS(["keras-legacy-ckpt", *args])
    try:
        code = cli.main(remaining)
    finally:
        cli.FLAGS.unparse_flags()
    out, err = capsys.readouterr()
    return code, out, err


def test_inspect_lists_sorted_names_shapes_sizes_and_totals(capsys, ckpt):
    code, out, _ = run_cli(capsys, "inspect", ckpt[0])
    lines = out.splitlines()
    assert code == 0
    names = [line.split()[0] for line in lines[1:-1]]
    assert names == sorted(ckpt[1]) and len(names) == 23
    assert any(line.startswith("net/hidden/kernel") and "(5, 6)" in line and "float32" in line and "120 B" in line
               for line in lines)
    assert lines[-1].startswith("23 tensors, ") and "int64: 1" in lines[-1]


def test_rename_dry_run_then_real(capsys, tmp_path, ckpt):
    dst = str(tmp_path / "out" / "m")
    code, out, _ = run_cli(capsys, "rename", ckpt[0], dst, "--map", "net/=backbone/net/", "--exclude", "/Adam",
                           "--regex", r"^(beta\d)_power$=>old_\1", "--dry_run")
    assert code == 0 and "net/hidden/kernel -> backbone/net/hidden/kernel" in out
    assert "beta1_power -> old_beta1" in out and "would write 11 tensors" in out
    assert not os.path.exists(dst + ".index")
    code, out, _ = run_cli(capsys, "rename", ckpt[0], dst, "--map", "net/=backbone/net/", "--exclude", "/Adam")
    assert code == 0 and "wrote 11 tensors" in out
    values = tf1_programs.checkpoint_values(dst)
    np.testing.assert_array_equal(values["backbone/net/hidden/kernel"], ckpt[1]["net/hidden/kernel"])


def test_verify_command(capsys, tmp_path, ckpt):
    code, out, _ = run_cli(capsys, "verify", ckpt[0])
    assert code == 0 and out.startswith("OK: 23 tensors")
    damaged = tmp_path / "model.ckpt"
    for suffix in (".index", ".data-00000-of-00001"):
        (tmp_path / ("model.ckpt" + suffix)).write_bytes(open(ckpt[0] + suffix, "rb").read())
    with open(str(damaged) + ".data-00000-of-00001", "r+b") as f:
        f.seek(40)
        f.write(b"\x7f")
    code, _, err = run_cli(capsys, "verify", str(damaged))
    assert code == 1 and "crc32c" in err and str(damaged) in err


def test_cli_errors_are_one_line_and_nonzero(capsys, tmp_path, ckpt):
    code, out, err = run_cli(capsys, "rename", ckpt[0], str(tmp_path / "m"), "--map", "a=b=c")
    assert code == 1 and err.count("\n") == 1 and err.startswith("error: Map entry 'a=b=c'")
    code, _, err = run_cli(capsys, "inspect", str(tmp_path / "nothing"))
    assert code == 1 and "not found" in err and err.count("\n") == 1
    code, _, err = run_cli(capsys, "frobnicate")
    assert code == 2 and "usage error" in err
    assert not os.path.exists(tmp_path / "m.index")


def test_plan_shows_mapping_missing_unused_and_a_suggestion(capsys, tmp_path, ckpt):
    names = tmp_path / "model_names.txt"
    names.write_text("backbone/net/hidden/kernel 5,6\nbackbone/net/hidden/bias 6\nbackbone/net/logits/kernel 6,3\n")
    code, out, _ = run_cli(capsys, "plan", ckpt[0], "--model", str(names), "--map", "/=backbone/")
    assert code == 0
    assert "backbone/net/hidden/kernel <- net/hidden/kernel (5, 6)" in out
    assert "unused optimizer/step tensors (15)" in out and "unused other tensors (5)" in out
    code, out, err = run_cli(capsys, "plan", ckpt[0], "--model", str(names))
    assert code == 1 and "missing (3)" in out and "suggestion: --map /=backbone/ (leaves 0 unmatched)" in out
    names.write_text("backbone/net/hidden/kernel 6,5\n")
    code, out, _ = run_cli(capsys, "plan", ckpt[0], "--model", str(names), "--map", "/=backbone/")
    assert code == 1 and "SHAPE MISMATCH: model (6, 5)" in out


def test_console_script_and_module_entry_points_help_usage_and_quiet_stderr(tmp_path, ckpt):
    """Fresh processes, as a user runs them: `--help`, and the four commands with nothing on stderr, both when
    TF_CPP_MIN_LOG_LEVEL is unset and when it is 2 (the Makefile's setting)."""
    script = shutil.which("keras-legacy-ckpt", path=os.path.dirname(sys.executable))
    assert script, "the console script is installed next to the interpreter"
    module = [sys.executable, "-m", "keras_legacy_ckpt"]
    unset = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "CUDA_VISIBLE_DEVICES")}
    level2 = dict(unset, TF_CPP_MIN_LOG_LEVEL="2")
    names = tmp_path / "names.txt"
    names.write_text("backbone/net/hidden/kernel 5,6\nbackbone/net/hidden/bias 6\n")
    runs = {
        "help": ([script, "--help"], unset),
        "module_help": (module + ["--help"], level2),
        "inspect": ([script, "inspect", ckpt[0]], unset),
        "verify": (module + ["verify", ckpt[0]], level2),
        "plan": ([script, "plan", ckpt[0], "--model", str(names), "--map", "/=backbone/"], level2),
        "rename": ([script, "rename", ckpt[0], str(tmp_path / "out") + "/", "--map", "/=backbone/"], unset),
    }

    def run(item):
        command, env = item
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        results = dict(zip(runs, pool.map(run, runs.values())))

    help_result = results["help"]
    assert help_result.returncode == 0 and help_result.stderr == "", help_result.stderr[-2000:]
    lines = help_result.stdout.splitlines()
    for command in ("inspect", "verify", "plan", "rename"):
        described = [i for i, line in enumerate(lines) if re.match(r"  %s \S" % command, line)]
        assert len(described) == 1, (command, help_result.stdout)
        assert lines[described[0] + 1].strip().startswith("keras-legacy-ckpt %s /" % command), help_result.stdout
    for flag in ("--map", "--regex", "--exclude", "--model", "--dry_run", "--overwrite", "--mode"):
        assert "\n  %s" % flag in help_result.stdout, flag
    assert results["module_help"].returncode == 0 and results["module_help"].stdout == help_result.stdout
    assert results["module_help"].stderr == ""

    for name in ("inspect", "verify", "plan", "rename"):
        result = results[name]
        assert result.returncode == 0 and result.stderr == "", (name, result.stderr[-3000:])
    assert "net/hidden/kernel" in results["inspect"].stdout and results["verify"].stdout.startswith("OK: 23 tensors")
    assert "backbone/net/hidden/kernel <- net/hidden/kernel (5, 6)" in results["plan"].stdout
    assert os.path.exists(tmp_path / "out" / (os.path.basename(ckpt[0]) + ".index"))


def run_entry_point(capsys, *args):
    """cli.run in this process (no TensorFlow import to pay for): (exit status, stdout, stderr)."""
    absl_logger = logging.getLogger("absl")
    saved = absl_logger.handlers[:], absl_logger.level, absl_logger.propagate
    try:
        with pytest.raises(SystemExit) as exited:
            cli.run(["keras-legacy-ckpt", *args])
    finally:
        cli.FLAGS.unparse_flags()
        absl_logger.handlers[:], absl_logger.level, absl_logger.propagate = saved
    out, err = capsys.readouterr()
    return exited.value.code, out, err


def test_no_command_prints_the_usage_and_exits_2_and_help_exits_0(capsys):
    code, out, err = run_entry_point(capsys)
    assert code == 2 and out == "" and err.startswith("usage error: no command given\nusage: keras-legacy-ckpt")
    assert all("\n  %s " % command in err for command in ("inspect", "verify", "plan", "rename"))
    assert err.rstrip().endswith("Run 'keras-legacy-ckpt --help' for examples and flags.")
    code, out, err = run_entry_point(capsys, "frobnicate", "--map", "a=b")
    assert code == 2 and err.startswith("usage error: unknown command 'frobnicate'")
    for args in (["-h"], ["help"], ["rename", "--help"]):
        code, out, err = run_entry_point(capsys, *args)
        assert code == 0 and err == "" and out.strip() == cli.help_text()


def test_start_up_log_filter_and_cli_process_detection(monkeypatch):
    from keras_legacy_ckpt import _cli_env

    noise = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1795655018.140801   24742 cudart_stub.cc:31] Could not find cuda drivers on your machine.\n"
        "I0000 00:00:1795655018.198655   24742 cpu_feature_guard.cc:227] This TensorFlow binary is optimized\n"
        "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow.\n"
        "2023-08-25 11:11:47.521702: I tensorflow/tsl/cuda/cudart_stub.cc:28] Could not find cuda drivers.\n"
        "W0520 14:03:07.123456   24742 something.cc:12] a warning\n")
    error = "E0000 00:00:1795655032.433165   24780 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)\n"
    ours = "/x/y.py:3: UserWarning: kept\n  warnings.warn('kept')\nTo enable the following instructions: kept too\n"
    assert _cli_env.filter_tensorflow_logs(noise + error + ours, 3) == ours
    assert _cli_env.filter_tensorflow_logs(noise + error + ours, 2) == error + ours
    assert _cli_env.filter_tensorflow_logs(noise + error + ours, 0) == noise + error + ours
    for argv0, orig_argv, expected in [
            ("/venv/bin/keras-legacy-ckpt", ["/venv/bin/python", "/venv/bin/keras-legacy-ckpt"], True),
            ("-m", ["python3", "-X", "dev", "-m", "keras_legacy_ckpt", "inspect", "x"], True),
            ("-m", ["python3", "-mkeras_legacy_ckpt"], True),
            ("-m", ["python3", "-m", "keras_legacy_ckpt.cli"], False),
            ("/venv/bin/pytest", ["python", "-m", "pytest", "-m", "keras_legacy_ckpt"], False),
            ("train.py", ["python", "train.py", "-m", "keras_legacy_ckpt"], False)]:
        monkeypatch.setattr(sys, "argv", [argv0])
        monkeypatch.setattr(sys, "orig_argv", orig_argv)
        assert _cli_env.is_cli_process() is expected, orig_argv


def _flag_values(*args):
    values = flags.FlagValues()
    klc_flags.define_flags(values)
    klc_flags.define_flags(values)  # idempotent
    values(["train", *args])
    return values


def test_flags_build_callbacks(tmp_path, ckpt):
    assert klc_flags.callbacks_from_flags(_flag_values()) == []
    values = _flag_values("--warm_start_from=%s" % ckpt[0], "--warm_start_assignment_map=/=backbone/,x=y",
                          "--nowarm_start_strict", "--object_checkpoint_dir=%s" % tmp_path)
    save, warm = klc_flags.callbacks_from_flags(values, sample_input=np.zeros([1, 5]))
    assert isinstance(warm, klc.WarmStartFromTF1) and isinstance(save, klc.SaveObjectCheckpoint)
    assert save.restore is True and save.sample_input.shape == (1, 5)
    assert warm.assignment_map == {"/": "backbone/", "x": "y"} and warm.strict is False
    assert warm.sample_input.shape == (1, 5) and save.directory == str(tmp_path) and save.save_on == "epoch_end"


def test_assignment_map_flag_takes_a_json_file(tmp_path):
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"/": "backbone/"}))
    assert klc_flags.parse_assignment_map_flag(str(path)) == {"/": "backbone/"}
    path.write_text(json.dumps([["^net/", "tower/"]]))
    assert klc_flags.parse_assignment_map_flag(str(path)) == [("^net/", "tower/")]
    path.write_text("__import__('os').remove('x')")
    with pytest.raises(klc.AssignmentMapError, match="is not valid JSON"):
        klc_flags.parse_assignment_map_flag(str(path))


def test_bad_assignment_map_flag_is_rejected_when_parsing():
    with pytest.raises(flags.IllegalFlagValueError, match="must look like 'old=new'"):
        _flag_values("--warm_start_assignment_map=nonsense")


def _flag_error(*args):
    with pytest.raises(flags.IllegalFlagValueError) as raised:
        _flag_values(*args)
    return str(raised.value)


def test_warm_start_flags_fail_at_parse_time_naming_the_value_and_the_fix(tmp_path, ckpt):
    directory, name = os.path.split(ckpt[0])                     # .../model.ckpt-3, with a 'checkpoint' state file
    for ok in (ckpt[0], ckpt[0] + ".index", ckpt[0] + ".data-00000-of-00001", directory, directory + "/"):
        assert _flag_values("--warm_start_from=%s" % ok).warm_start_from == ok

    error = _flag_error("--warm_start_assignment_map=/=backbone/")
    assert "--warm_start_assignment_map=/=backbone/" in error and "without --warm_start_from" in error

    typo = ckpt[0][:-1] + "9"                                    # model.ckpt-9: no such step
    error = _flag_error("--warm_start_from=%s" % typo)
    assert "--warm_start_from=%s" % typo in error and "no %s.index" % typo in error and "Did you mean: %s" % ckpt[0] in error

    nowhere = str(tmp_path / "nowhere" / "model.ckpt-1000")
    error = _flag_error("--warm_start_from=%s" % nowhere, "--warm_start_assignment_map=/=backbone/")
    assert "--warm_start_from=%s" % nowhere in error and "there is no %s.index" % nowhere in error
    missing_dir = str(tmp_path / "gone")
    assert "there is no %s.index" % missing_dir in _flag_error("--warm_start_from=%s" % missing_dir)

    empty = tmp_path / "empty"
    empty.mkdir()
    error = _flag_error("--warm_start_from=%s" % empty)
    assert "--warm_start_from=%s" % empty in error and "holds no checkpoint" in error
    no_state = tmp_path / "no_state"
    no_state.mkdir()
    for path in os.listdir(directory):
        if path.startswith(name + "."):
            shutil.copy(os.path.join(directory, path), str(no_state))
    assert _flag_values("--warm_start_from=%s" % no_state).warm_start_from == str(no_state)  # its one checkpoint
    for path in os.listdir(directory):
        if path.startswith(name + "."):
            shutil.copy(os.path.join(directory, path), str(no_state / path.replace(name, "model.ckpt-7")))
    error = _flag_error("--warm_start_from=%s" % no_state)
    assert "no 'checkpoint' state file and holds 2 checkpoints" in error and str(no_state / name) in error
    stale = tmp_path / "stale"
    stale.mkdir()
    (stale / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-7"\n')
    error = _flag_error("--warm_start_from=%s" % stale)
    assert "names no checkpoint that exists (it names model.ckpt-7)" in error

    # A restarted job resumes from its own object checkpoint and never reads the TF1 one: no check then.
    resumed = tmp_path / "tf2"
    resumed.mkdir()
    (resumed / "checkpoint").write_text('model_checkpoint_path: "ckpt-2"\n')
    values = _flag_values("--warm_start_from=%s" % typo, "--object_checkpoint_dir=%s" % resumed)
    assert values.warm_start_from == typo


def test_warm_start_from_with_a_scheme_is_checked_with_tf_io_gfile(ckpt):
    import tensorflow as tf

    remote = "ram://klc_flags_test/model.ckpt-3"
    for suffix in (".index", ".data-00000-of-00001"):
        tf.io.gfile.copy(ckpt[0] + suffix, remote + suffix, overwrite=True)
    assert _flag_values("--warm_start_from=%s" % remote).warm_start_from == remote
    error = _flag_error("--warm_start_from=ram://klc_flags_test/model.ckpt-4")
    assert "no ram://klc_flags_test/model.ckpt-4.index" in error and "Did you mean: %s" % remote in error


def test_assignment_map_json_file_missing_or_invalid_is_named(tmp_path, ckpt):
    start = "--warm_start_from=%s" % ckpt[0]
    missing = str(tmp_path / "maps" / "map.json")
    error = _flag_error(start, "--warm_start_assignment_map=%s" % missing)
    assert "--warm_start_assignment_map=%s" % missing in error and "JSON file %s does not exist" % missing in error
    assert "must look like" not in error
    bad = tmp_path / "bad.json"
    bad.write_text('{"/": "backbone/",}')
    error = _flag_error(start, "--warm_start_assignment_map=%s" % bad)
    assert "%s is not valid JSON" % bad in error and "line 1" in error
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"/": 3}')
    error = _flag_error(start, "--warm_start_assignment_map=%s" % wrong)
    assert str(wrong) in error and "[[\"regex\", \"replacement\"], ...]" in error


def test_train_binary_example_end_to_end(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "train_binary.py"),
         "--write_tf1_checkpoint=%s" % (tmp_path / "tf1"), "--warm_start_from=%s" % (tmp_path / "tf1"),
         "--warm_start_assignment_map=/=backbone/", "--object_checkpoint_dir=%s" % (tmp_path / "tf2"), "--epochs=2"],
        capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "loaded:  8 variables" in result.stdout
    assert "TF2 object checkpoint: %s" % (tmp_path / "tf2" / "ckpt-2") in result.stdout


def test_cli_on_ram_and_v1_checkpoints(capsys, tmp_path, ckpt):
    import tensorflow as tf

    from tests.test_checkpoint_kinds import V1_FORMAT, save_tf1

    remote = "ram://klc_cli_test/model.ckpt-3"
    for suffix in (".index", ".data-00000-of-00001"):
        tf.io.gfile.copy(ckpt[0] + suffix, remote + suffix, overwrite=True)
    code, out, _ = run_cli(capsys, "inspect", remote)
    assert code == 0 and "net/hidden/kernel" in out and "23 tensors" in out
    code, out, _ = run_cli(capsys, "verify", remote)
    assert code == 0
    code, out, _ = run_cli(capsys, "rename", remote, "ram://klc_cli_test/out/", "--map", "/=backbone/")
    assert code == 0 and "wrote 23 tensors" in out
    reader = tf.compat.v1.train.NewCheckpointReader("ram://klc_cli_test/out/model.ckpt-3")  # load_checkpoint: ram:// bug
    assert reader.has_tensor("backbone/net/hidden/kernel")

    v1_file = save_tf1(str(tmp_path / "v1"), write_version=V1_FORMAT, global_step=False)
    code, out, _ = run_cli(capsys, "inspect", v1_file)
    assert code == 0 and "net/hidden/kernel" in out and "(5, 6)" in out
    code, out, _ = run_cli(capsys, "plan", ckpt[0], "--model", v1_file)  # a V1 checkpoint as the model's names
    assert "net/hidden/kernel <- net/hidden/kernel" in out, out


def test_plan_model_names_take_shapes_as_inspect_prints_them(capsys, tmp_path, ckpt):
    names = tmp_path / "names.txt"
    names.write_text("backbone/net/hidden/kernel [5,6]\nbackbone/net/hidden/bias (6,)\nbackbone/net/logits/kernel (6, 3)\n")
    code, out, _ = run_cli(capsys, "plan", ckpt[0], "--model", str(names), "--map", "/=backbone/")
    assert code == 0 and "backbone/net/logits/kernel <- net/logits/kernel (6, 3)" in out


def test_warm_start_from_a_tf2_object_checkpoint_fails_at_parse_time(tmp_path):
    import tensorflow as tf

    path = tf.train.Checkpoint(w=tf.Variable(tf.ones([2]))).save(str(tmp_path / "tf2" / "ckpt"))
    error = _flag_error("--warm_start_from=%s" % path)
    assert "object-based" in error and "restore_object_checkpoint" in error
