"""Training-free layer pairs: the release's balanced spacing, Uniform-k and E2M-Last (the paper's default).

Index conventions (as everywhere in the package):
  student: Hugging Face `hidden_states` index over n decoder blocks; 0 = embeddings, k = output of block k-1
           (= input of block k), n = after the final norm.
  teacher: block index 0 .. depth-1 (VGGT aggregator blocks).

`balanced_layers` returns 0-based *block* indices, as the release's `get_balanced_layers`; a student block b becomes
`hidden_states[b + 1]` (the release's "+1 offset", so the last block maps to n, the final-norm output).
"""

from __future__ import annotations

from dataclasses import dataclass

from rocket_openvla.errors import ConfigError

STUDENT_LAST_CHOICES = ("before_last_block", "final_norm")
E2M_START = 2  # the paper's first aligned layer on both sides
E2M_FRACTION = 0.75  # "early to middle": the first three quarters of the depth


@dataclass(frozen=True)
class LayerPairs:
    """K student/teacher layer pairs in the package's index conventions, ready for `--rocket.*_layers`."""

    strategy: str
    student_layers: list[int]
    teacher_layers: list[int]

    def cli_arguments(self) -> str:
        """`--rocket.student_layers '[...]' --rocket.teacher_layers '[...]'` for the finetune command line."""
        student = ",".join(map(str, self.student_layers))
        teacher = ",".join(map(str, self.teacher_layers))
        return f"--rocket.student_layers '[{student}]' --rocket.teacher_layers '[{teacher}]'"

    def to_dict(self) -> dict[str, object]:
        return {"strategy": self.strategy, "student_layers": self.student_layers,
                "teacher_layers": self.teacher_layers, "cli": self.cli_arguments()}


def _check_counts(n_layers: int, n_keep: int, what: str = "n_layers") -> None:
    if n_layers < 1 or n_keep < 1:
        raise ConfigError(f"{what}={n_layers}, n_keep={n_keep}; both must be at least 1")


def balanced_layers(n_layers: int, n_keep: int) -> list[int]:
    """`n_keep` of `n_layers` blocks, evenly spread and anchored at the last block (the release's
    `get_balanced_layers`, reproduced exactly).

    Rules, in order: every block when `n_keep >= n_layers`; with an exact stride `s = n_layers / n_keep`, the blocks
    `n_layers - 1 - i*s`; with an exact drop stride `d = n_layers / (n_layers - n_keep)`, every block except
    `0, d, 2d, ...`; otherwise `int(n_layers - 1 - i * n_layers / n_keep + 0.5)` in float arithmetic.

    Returns:
        ascending 0-based block indices, e.g. (32, 8) -> [3, 7, ..., 31]; (24, 10) -> [1, 4, 6, 9, 11, 13, 16, 18, 21,
        23].
    """
    _check_counts(n_layers, n_keep)
    if n_keep >= n_layers:
        return list(range(n_layers))
    if n_layers % n_keep == 0:
        stride = n_layers // n_keep
        return sorted(n_layers - 1 - i * stride for i in range(n_keep))
    n_drop = n_layers - n_keep
    if n_layers % n_drop == 0:
        dropped = {i * (n_layers // n_drop) for i in range(n_drop)}
        return [i for i in range(n_layers) if i not in dropped]
    step = n_layers / n_keep
    return sorted(int((n_layers - 1) - i * step + 0.5) for i in range(n_keep))


def student_last_layer(n_blocks: int, student_last: str) -> int:
    """The `hidden_states` index used as the student's last layer.

    "before_last_block" is n-1 (the input of the last block): what the release's OpenVLA code makes of "-1" and what
    the paper's OpenVLA-7B pairs use (31); "final_norm" is n (after the final norm): the release's OpenPI PyTorch "-1".
    """
    if student_last not in STUDENT_LAST_CHOICES:
        raise ConfigError(f"student_last={student_last!r}; choose one of {STUDENT_LAST_CHOICES}")
    return n_blocks - 1 if student_last == "before_last_block" else n_blocks


def early_to_middle_last(depth: int, n_keep: int, last: int, start: int = E2M_START,
                         fraction: float = E2M_FRACTION) -> list[int]:
    """E2M-Last: `n_keep - 1` evenly spaced layers in the early-to-middle part of the stack, plus `last`.

    The early layers start at `start` with the largest integer stride that keeps them at or below
    `int(fraction * depth)` and below `last`; a stack too shallow for that slides `start` down. With the defaults this
    gives the paper's sets: OpenVLA-7B (32 blocks) 2, 4, ..., 18 + 31; PaliGemma (18 blocks) 2, 3, ..., 10 + last;
    VGGT-1B (24 blocks) 2, 4, ..., 18 + 23.

    Args:
        depth: blocks of the stack (the index range of the early layers is 0 .. `last - 1`).
        last: index of the last layer (student: `student_last_layer`; teacher: depth - 1).

    Returns:
        ascending indices.
    """
    _check_counts(depth, n_keep, "depth")
    if n_keep == 1:
        return [last]
    count = n_keep - 1
    ceiling = min(int(fraction * depth), last - 1)
    start = min(start, ceiling - (count - 1))
    if start < 0:
        raise ConfigError(
            f"n_keep={n_keep} layers do not fit below layer {last} of a {depth}-block stack; choose fewer pairs"
        )
    stride = max(1, (ceiling - start) // (count - 1)) if count > 1 else 1
    return [start + i * stride for i in range(count)] + [last]


def uniform_pairs(student_blocks: int, teacher_blocks: int, n_keep: int) -> LayerPairs:
    """Uniform-k: the release's balanced spacing on both sides (student blocks shifted +1 into `hidden_states`)."""
    student = [block + 1 for block in balanced_layers(student_blocks, n_keep)]
    return LayerPairs("uniform", student, balanced_layers(teacher_blocks, n_keep))


def e2m_last_pairs(student_blocks: int, teacher_blocks: int, n_keep: int,
                   student_last: str = "before_last_block") -> LayerPairs:
    """E2M-Last on both sides; `student_last` picks the student's last layer (see `student_last_layer`)."""
    student = early_to_middle_last(student_blocks, n_keep, student_last_layer(student_blocks, student_last))
    teacher = early_to_middle_last(teacher_blocks, n_keep, teacher_blocks - 1)
    return LayerPairs("e2m_last", student, teacher)
