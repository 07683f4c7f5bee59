"""SIGKILL during rename and during SaveObjectCheckpoint: nothing that existed is damaged."""

import random

import pytest

from fuzz import crash
from tests import tf1_programs


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    prefix = crash.write_source(str(tmp_path_factory.mktemp("crash")))
    return prefix, tf1_programs.checkpoint_values(prefix)


@pytest.mark.parametrize("trial", range(3))
def test_killed_rename_leaves_source_intact_and_destination_absent_or_complete(tmp_path, source, trial):
    prefix, expected = source
    outcome = crash.rename_trial(prefix, expected, str(tmp_path), random.Random(trial))
    assert outcome in ("absent", "complete")


@pytest.mark.parametrize("trial", range(2))
def test_killed_fit_leaves_every_listed_object_checkpoint_loadable(tmp_path, trial):
    crash.save_trial(str(tmp_path), random.Random(trial))
