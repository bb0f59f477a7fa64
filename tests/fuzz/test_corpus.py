"""The hostile-input corpus (tests/fuzz/corpus.py): no traceback, exit 2 with one line per problem for
every bad input, exit 0 only for valid ones, nothing left behind. CI runs every case that fails before
TVM sees the model, in this process, plus one valid compile; ``-m slow`` runs every case, each alone in
its own process."""

from __future__ import annotations

import pytest

from tests.fuzz.corpus import cases, categories
from tests.fuzz.runner import run_case

CORPUS = cases()
FAST = [c for c in CORPUS if c.fast]
CI_VALID = [c for c in CORPUS if c.name == "external data"]


def test_corpus_covers_the_reported_cases():
    assert len(CORPUS) >= 100
    assert len({c.name for c in CORPUS}) == len(CORPUS)
    assert set(categories(CORPUS)) == {"file", "versions", "structure", "quantization", "shapes", "external data",
                                       "model", "options", "valid"}
    assert sum(c.expect == "ok" for c in CORPUS) >= 5


@pytest.mark.parametrize("case", FAST + CI_VALID, ids=lambda c: f"{c.category}: {c.name}")
def test_case_in_process(case, tmp_path):
    folder = tmp_path / "case"
    folder.mkdir()
    outcome = run_case(case, folder)
    assert outcome.passed, f"{outcome.verdict} (exit {outcome.code})\n{outcome.stderr[-2000:]}"


@pytest.mark.slow
@pytest.mark.parametrize("case", CORPUS, ids=lambda c: f"{c.category}: {c.name}")
def test_case_alone(case, tmp_path):
    folder = tmp_path / "case"
    folder.mkdir()
    outcome = run_case(case, folder, in_process=False)
    assert outcome.passed, f"{outcome.verdict} (exit {outcome.code})\n{outcome.stderr[-2000:]}"
