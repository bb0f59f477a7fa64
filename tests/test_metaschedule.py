"""MetaSchedule over the Cortex-M55 FC kernel (`targets.cortex_m.metaschedule`): a real search on QEMU, every
candidate bit-exact, the hand kernel measured alike, resumed from the tuning database without a new evaluation,
hostile database lines skipped, the recorded schedule replayed in a network and by `compile --tuning`.

Needs the Debian toolchain (scripts/install_system_packages.sh); a missing tool fails naming its package.
"""
from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path

import pytest

from tvmse import autotune_cpu, tuning
from tvmse.autotune import autotune
from tvmse.errors import ConfigError
from tvmse.targets.cortex_m import fc_kernel, metaschedule
from tvmse.tuning_db import TuningDatabase

SHAPE = metaschedule.FcShape(40, 32)   # the output layer of the small test model (conftest.small_onnx)
TRIALS = 8
IDENTITY = {"target": {"cpu": "cortex-m55"}, "tools": {"tvm": "test"}}


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    db = tmp_path_factory.mktemp("msched") / "db.jsonl"
    lines = []
    first = metaschedule.search_shape(SHAPE, TRIALS, metaschedule.KernelRecords(db, IDENTITY), workers=2,
                                      progress=lines.append)
    db_lines = db.read_text().splitlines()
    start = time.monotonic()
    again = metaschedule.search_shape(SHAPE, TRIALS, metaschedule.KernelRecords(db, IDENTITY), workers=2)
    return first, again, time.monotonic() - start, db, db_lines, lines


def test_a_small_search_measures_candidates_and_the_hand_kernel_on_qemu(searched):
    first, _, _, _, db_lines, lines = searched
    records = [json.loads(line) for line in db_lines]
    hand = {r["candidate"]: r["result"]["instructions"] for r in records if r.get("candidate", "").startswith("hand/")}
    assert sorted(hand) == [f"hand/rows={r}" for r in fc_kernel.ROW_CHOICES]
    assert first.hand_instructions == min(hand.values()) and hand[f"hand/rows={first.hand_rows}"] == first.hand_instructions
    schedules = [r for r in records if r.get("candidate", "").startswith("sha256:")]
    assert 0 < len(schedules) <= first.candidates <= TRIALS
    valid = [r for r in schedules if "error" not in r["result"]]
    assert valid and all(isinstance(r["trace"], list) for r in schedules)
    # the best is the fewest instructions any candidate that ran bit-exact reached; used only if it beats the hand kernel
    assert first.schedule_instructions == min(r["result"]["instructions"] for r in valid)
    assert first.wins == (first.schedule_instructions < first.hand_instructions)
    assert [r for r in records if "search" in r][0]["search"]["trials"] == TRIALS
    assert all(r["workload"] == SHAPE.key and r["target"] == IDENTITY["target"] for r in records)
    assert first.new_evaluations == len(hand) + len(schedules)
    assert "hand kernel" in lines[-1] and SHAPE.key in metaschedule.kernel_table([first])


def test_a_resumed_search_makes_no_new_evaluation(searched):
    first, again, seconds, db, db_lines, _ = searched
    assert again.new_evaluations == 0 and seconds < 5
    assert (again.hand_instructions, again.schedule_instructions, again.trace) == (
        first.hand_instructions, first.schedule_instructions, first.trace)
    assert db.read_text().splitlines() == db_lines


def test_the_recorded_schedule_runs_bit_exact_in_a_network_with_its_recorded_count(searched):
    first = searched[0]
    trace = json.loads(json.dumps(first.trace))   # as a tuning file holds it
    decisions = tuning.Decisions.make(True).with_fc_schedule({SHAPE.key: trace})
    assert tuning.Decisions.from_json(decisions.to_json(), "test") == decisions
    source = metaschedule.fc_graph(SHAPE)   # the kernel the search ran, in a network the tuner builds
    scheduled = autotune_cpu.evaluate(source, autotune_cpu.CpuTarget(), decisions)
    assert "error" not in scheduled
    assert scheduled["fc_shapes"] == {f"{SHAPE.n}x{SHAPE.k}": first.schedule_instructions}


def test_hostile_kernel_lines_are_skipped_with_a_warning(tmp_path, caplog):
    good = {"format": "tvmse-kernel-db/1", **IDENTITY, "workload": "8x16", "candidate": "hand/rows=4",
            "trace": None, "result": {"instructions": 100}, "seconds": 1.0}
    hostile = [
        {**good, "result": {"instructions": -5}},
        {**good, "result": {"instructions": True}},
        {**good, "result": "fast"},
        {**good, "workload": "eight by sixteen"},
        {**good, "candidate": 7},
        {**good, "tools": {"tvm": "another"}},
        {k: v for k, v in good.items() if k != "result"},
        {"format": "tvmse-kernel-db/1", **IDENTITY, "workload": "8x16", "search": {"trials": "many"}},
    ]
    db = tmp_path / "db.jsonl"
    db.write_text("\n".join([json.dumps(good), "{not json", "[]", *map(json.dumps, hostile)]) + "\n")
    with caplog.at_level(logging.WARNING):
        records = metaschedule.KernelRecords(db, IDENTITY)
    assert records.skipped == len(hostile) and records.get("8x16", "hand/rows=4") == {"instructions": 100}
    assert any("skipped 8 malformed or foreign kernel line(s)" in r.message for r in caplog.records)
    # the model tuner reading the same file counts only the lines that are nobody's records
    assert TuningDatabase(db, {"model_sha256": "x", "target": "y", "tools": "z"}).skipped_corrupt == 2


def test_a_schedule_that_needs_the_workspace_allocator_is_rejected():
    shape = metaschedule.FcShape(300, 8)   # the unscheduled accumulator (1,200 B) is too big for the stack
    with tempfile.TemporaryDirectory() as work, pytest.raises(metaschedule.ScheduleError, match="workspace"):
        metaschedule.Bench(shape).build(metaschedule.workload(300, 8, 3, True), Path(work))


def test_compile_replays_a_recorded_schedule_bit_exact(small_onnx, searched, tmp_path):
    from tvmse.compile import compile_model, load_model
    from tvmse.passes.cost_model import CPU_OBJECTIVE
    from tvmse.passes.pipeline import run_pipeline
    first = searched[0]
    source = load_model(small_onnx).graph
    _, records = run_pipeline(source, objective=CPU_OBJECTIVE)
    decisions = tuning.default_decisions(records, CPU_OBJECTIVE).with_fc_schedule({SHAPE.key: first.trace})
    tuned = autotune_cpu.evaluate(source, autotune_cpu.CpuTarget(), decisions)   # what the tuner measures
    path = tmp_path / "tuning.json"
    tuning.TuningFile(tuning.model_hash(small_onnx), tuning.target_of(autotune_cpu.CpuTarget()), tuning.tool_versions(),
                      0, decisions, tuned["instructions"], 1, 1).save(path)
    result = compile_model(small_onnx, "cortex-m55", output_dir=tmp_path / "m55", run="qemu", frames=2, tuning=path)
    q = result.report["cpu"]["qemu"]
    assert q["bit_exact_vs_host_reference"]
    assert round(q["instructions_per_frame"]) == tuned["instructions"]
    assert [k["instructions_per_frame"] for k in q["kernels"] if k["macs"] == SHAPE.n * SHAPE.k] == [
        tuned["fc_shapes"][f"{SHAPE.n}x{SHAPE.k}"]]
    assert result.report["tuning"]["decisions"]["fc_schedule"] == {SHAPE.key: first.trace}


@pytest.mark.parametrize("trace", [[["no", "trace"]], [[["GetSBlock", [], ["nonexistent", "main"], ["b0"]]], []],
                                   [[["Explode", [], [], []]], []]])
def test_a_trace_that_does_not_fit_is_a_clear_error(trace):
    with pytest.raises(metaschedule.ScheduleError, match="does not apply to a 16x8 FC"):
        metaschedule.apply_trace(trace, 16, 8, 3, True)


@pytest.mark.parametrize("bad", [{"8x16": "trace"}, {"eight": []}, {"8x16/int32": []}, []])
def test_hostile_fc_schedules_in_decisions_are_refused(bad):
    with pytest.raises(tuning.TuningError, match="fc_schedule must map"):
        tuning.Decisions.from_json({"fold_dead_units": True, "tiling": {}, "placement": [], "fc_schedule": bad}, "x")


def test_metaschedule_trials_are_checked(small_onnx, tmp_path):
    with pytest.raises(ConfigError, match="cortex-m55 only"):
        autotune(small_onnx, "ethos-u55", sram_budget=4096, metaschedule_trials=2, output=tmp_path / "t.json")
    with pytest.raises(ConfigError, match="metaschedule-trials must be"):
        autotune(small_onnx, "cortex-m55", metaschedule_trials=-1, output=tmp_path / "t.json")


@pytest.mark.slow
def test_autotune_with_metaschedule_resumes_and_replays(small_onnx, tmp_path):
    from tvmse.compile import compile_model
    db, out = tmp_path / "db.jsonl", tmp_path / "tuning.json"
    lines = []
    first = autotune(small_onnx, "cortex-m55", trials=2, db=db, output=out, workers=2, metaschedule_trials=4,
                     progress=lines.append)
    assert first.kernels and all(k.trials == 4 for k in first.kernels)
    assert any(line.startswith("| FC workload |") for line in lines)
    saved = json.loads(out.read_text())
    assert [k["workload"] for k in saved["metaschedule"]] == [k.shape.key for k in first.kernels]
    used = {k.shape.key for k in first.kernels if k.wins}
    assert set(tuning.load(out).decisions.fc_schedule_by_key()) <= used
    again = autotune(small_onnx, "cortex-m55", trials=2, db=db, output=tmp_path / "again.json", workers=2,
                     metaschedule_trials=4, progress=lambda line: None)
    assert again.new_evaluations == 0 and again.tuned_cycles == first.tuned_cycles
    result = compile_model(small_onnx, "cortex-m55", output_dir=tmp_path / "m55", run="qemu", frames=2, tuning=out)
    assert round(result.report["cpu"]["qemu"]["instructions_per_frame"]) == first.tuned_cycles
