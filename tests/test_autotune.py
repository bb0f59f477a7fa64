"""`tvmse.autotune`: within the budget, never slower than the default, resumable, replayable; hostile files refused."""

from __future__ import annotations

import json
import logging

import pytest

from tvmse import tuning
from tvmse.autotune import autotune
from tvmse.autotune import main as autotune_main
from tvmse.compile import compile_model
from tvmse.compile import main as compile_main
from tvmse.targets.ethosu import build_segmented
from tvmse.targets.ethosu.vela_driver import VelaConfig
from tvmse.tuning_db import TuningDatabase

CONFIG = VelaConfig("ethos-u55-128").resolved()
TRIALS = 14


@pytest.fixture(scope="module")
def budget(small_graph):
    """Room for about half of the small model's weights: the placement has to choose."""
    nothing = build_segmented(small_graph, CONFIG, ())
    everything = build_segmented(small_graph, CONFIG, {"lstm0/fc", "lstm1/fc", "out/fc"})
    return nothing.sram_bytes + everything.sram_weight_bytes // 2


@pytest.fixture(scope="module")
def tuned(small_onnx, budget, tmp_path_factory):
    """One tune with two worker processes, then the same tune again on its database."""
    folder = tmp_path_factory.mktemp("tune")
    db, out = folder / "db.jsonl", folder / "tuning.json"
    lines = []
    first = autotune(small_onnx, "ethos-u55", budget, trials=TRIALS, db=db, output=out, workers=2,
                     verify_trials=2, progress=lines.append)
    db_lines = db.read_text().splitlines()
    again_lines = []
    again = autotune(small_onnx, "ethos-u55", budget, trials=TRIALS, db=db, output=folder / "again.json",
                     workers=2, verify_trials=0, progress=again_lines.append)
    return first, again, db, out, db_lines, lines, again_lines


def test_tuned_build_is_within_budget_and_never_slower(tuned, budget):
    first, _, _, out, _, lines, _ = tuned
    assert first.sram_bytes <= budget
    assert first.tuned_cycles <= first.default_cycles
    assert 0 < first.evaluations <= TRIALS                                         # ends when nothing is new
    assert any("evaluated" in line and "best" in line for line in lines)          # progress
    assert "default" in first.table and "tuned" in first.table                   # final table
    saved = tuning.load(out)
    assert saved.tuned_cycles == first.tuned_cycles and saved.sram_budget == budget


def test_every_evaluation_is_one_database_line_and_a_resume_repeats_none(tuned):
    first, again, db, _, db_lines, _, again_lines = tuned
    assert len(db_lines) == first.new_evaluations == first.evaluations
    assert again.new_evaluations == 0
    assert db.read_text().splitlines() == db_lines                               # nothing appended
    assert any("0 new evaluations" in line for line in again_lines)
    assert again.tuned_cycles == first.tuned_cycles


def test_replaying_the_tuning_file_gives_the_tuned_cycles_bit_exact(small_onnx, tuned, tmp_path):
    first, _, _, out, _, _, _ = tuned
    result = compile_model(small_onnx, "ethos-u55", output_dir=tmp_path / "build", tuning=out, verify_trials=4)
    assert result.report["npu"]["total_cycles_per_frame"] == first.tuned_cycles
    placement = result.report["placement"]
    assert placement["predicted_cycles_per_frame"] == placement["achieved_cycles_per_frame"] == first.tuned_cycles
    assert placement["sram"]["total_bytes"] <= placement["sram"]["budget_bytes"]
    assert result.report["verification"]["tflite_vs_host_reference"] == "bit-exact"


def _compile_error(capsys, model, tmp_path, *extra):
    out = tmp_path / "build"
    code = compile_main([str(model), "--output-dir", str(out), *map(str, extra)])
    err = capsys.readouterr().err
    assert code == 2, err
    errors = [line for line in err.splitlines() if line.startswith("tvmse: error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert not out.exists() and not list(tmp_path.glob(".build.tmp-*"))
    return errors[0]


def _edited(tuned, tmp_path, edit) -> str:
    data = json.loads(tuned[3].read_text())
    edit(data)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("edit, phrase", [
    (lambda d: d.update(model_sha256="0" * 64), "another model"),
    (lambda d: d["tools"].update(vela="4.0.0"), "other tool versions"),
    (lambda d: d["target"].update(system_config="Ethos_U55_Deep_Embedded"), "was made for"),
    (lambda d: d.pop("decisions"), "missing field 'decisions'"),
    (lambda d: d.update(tuned_cycles="fast"), "wrong type"),
    (lambda d: d.update(format="other"), "not a tvmse tuning file"),
    (lambda d: d["decisions"].update(placement="lstm0/fc"), "list of layer names"),
    (lambda d: d["decisions"].update(tiling={"nope/fc": "grouped/16@Sram_Only"}), "not FCs of this model"),
    (lambda d: d["decisions"].update(tiling={"lstm0/fc": "diagonal@Sram_Only"}), "no tiling 'diagonal'"),
    (lambda d: d["decisions"].update(placement=["nope/fc"]), "nope/fc"),
    (lambda d: d["decisions"].update(fold_align=-16), "fold_align must be a whole number"),
    (lambda d: d["decisions"].update(fold_align=True), "fold_align must be a whole number"),
])
def test_hostile_tuning_files_are_clean_errors(small_onnx, tuned, tmp_path, capsys, edit, phrase):
    error = _compile_error(capsys, small_onnx, tmp_path, "--tuning", _edited(tuned, tmp_path, edit))
    assert phrase in error


def test_unreadable_tuning_files_are_clean_errors(small_onnx, tmp_path, capsys):
    garbage = tmp_path / "garbage.json"
    garbage.write_text('{"format": "tvmse-tuning/1", ')
    assert "is not JSON" in _compile_error(capsys, small_onnx, tmp_path, "--tuning", garbage)
    garbage.write_bytes(b"\xff\xfe\x00binary")
    assert "cannot be read" in _compile_error(capsys, small_onnx, tmp_path, "--tuning", garbage)
    assert "does not exist" in _compile_error(capsys, small_onnx, tmp_path, "--tuning", tmp_path / "missing.json")


def test_a_budget_below_the_tuned_placement_is_a_clean_error(small_onnx, tuned, tmp_path, capsys):
    first = tuned[0]
    if not first.tuning.decisions.placement:
        pytest.fail("the tune placed nothing in SRAM; the budget fixture should leave room for a layer")
    error = _compile_error(capsys, small_onnx, tmp_path, "--tuning", tuned[3], "--sram-budget", first.sram_bytes - 1)
    assert "more than the budget" in error


def test_corrupt_and_foreign_database_lines_are_skipped_with_a_warning(tuned, tmp_path, caplog):
    _, _, db, _, db_lines, _, _ = tuned
    record = json.loads(db_lines[0])
    identity = {k: record[k] for k in ("model_sha256", "target", "tools")}
    foreign = dict(record, model_sha256="f" * 64)
    broken = dict(record, result={"cycles": -1})
    hostile = tmp_path / "hostile.jsonl"
    hostile.write_text("\n".join([db_lines[0], "{not json", json.dumps(foreign), json.dumps(broken), "[]",
                                  db_lines[1][: len(db_lines[1]) // 2]]) + "\n")
    with caplog.at_level(logging.WARNING):
        loaded = TuningDatabase(hostile, identity)
    assert len(loaded.results) == 1
    assert loaded.skipped_corrupt == 4 and loaded.skipped_foreign == 1
    assert "skipped 4 corrupt line(s)" in caplog.text and "skipped 1 line(s) of another model" in caplog.text


def test_autotune_cli_refuses_bad_options(small_onnx, tmp_path, capsys):
    for args, phrase in [(["--target", "cortex-m55", "--memory-mode", "Sram_Only"], "does not apply"),
                         (["--sram-budget", "0"], "positive number of bytes"),
                         ([], "positive number of bytes for --target ethos-u55"),
                         (["--sram-budget", "100000", "--db", str(tmp_path)], "is not a file")]:
        code = autotune_main([str(small_onnx), "--output", str(tmp_path / "t.json"), *args])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err
        assert err.startswith("tvmse: error:") and phrase in err, err
    assert not (tmp_path / "t.json").exists()


def test_a_spent_time_budget_still_returns_the_default_build(small_onnx, budget, tmp_path):
    result = autotune(small_onnx, "ethos-u55", budget, time_budget=1e-6, workers=1, verify_trials=0,
                      output=tmp_path / "t.json", progress=lambda line: None)
    assert result.evaluations == 1 and result.tuned_cycles == result.default_cycles
    assert tuning.load(tmp_path / "t.json").decisions.placement == ()


def test_the_aligned_fold_is_a_decision_that_round_trips_and_replays():
    """block80 drops one unit of lstm1 (255 of 256): the aligned fold keeps it, so its gate rows stay on the
    16-row grid; offered to the search only because it differs from the plain fold."""
    from pathlib import Path

    from tvmse.compile import load_model
    source = load_model(Path(__file__).resolve().parents[1] / "examples" / "tinylstm_block80.onnx").graph
    assert tuning.fold_variants(source, 16) == [(True, 0), (False, 0), (True, 16)]
    aligned = tuning.Decisions.make((True, 16))
    assert tuning.Decisions.from_json(json.loads(aligned.key()), "x") == aligned
    assert "fold aligned to 16" in aligned.describe() and "fold_align" not in tuning.Decisions.make(True).to_json()
    plain, _ = tuning.apply(source, tuning.Decisions.make(True), "ethos-u55-128")
    kept, _ = tuning.apply(source, aligned, "ethos-u55-128")
    assert {t.name: t.shape[-1] for t in plain.inputs}["h1"] == 255
    assert {t.name: t.shape[-1] for t in kept.inputs}["h1"] == 256


def test_unit_reordering_is_searched_after_the_other_changes():
    """The search toggles each reorderable layer last in its one-decision changes, and tries each pass
    structure again with every reorderable layer reordered after all the others."""
    import random
    from types import SimpleNamespace

    from tvmse import autotune as tuner
    best = tuning.Decisions.make(True, {"lstm1/fc": "grouped/16@Shared_Sram"})
    reorders = {(True, 0): ["lstm1/fc"], (False, 0): []}
    moves = tuner._mutations(best, {"lstm1/fc": ["row-blocks/16@Shared_Sram"]}, list(reorders), random.Random(0),
                             reorders)
    assert moves[-1] == best.with_reorder(["lstm1/fc"]) and not any(m.reorder for m in moves[:-1])
    assert tuner._mutations(moves[-1], {}, list(reorders), random.Random(0), reorders)[-1] == best
    structures = tuner._structures(None, SimpleNamespace(memory_mode="Shared_Sram"), best,
                                   {fold: {"lstm1/fc": ["grouped/16@Sram_Only"]} for fold in reorders}, reorders)
    plain = [d for d in structures if not d.reorder]
    assert structures[:len(plain)] == plain and structures[len(plain):]
    assert all(d.fold == (True, 0) and d.reorder == ("lstm1/fc",) for d in structures[len(plain):])
