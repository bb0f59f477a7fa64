"""report.md stays readable for real models: short lines, per-layer rows per source layer, plots linked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tvmse.report import slot_ranges, source_layer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_slot_ranges():
    assert slot_ranges(list(range(112)) + list(range(113, 256))) == "0–111, 113–255"
    assert slot_ranges([3]) == "3" and slot_ranges([0, 2, 3, 7]) == "0, 2–3, 7" and slot_ranges([]) == "none"


def test_source_layer_of_tiled_pieces():
    assert source_layer("lstm0/fc/tile12/x") == "lstm0/fc" and source_layer("lstm0/fc/tile3") == "lstm0/fc"
    assert source_layer("lstm0/fc") == "lstm0/fc" and source_layer("h0_out") == "h0_out"


def _per_layer_rows(markdown: str) -> int:
    section = markdown.split("## Per layer", 1)[1].split("\n## ", 1)[0]
    return len([line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| source")])


def _check_readable(folder: Path) -> str:
    markdown = (folder / "report.md").read_text()
    assert max(map(len, markdown.splitlines())) <= 300
    for png in re.findall(r"!\[[^]]*\]\(([^)]+\.png)\)", markdown):
        assert (folder / png).stat().st_size > 5_000, png
    assert len(re.findall(r"\.png\)", markdown)) == 2
    assert markdown.splitlines()[2].startswith("**")  # the summary leads
    return markdown


@pytest.mark.parametrize("model", ["tinylstm_int8", "tinylstm_block80"])
def test_ethos_u_report_of_bundled_models(model, tmp_path):
    from tvmse.compile import compile_model
    result = compile_model(EXAMPLES / f"{model}.onnx", output_dir=tmp_path / model, verify_trials=1)
    markdown = _check_readable(result.output_dir)
    assert 0 < _per_layer_rows(markdown) <= 40
    assert "real-time factor" in markdown and ("Bound by weight traffic" in markdown or "Bound by compute" in markdown)
    for p in result.report["pipeline"]:  # every pass has a row, also those that changed nothing
        assert re.search(rf"^\| {p['pass']} \|", markdown, re.M), p
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert [key for key in result.report if f"`{key}`" not in readme] == []  # every report.json key documented
    if model == "tinylstm_int8":
        assert markdown.count("changed nothing") == len(result.report["pipeline"])   # dense: no pass changes it
    else:
        assert "0–111, 113–255" in markdown and "row-blocks/G" in markdown


def test_cortex_m_report_lists_the_rewrites(tmp_path):
    from tvmse.compile import compile_model
    result = compile_model(EXAMPLES / "tinylstm_block80.onnx", target="cortex-m55", output_dir=tmp_path / "m55")
    markdown = (result.output_dir / "report.md").read_text()
    assert max(map(len, markdown.splitlines())) <= 300
    assert "## Passes" in markdown and "drop dead units" in markdown and "0–111, 113–255" in markdown
    assert (result.output_dir / "report_memory.png").is_file()
