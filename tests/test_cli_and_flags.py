"""The CLI (inspect, plan, rename) and the absl flags for training binaries."""

import json
import os
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
    assert "backbone/net/hidden/kernel <- net/hidden/kernel (5, 6)" in out and "unused checkpoint tensors (20)" in out
    code, out, err = run_cli(capsys, "plan", ckpt[0], "--model", str(names))
    assert code == 1 and "missing (3)" in out and "suggestion: --map /=backbone/ (leaves 0 unmatched)" in out
    names.write_text("backbone/net/hidden/kernel 6,5\n")
    code, out, _ = run_cli(capsys, "plan", ckpt[0], "--model", str(names), "--map", "/=backbone/")
    assert code == 1 and "SHAPE MISMATCH: model (6, 5)" in out


def test_console_script_and_module_entry_points(tmp_path, ckpt):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    script = shutil.which("keras-legacy-ckpt", path=os.path.dirname(sys.executable))
    assert script, "the console script is installed next to the interpreter"
    for command in ([script], [sys.executable, "-m", "keras_legacy_ckpt"]):
        result = subprocess.run(command + ["inspect", ckpt[0]], capture_output=True, text=True, env=env, timeout=120)
        assert result.returncode == 0 and "net/hidden/kernel" in result.stdout, result.stderr[-2000:]


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
    with pytest.raises(klc.AssignmentMapError, match="Cannot read assignment map JSON"):
        klc_flags.parse_assignment_map_flag(str(path))


def test_bad_assignment_map_flag_is_rejected_when_parsing():
    with pytest.raises(flags.IllegalFlagValueError, match="must look like 'old=new'"):
        _flag_values("--warm_start_assignment_map=nonsense")


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
