"""`tvmse autotune --target cortex-m55`: QEMU instruction counts as the cost, rows per FC kernel per shape,
resumable from its database, replayed exactly by `compile --tuning`; hostile tuning files refused.

Needs the Debian toolchain (scripts/install_system_packages.sh); a missing tool fails naming its package.
"""
from __future__ import annotations

import json

import pytest

from tvmse import tuning
from tvmse.autotune import autotune
from tvmse.compile import compile_model
from tvmse.compile import main as compile_main
from tvmse.targets.cortex_m import fc_kernel

TRIALS = 6   # the default build, the fold off, every kernel at 1, 2 and 8 rows, the per-shape choice


@pytest.fixture(scope="module")
def tuned(small_onnx, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tune_m55")
    db, out = folder / "db.jsonl", folder / "tuning.json"
    lines = []
    first = autotune(small_onnx, "cortex-m55", trials=TRIALS, db=db, output=out, workers=1, progress=lines.append)
    db_lines = db.read_text().splitlines()
    again = autotune(small_onnx, "cortex-m55", trials=TRIALS, db=db, output=folder / "again.json", workers=1,
                     progress=lambda line: None)
    return first, again, out, db_lines, lines


def test_rows_per_shape_are_tuned_on_qemu_and_never_slower(tuned):
    first, _, out, db_lines, lines = tuned
    assert first.tuned_cycles <= first.default_cycles
    records = [json.loads(line) for line in db_lines]
    assert all(r["target"] == {"cpu": "cortex-m55"} for r in records)
    saved = tuning.load(out)
    base = next(r for r in records if r["decisions"]["fold_dead_units"] == saved.decisions.fold_dead_units
                and "fc_rows" not in r["decisions"])
    shapes = base["result"]["fc_shapes"]
    uniform = [r for r in records if r["decisions"]["fold_dead_units"] == saved.decisions.fold_dead_units
               and set(r["decisions"].get("fc_rows", {})) == set(shapes)
               and len(set(r["decisions"]["fc_rows"].values())) == 1]
    assert sorted(next(iter(r["decisions"]["fc_rows"].values())) for r in uniform) == [
        r for r in fc_kernel.ROW_CHOICES if r != fc_kernel.ROWS]
    # the chosen count of each shape is the one its kernels ran fastest with
    best_rows = {s: min([(base["result"]["fc_shapes"][s], fc_kernel.ROWS)]
                        + [(r["result"]["fc_shapes"][s], r["decisions"]["fc_rows"][s]) for r in uniform])[1]
                 for s in shapes}
    assert {s: best_rows[s] for s in shapes if best_rows[s] != fc_kernel.ROWS} == dict(saved.decisions.fc_rows)
    # the per-shape choice is a build of its own only when the shapes' best counts differ (one count for every
    # shape is a build already run: the default one or a uniform one)
    assert first.evaluations == len(db_lines) == (TRIALS if len(set(best_rows.values())) > 1 else TRIALS - 1)
    assert saved.tuned_cycles == first.tuned_cycles and "instructions" in first.table
    assert any("instructions" in line and "evaluated" in line for line in lines)


def test_a_resumed_tune_repeats_no_evaluation(tuned):
    first, again, *_ = tuned
    assert again.new_evaluations == 0 and again.tuned_cycles == first.tuned_cycles


def test_replaying_the_tuning_file_gives_the_tuned_instructions_bit_exact(small_onnx, tuned, tmp_path):
    first, _, out, _, _ = tuned
    result = compile_model(small_onnx, "cortex-m55", output_dir=tmp_path / "m55", run="qemu", frames=4, tuning=out)
    q = result.report["cpu"]["qemu"]
    assert q["bit_exact_vs_host_reference"]
    assert round(q["instructions_per_frame"]) == first.tuned_cycles
    assert result.report["tuning"]["decisions"] == tuning.load(out).decisions.to_json()


@pytest.mark.parametrize("edit, phrase", [
    (lambda d: d["decisions"].update(fc_rows={"12x34": 0}), "fc_rows must map"),
    (lambda d: d["decisions"].update(fc_rows={"twelve": 4}), "fc_rows must map"),
    (lambda d: d["decisions"].update(fc_schedule={"12x34": []}), "FC workloads the build does not have (12x34)"),
    (lambda d: d["decisions"].update(fc_schedule={"40x32": [["no", "trace"]]}), "does not apply to a 40x32 FC"),
    (lambda d: d.update(target={"accelerator": "ethos-u55-128", "system_config": "x", "memory_mode": "y"}),
     "was made for"),
])
def test_hostile_cortex_m55_tuning_files_are_clean_errors(small_onnx, tuned, tmp_path, capsys, edit, phrase):
    data = json.loads(tuned[2].read_text())
    edit(data)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    code = compile_main([str(small_onnx), "--target", "cortex-m55", "--tuning", str(bad),
                         "--output-dir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("tvmse: error:") and phrase in err and "Traceback" not in err, err
    assert not (tmp_path / "o").exists()
