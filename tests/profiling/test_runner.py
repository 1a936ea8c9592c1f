"""The entry points: select_layers.py (strategies, CKA pairings, JSON and PNG), profile_alignment.py (the runner's
files under the run directory) and their config errors."""

import json
import runpy
import sys
from pathlib import Path

import pytest

from rocket_openvla.errors import ConfigError
from rocket_openvla.profiling.config import ProfileConfig, SelectLayersConfig
from rocket_openvla.profiling.runner import profile_alignment, select_layers

from .conftest import profile_config

SCRIPTS = Path(__file__).resolve().parents[2] / "vla-scripts"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MAX_PNG_BYTES = 100_000


def _run_script(name: str, *arguments: str, monkeypatch) -> int:
    monkeypatch.setattr(sys, "argv", [name, *arguments])
    try:
        runpy.run_path(str(SCRIPTS / name), run_name="__main__")
    except SystemExit as stop:
        return stop.code or 0
    return 0


def _png(path: Path) -> bytes:
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) < MAX_PNG_BYTES
    return data


def test_select_layers_prints_the_papers_pairs_ready_to_paste(tmp_path, monkeypatch, capsys):
    assert _run_script("select_layers.py", "--output_dir", str(tmp_path), monkeypatch=monkeypatch) == 0
    printed = capsys.readouterr().out
    assert "--rocket.student_layers '[2,4,6,8,10,12,14,16,18,31]' --rocket.teacher_layers " \
           "'[2,4,6,8,10,12,14,16,18,23]'" in printed
    record = json.loads((tmp_path / "selection.json").read_text())
    assert record["strategies"]["uniform"]["student_layers"] == [3, 6, 10, 13, 16, 19, 22, 26, 29, 32]
    assert _run_script("select_layers.py", "--student_last", "last", monkeypatch=monkeypatch) == 2
    assert "student_last='last'; choose one of" in capsys.readouterr().err


def test_select_layers_pairs_layers_by_cka(tmp_path):
    # a profile shaped like profile_alignment's cka.json: rows = student hidden_states 1..4, columns = teacher 0..2
    profile = {"student_layers": [1, 2, 3, 4], "teacher_layers": [0, 1, 2], "student_blocks": 4, "teacher_depth": 3,
               "matrix": [[0.9, 0.1, 0.2], [0.2, 0.3, 0.8], [0.1, 0.7, 0.3], [0.3, 0.4, 0.5]],
               "estimator": "minibatch CKA, unbiased HSIC", "num_samples": 64, "backbone": "pi0", "teacher": "vggt"}
    (tmp_path / "cka.json").write_text(json.dumps(profile))
    record = select_layers(SelectLayersConfig(num_pairs=3, cka=tmp_path / "cka.json"))
    monotone, hungarian = record["strategies"]["cka_monotone"], record["strategies"]["cka_hungarian"]
    assert (monotone["student_layers"], monotone["teacher_layers"]) == ([1, 3, 4], [0, 1, 2])
    assert monotone["cka_total"] == pytest.approx(0.9 + 0.7 + 0.5)
    assert (hungarian["student_layers"], hungarian["teacher_layers"]) == ([1, 2, 3], [0, 2, 1])  # crossing
    assert hungarian["cka_total"] == pytest.approx(0.9 + 0.8 + 0.7)
    assert record["strategies"]["e2m_last"]["student_layers"] == [1, 2, 3]
    _png(tmp_path / "selection.png")


def test_profile_alignment_writes_its_record_figure_and_config_under_the_run(tiny_session, rocket_run):
    # weights only: no model is built
    config = ProfileConfig(tool="projector_similarity", checkpoints=rocket_run)
    config.projector.num_batches = 0
    path = profile_alignment(config)
    assert path == rocket_run / "profiling" / "projector_similarity.json"
    record = json.loads(path.read_text())
    assert [step["step"] for step in record["steps"]] == [3, 7] and "outputs" not in record["steps"][0]
    _png(path.with_suffix(".png"))
    assert "tool: projector_similarity" in (path.parent / "projector_similarity_config.yaml").read_text()


def test_bad_profile_configs_fail_before_any_model(rlds_root, tmp_path, monkeypatch, capsys):
    config = profile_config(rlds_root, tmp_path / "runs", rocket={"coeff": 0.0})
    config.validate()  # the CKA profiles every layer: no pairs needed
    config.tool = "gradient_conflict"
    with pytest.raises(ConfigError, match="tool=gradient_conflict profiles the ROCKET pairs, but rocket.coeff is 0"):
        config.validate()
    with pytest.raises(ConfigError, match="tool=projector_similarity needs trained projectors"):
        ProfileConfig(tool="projector_similarity").validate()
    with pytest.raises(ConfigError, match="with tool=cka: the CKA profiles a model as the config builds it"):
        ProfileConfig(tool="cka", checkpoints=tmp_path).validate()
    with pytest.raises(ConfigError, match=r"gradient.layouts=\['shared'\] with checkpoints="):
        config = ProfileConfig(tool="gradient_conflict", checkpoints=tmp_path)
        config.gradient.layouts = ["shared"]
        config.validate()
    assert _run_script("profile_alignment.py", "--tool", "ckaa", monkeypatch=monkeypatch) == 2
    assert "tool='ckaa'; choose one of ('cka', 'gradient_conflict', 'projector_similarity')" in capsys.readouterr().err
