"""python -m tvmse.study: presets and study.toml, result rows, Pareto fronts, resume, and the smoke study end to end."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tvmse.errors import ConfigError  # noqa: E402
from tvmse.study import config as study_config  # noqa: E402
from tvmse.study.config import PRESETS, load_config, read_toml  # noqa: E402
from tvmse.study.results import beats, fronts, pareto_front, result_row, PAPER_SPEED  # noqa: E402
from tvmse.study.runner import Study  # noqa: E402
from tvmse.study.trial import (BUDGET_PHASE, DONE_FILE, PHASES_FILE, Trial, atomic_write_json,  # noqa: E402
                               finished, study_settings)

REPO = Path(__file__).resolve().parents[1]
SAMPLE = str(REPO / "examples" / "audio" / "manifest.json")


def study(tmp_path, text: str):
    path = tmp_path / "study.toml"
    path.write_text(text)
    return load_config("smoke", read_toml(path), str(path))


# ---- presets and study.toml ----------------------------------------------------------------------
@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_builds_valid_distinct_trials(name):
    config = load_config(name)
    assert config.trials and len({t.id for t in config.trials}) == len(config.trials)
    dense_hidden = config.dense.train_config(config.data).hidden
    for trial in config.trials:
        train = trial.train_config(config.data, "dense.pt")
        train.validate()
        assert train.hidden == dense_hidden and train.float_steps == 0 and train.init == "dense.pt"


def test_smoke_is_two_tiny_trials_and_frontier_uses_the_hybrids():
    smoke = load_config("smoke")
    assert len(smoke.trials) == 2 and smoke.eval_n <= 4
    assert all(t.train_config(smoke.data, "x").total_steps <= 50 for t in smoke.trials)
    frontier = {t.structure for t in load_config("frontier").trials}
    assert {"unit+weight", "unit+block"} <= frontier
    assert {"weight", "block", "unit"} == {t.structure for t in load_config("paper").trials}


def test_toml_overrides_the_preset_and_settings_change_the_trial_id(tmp_path):
    base = load_config("smoke")
    config = study(tmp_path, '[study]\neval_n = 3\n[train]\nwqat_steps = 7\n'
                             '[[trials]]\nstructure = "unit+block"\nunit_sparsity = 0.5\nsparsity = 0.25\n'
                             '[[trials]]\nstructure = "block"\nsparsity = 0.5\nwqat_steps = 9\n')
    assert config.eval_n == 3
    assert [t.name for t in config.trials] == ["unit50+block25", "block50"]
    assert dict(config.trials[0].train)["wqat_steps"] == 7 and dict(config.trials[1].train)["wqat_steps"] == 9
    assert config.dense == base.dense
    other = study(tmp_path, '[train]\nwqat_steps = 8\n[[trials]]\nstructure = "block"\nsparsity = 0.5\n')
    assert other.trials[0].name == "block50" and other.trials[0].id != config.trials[1].id


@pytest.mark.parametrize("text,message", [
    ("[studdy]\n", "unknown section"),
    ("[train]\nwqat_stepz = 3\n", "unknown option"),
    ('[[trials]]\nstructure = "rows"\nsparsity = 0.5\n', "unknown sparsity structure"),
    ('[[trials]]\nstructure = "unit"\nsparsity = 1.5\n', "sparsity must be in"),
    ('[[trials]]\nstructure = "unit+weight"\nsparsity = 0.5\n', "unit_sparsity"),
    ('[[trials]]\nstructure = "unit"\n', "needs 'sparsity'"),
    ('[[trials]]\nstructure = "unit"\nsparsity = 0.5\nhidden = 64\n', "unlike the dense model"),
    ("[study]\neval_n = 0\n", "eval_n"),
    ('[study]\nmemory_modes = ["Sram_Only"]\n', "memory_modes"),
    ('[dense]\ncheckpoint = "missing.pt"\n', "not a file"),
])
def test_bad_settings_are_config_errors_that_name_the_file(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message) as err:
        study(tmp_path, text)
    assert "study.toml" in str(err.value)


def test_unknown_preset_and_broken_toml_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        load_config("huge")
    (tmp_path / "bad.toml").write_text("[study\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        read_toml(tmp_path / "bad.toml")
    with pytest.raises(ConfigError, match="does not exist"):
        read_toml(tmp_path / "missing.toml")


@pytest.mark.parametrize("args,message", [
    (["--preset", "huge", "--out", "{tmp}/s"], "unknown preset"),
    (["--preset", "smoke", "--config", "{tmp}/bad.toml", "--out", "{tmp}/s"], "not valid TOML"),
    (["--preset", "smoke", "--out", "{tmp}/file"], "is a file"),
    (["--preset", "smoke", "--out", "{tmp}/file/s"], "cannot be written"),
    (["--preset", "smoke", "--out", "{tmp}/s", "--max-concurrent", "0"], "--max-concurrent"),
    (["--preset", "smoke", "--out", "{tmp}/s", "--address", "127.0.0.1:1"], "nothing answers"),
])
def test_command_errors_are_one_line_exit_2(tmp_path, args, message):
    (tmp_path / "bad.toml").write_text("[study\n")
    (tmp_path / "file").write_text("x")
    r = subprocess.run([sys.executable, "-m", "tvmse.study", *[a.format(tmp=tmp_path) for a in args]],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tvmse: error:") and message in lines[0], r.stderr
    assert not (tmp_path / "s").exists()


# ---- rows and fronts -----------------------------------------------------------------------------
def measurements(name, structure, sdr, cycles, flash, params=1000, nonzero=900, weights=960, fp32_sdr=None):
    m = {"id": f"{name}-x", "name": name, "structure": structure, "sparsity": 0.5, "unit_sparsity": 0.0,
         "train": {"steps": 10, "params": params, "weights": weights, "nonzero_weights": nonzero,
                   "weight_sparsity": 1 - nonzero / weights, "units_alive": [8, 8], "hidden": 8},
         "evaluate": {"enhanced": {"sdr": sdr, "stoi": 0.8}},
         "compile:Shared_Sram": {"total_cycles": cycles, "flash_bytes": flash, "sram_bytes": 100},
         "compile:Sram_Only": {"total_cycles": cycles // 4, "flash_bytes": flash, "sram_bytes": 100}}
    if fp32_sdr is not None:
        m["evaluate_fp32"] = {"enhanced": {"sdr": fp32_sdr, "stoi": 0.81}}
    return m


def test_result_row_measures_against_fp32_quality_and_dense_int8_cycles():
    dense = measurements("dense", "dense", 10.0, 4000, 1100, fp32_sdr=10.2)
    trial = measurements("unit50", "unit", 9.6, 1000, 400, nonzero=240)
    row = result_row(trial, dense)
    assert row["sdr_drop"] == pytest.approx(0.6) and row["stoi_drop"] == pytest.approx(0.01)
    assert row["sdr_drop_vs_int8"] == pytest.approx(0.4)
    assert row["speedup_Shared_Sram"] == pytest.approx(4.0) and row["speedup_Sram_Only"] == pytest.approx(4.0)
    assert row["compression"] == pytest.approx(4000 / 400)
    assert row["compression_ideal"] == pytest.approx(4000 / (240 + 4 * 40))
    assert row["cycles_Shared_Sram"] == 1000 and row["flash_bytes"] == 400 and row["steps"] == 10
    assert not beats(row, PAPER_SPEED, "speedup_Shared_Sram")  # 4× < 6.7×
    assert beats({**row, "speedup_Shared_Sram": 7.0, "sdr_drop": 0.59}, PAPER_SPEED, "speedup_Shared_Sram")
    assert "speedup_budget" not in row
    dense[BUDGET_PHASE] = {"total_cycles": 3000, "sram_budget": 4096, "sram_bytes": 4000}
    trial[BUDGET_PHASE] = {"total_cycles": 500, "sram_budget": 4096, "sram_bytes": 3000}
    row = result_row(trial, dense)
    assert row["speedup_budget"] == pytest.approx(6.0) and row["sram_bytes_budget"] == 3000


def test_pareto_front_keeps_exactly_the_undominated_points():
    points = [(1.0, 0.0), (2.0, 0.5), (2.0, 0.3), (3.0, 0.3), (5.0, 1.0), (4.0, 2.0), (1.0, 0.0)]
    # (2, 0.5) is dominated by (2, 0.3), which is dominated by (3, 0.3); (4, 2) by (5, 1); duplicates both stay
    assert pareto_front(points) == [0, 6, 3, 4]
    assert pareto_front([]) == []
    rows = [{"id": str(i), "speedup_Shared_Sram": g, "compression": 10 / g, "sdr_drop": d}
            for i, (g, d) in enumerate(points)]
    front = fronts(rows)
    assert [r["id"] for r in front["speed"]] == ["0", "6", "3", "4"]
    assert {r["id"] for r in front["memory"]} == {"0", "6"}  # compression falls as speed rises here


# ---- resume --------------------------------------------------------------------------------------
def test_trial_resumes_after_its_last_finished_phase(tmp_path, monkeypatch):
    config = load_config("smoke")
    spec = config.trials[0]
    folder = tmp_path / spec.id
    atomic_write_json(folder / PHASES_FILE, {"train": {"steps": 1}, "compile:Shared_Sram": {"total_cycles": 5}})
    calls = []
    monkeypatch.setattr(Trial, "_train", lambda self: calls.append("train") or {})
    monkeypatch.setattr(Trial, "_compile", lambda self, mode, budget=None: calls.append(mode) or
                        {"total_cycles": 4, **({"sram_budget": budget} if budget else {})})
    monkeypatch.setattr(Trial, "_evaluate", lambda self, model: calls.append("evaluate") or
                        {"enhanced": {}, "evaluation": self.study.evaluation()})
    reported = []
    result = Trial(spec, config, folder, "dense.pt", reported.append).run()
    assert calls == ["Sram_Only", "evaluate"]
    assert reported == ["compile Sram_Only", "evaluate", "done"]
    assert result["train"] == {"steps": 1} and result["compile:Sram_Only"] == {"total_cycles": 4}
    assert json.loads((folder / DONE_FILE).read_text())["id"] == spec.id
    calls.clear()
    Trial(spec, config, folder, "dense.pt").run()  # every phase on record: nothing runs again
    assert calls == []
    # another mixture set, or a placed build asked for: only what depends on it runs again
    other = dataclasses.replace(config, eval_n=config.eval_n + 1, sram_budget=4096)
    assert finished(folder, config) is not None and finished(folder, other) is None
    Trial(spec, other, folder, "dense.pt").run()
    assert calls == ["Shared_Sram", "evaluate"]
    assert json.loads((folder / PHASES_FILE).read_text())[BUDGET_PHASE] == {"total_cycles": 4, "sram_budget": 4096}
    assert finished(folder, other) is not None


def test_study_pending_lists_unfinished_trials_dense_first(tmp_path):
    config = load_config("smoke")
    s = Study(config, tmp_path)
    assert s.pending() == [config.dense, *config.trials]
    atomic_write_json(s.folder(config.trials[1]) / DONE_FILE, {"id": config.trials[1].id,
                                                               "settings": study_settings(config)})
    atomic_write_json(s.folder(config.dense) / PHASES_FILE, {"train": {}})  # phases done, not finished
    assert s.pending() == [config.dense, config.trials[0]]
    (s.folder(config.trials[0]) / DONE_FILE).parent.mkdir(parents=True)
    (s.folder(config.trials[0]) / DONE_FILE).write_text("{trunc")  # a damaged marker: the trial runs again
    assert s.pending() == [config.dense, config.trials[0]]


# ---- end to end ------------------------------------------------------------------------------------
def run_study(out: Path, *extra: str) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "tvmse.study", "--preset", "smoke", "--out", str(out), *extra],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def test_smoke_study_end_to_end_then_resumes_and_reruns_nothing(tmp_path):
    out = tmp_path / "study"
    first = run_study(out)
    assert "3 started" in first.stdout
    for name in ("results.json", "results.csv", "pareto_speed.png", "pareto_memory.png", "study.md"):
        assert (out / name).stat().st_size > 0, name
    results = json.loads((out / "results.json").read_text())
    rows = {r["name"]: r for r in results["rows"]}
    assert set(rows) == {"dense", "unit50", "weight70"}
    config = load_config("smoke")
    hidden = config.dense.train_config(config.data).hidden
    assert rows["unit50"]["units_alive"] == [hidden // 2] * 2  # real pruning, exported and counted
    assert rows["weight70"]["weight_sparsity"] >= 0.7
    assert rows["dense"]["speedup_Shared_Sram"] == 1.0
    for r in rows.values():  # real Vela builds and real scores
        assert r["cycles_Shared_Sram"] > r["cycles_Sram_Only"] > 0 and r["flash_bytes"] > 0
        assert all(key in r for key in ("sdr", "si_sdr", "pesq", "stoi", "sdr_drop"))
    assert rows["unit50"]["speedup_Shared_Sram"] > 1.3 and rows["weight70"]["compression"] > 1.5 * \
        rows["dense"]["compression"]
    md = (out / "study.md").read_text()
    assert "pareto_speed.png" in md and "42×" in md and "6.7×" in md and "speed front:" in md
    assert (out / "results.csv").read_text().count("\n") == 4

    markers = {p: p.stat().st_mtime_ns for p in out.glob("trials/*/measurements.json")}
    second = run_study(out, "-q")
    assert "0 started" in second.stdout and second.stderr == ""
    assert {p: p.stat().st_mtime_ns for p in out.glob("trials/*/measurements.json")} == markers
    assert json.loads((out / "results.json").read_text())["started"] == []

    # a trial killed in its evaluation: only that trial starts again, and only its evaluation runs
    trial = next(out.glob("trials/weight70-*"))
    phases = json.loads((trial / PHASES_FILE).read_text())
    del phases["evaluate"]
    atomic_write_json(trial / PHASES_FILE, phases)
    (trial / DONE_FILE).unlink()
    checkpoint = (trial / "train" / "checkpoint.pt").stat().st_mtime_ns
    onnx = (trial / "model_int8.onnx").stat().st_mtime_ns
    partial = run_study(out, "--results-only")  # the finished trials' results, no trial started
    assert "0 started" in partial.stdout and "unfinished: weight70" in partial.stdout
    assert [r["name"] for r in json.loads((out / "results.json").read_text())["rows"]] == ["dense", "unit50"]
    assert "Not finished yet" in (out / "study.md").read_text()
    third = run_study(out)
    assert "1 started" in third.stdout and "no trial started" not in third.stderr
    assert (trial / "train" / "checkpoint.pt").stat().st_mtime_ns == checkpoint
    assert (trial / "model_int8.onnx").stat().st_mtime_ns == onnx
    assert json.loads((out / "results.json").read_text())["started"] == [trial.name]
    assert (trial / DONE_FILE).exists()


def test_a_trial_failing_on_bad_input_is_the_one_line_error_of_its_cause(tmp_path):
    """The error of the trial's own input comes back through Ray as tvmse's one line (exit 2)."""
    (tmp_path / "float.pt").write_bytes(b"not a checkpoint")
    (tmp_path / "study.toml").write_text(f'[dense]\ncheckpoint = "{tmp_path / "float.pt"}"\n')
    r = subprocess.run([sys.executable, "-m", "tvmse.study", "--preset", "smoke", "--config",
                        str(tmp_path / "study.toml"), "--out", str(tmp_path / "s"), "-q"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tvmse: error: checkpoint") and "damaged" in lines[0], r.stderr


def test_status_names_the_training_step_of_a_trial_in_training(tmp_path):
    config = load_config("smoke")
    s = Study(config, tmp_path)
    spec = config.trials[0]
    assert s._phase_detail(spec, "train") == "train"  # no log yet
    log_file = s.folder(spec) / "train" / "train_log.jsonl"
    log_file.parent.mkdir(parents=True)
    log_file.write_text('{"step": 20, "phase": "wqat"}\n{"step": 40, "phase": "wqat"}\n')
    total = spec.train_config(config.data, "").total_steps
    assert s._phase_detail(spec, "train") == f"train step 40/{total}"
    assert s._phase_detail(spec, "compile Sram_Only") == "compile Sram_Only"
