"""What `vla-scripts/profile_alignment.py` and `vla-scripts/select_layers.py` run: a tool, then its JSON and PNG.

    <run directory>/profiling/            (or `output_dir`)
        cka.json  cka.png  cka_config.yaml
        gradient_conflict.json  gradient_conflict.png  gradient_conflict_config.yaml
        projector_similarity.json  projector_similarity.png  projector_similarity_config.yaml
        selection.json  selection.png      (select_layers.py with a CKA profile)

Under `torchrun`, every process profiles its own data shard, the sums are all-reduced, and the main process writes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import draccus

from rocket_openvla.files import write_text
from rocket_openvla.profiling.config import PROFILING_DIR, ProfileConfig, SelectLayersConfig
from rocket_openvla.profiling.matching import hungarian_matching, monotone_matching
from rocket_openvla.profiling.runs import run_checkpoints
from rocket_openvla.profiling.selection import LayerPairs, e2m_last_pairs, uniform_pairs
from rocket_openvla.training.distributed import DistributedContext, barrier, init_distributed, shutdown_distributed
from rocket_openvla.training.run_dir import run_directory

SELECTION_NAME = "selection"


Tool = Callable[[ProfileConfig, DistributedContext], dict[str, Any]]
Figure = Callable[[dict[str, Any], Path], Path]


def _tools() -> dict[str, tuple[Tool, Figure]]:
    """Each tool's function (returns its JSON record) and figure; imported on use (they load model and data code)."""
    from rocket_openvla.profiling import plots
    from rocket_openvla.profiling.cka_profile import profile_cka
    from rocket_openvla.profiling.gradient_conflict import profile_gradient_conflict
    from rocket_openvla.profiling.projector_similarity import profile_projector_similarity

    return {"cka": (profile_cka, plots.cka_figure),
            "gradient_conflict": (profile_gradient_conflict, plots.gradient_figure),
            "projector_similarity": (profile_projector_similarity, plots.projector_figure)}


def output_directory(config: ProfileConfig) -> Path:
    """`output_dir`, else `profiling/` in the profiled run's directory (the config's own run without checkpoints)."""
    if config.output_dir is not None:
        return Path(config.output_dir)
    if config.checkpoints is not None:
        return run_checkpoints(config.checkpoints)[0] / PROFILING_DIR
    return run_directory(config) / PROFILING_DIR


def write_json(path: Path, record: dict[str, Any]) -> None:
    write_text(path, json.dumps(record, indent=1, allow_nan=False) + "\n")


def profile_alignment(config: ProfileConfig) -> Path:
    """Run `config.tool` on this process (all processes of a torchrun job take part); returns its JSON's path."""
    config.validate()
    directory = output_directory(config)
    tool, figure = _tools()[config.tool]
    context = init_distributed()
    try:
        record = tool(config, context)
        path = directory / f"{config.tool}.json"
        if context.is_main:
            directory.mkdir(parents=True, exist_ok=True)
            write_json(path, record)
            write_text(directory / f"{config.tool}_config.yaml", draccus.dump(config))
            figure(record, path.with_suffix(".png"))
        barrier()
    finally:
        shutdown_distributed()
    return path


def cka_pairs(profile: dict[str, Any], num_pairs: int) -> tuple[LayerPairs, LayerPairs]:
    """The order-preserving (DP) and the Hungarian pairs of a CKA profile, in layer indices."""
    students, teachers = profile["student_layers"], profile["teacher_layers"]
    matrix = [[math.nan if v is None else v for v in row] for row in profile["matrix"]]

    def to_layers(strategy: str, cells: list[tuple[int, int]]) -> LayerPairs:
        return LayerPairs(strategy, [students[r] for r, _ in cells], [teachers[c] for _, c in cells])

    return (to_layers("cka_monotone", monotone_matching(matrix, num_pairs)),
            to_layers("cka_hungarian", hungarian_matching(matrix)))


def total_cka(profile: dict[str, Any], pairs: LayerPairs) -> float | None:
    """Summed CKA of `pairs` in a profile; None when a pair's layer was not profiled."""
    rows = {layer: i for i, layer in enumerate(profile["student_layers"])}
    columns = {layer: j for j, layer in enumerate(profile["teacher_layers"])}
    cells = [(rows.get(s), columns.get(t)) for s, t in zip(pairs.student_layers, pairs.teacher_layers)]
    if any(r is None or c is None for r, c in cells):
        return None
    return float(sum(profile["matrix"][r][c] for r, c in cells))


def select_layers(config: SelectLayersConfig) -> dict[str, Any]:
    """Every strategy's pairs (and with a CKA profile, the CKA pairings) as a JSON record, written to
    `selection.json` (and `selection.png`); returns the record."""
    config.validate()
    profile = json.loads(Path(config.cka).read_text()) if config.cka is not None else None
    student_blocks = profile["student_blocks"] if profile else config.student_blocks
    teacher_blocks = profile["teacher_depth"] if profile else config.teacher_blocks
    choices = [e2m_last_pairs(student_blocks, teacher_blocks, config.num_pairs, config.student_last),
               uniform_pairs(student_blocks, teacher_blocks, config.num_pairs)]
    if profile:
        choices += cka_pairs(profile, config.num_pairs)
    record = {"num_pairs": config.num_pairs, "student_blocks": student_blocks, "teacher_blocks": teacher_blocks,
              "student_last": config.student_last, "cka_profile": str(config.cka) if config.cka else None,
              "strategies": {pairs.strategy: {**pairs.to_dict(), "cka_total": total_cka(profile, pairs)
                                              if profile else None} for pairs in choices}}
    directory = config.resolved_output_dir
    directory.mkdir(parents=True, exist_ok=True)
    write_json(directory / f"{SELECTION_NAME}.json", record)
    if profile:
        from rocket_openvla.profiling.plots import cka_figure

        rows = {layer: i for i, layer in enumerate(profile["student_layers"])}
        columns = {layer: j for j, layer in enumerate(profile["teacher_layers"])}
        marks = {pairs.strategy: [(rows[s], columns[t]) for s, t in zip(pairs.student_layers, pairs.teacher_layers)]
                 for pairs in choices[2:]}
        cka_figure(profile, directory / f"{SELECTION_NAME}.png", marks)
    return record
