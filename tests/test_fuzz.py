"""A short fuzz run in the test suite; fuzz/run_fuzz.py does long runs."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz import harness


@pytest.fixture(scope="module")
def checker(tmp_path_factory):
    return harness.Checker(str(tmp_path_factory.mktemp("fuzz")))


mutations = st.builds(
    harness.Mutation,
    op=st.sampled_from(harness.OPS),
    target=st.sampled_from(["index", "data"]),
    position=st.floats(min_value=0.0, max_value=1.0, allow_nan=False),
    value=st.integers(min_value=0, max_value=4095),
    span=st.sampled_from([1, 4, 16, 64]),
)


@settings(max_examples=80, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=mutations)
def test_mutants_load_exactly_or_fail_cleanly(checker, mutation):
    checker.check(mutation)


def test_every_kind_of_damage_is_reported_as_corrupt(checker):
    outcomes = harness.run(checker, [
        harness.Mutation("truncate", "data", 0.5, 0),
        harness.Mutation("truncate", "index", 0.5, 0),
        harness.Mutation("garbage_index", "index", 0.0, 300),
        harness.Mutation("flip", "index", 0.3, 3),
        harness.Mutation("zero", "index", 0.99, 0, 8),   # the footer's magic number
    ])
    assert outcomes == {"CorruptCheckpointError": 5}
