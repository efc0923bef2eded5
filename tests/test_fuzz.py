"""Fuzzing every HTTP operation (issue 14): generated requests against a gateway with billing
and rate limits, an upstream that sometimes answers nonsense. Never a 500, every error in its
dialect's shape, never the upstream's key. (A few hundred examples here; ``benchmarks/fuzz.py``
runs 10,000 and more.)"""

from __future__ import annotations

import os

import pytest
from fuzzing import Generated, Target, requests, target
from hypothesis import HealthCheck, given, settings

EXAMPLES = int(os.environ.get("COMPATGATE_FUZZ_EXAMPLES", "300"))


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory):
    with target(tmp_path_factory.mktemp("fuzz")) as served:
        yield served


def test_every_operation_is_fuzzed(fuzzed: Target):
    operations = fuzzed.operations
    assert "chat.completions" in operations and "audio.transcriptions" in operations
    from fuzzing import FORM_FIELDS, JSON_FIELDS

    missing = sorted(set(operations) - set(JSON_FIELDS) - set(FORM_FIELDS))
    assert not missing, f"operations the fuzz has no fields for (add them to tests/fuzzing.py): {missing}"


def test_generated_requests_never_get_a_500(fuzzed: Target):
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(generated=requests(fuzzed.operations))
    def run(generated: Generated) -> None:
        problem = fuzzed.check(generated)
        assert problem is None, problem

    run()
    assert sum(fuzzed.statuses.values()) >= EXAMPLES
    assert fuzzed.statuses[500] == 0
