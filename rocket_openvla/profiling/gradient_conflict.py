"""The gradient-conflict tool: pairwise cosine between the per-pair alignment-loss gradients (paper Fig. 1).

For each batch, the finetune loop's `TrainStep` runs (the real ROCKET objective: projector layout, Matryoshka widths,
token shift and masks as configured), and each pair's loss L_i is differentiated with respect to a parameter set
theta (default: the LoRA weights of the first decoder block, the release's choice):

    C_ij = <g_i, g_j> / (|g_i| |g_j| + 1e-8),   g_i = dL_i / d theta   (flattened over theta)

The per-batch matrices are averaged over batches and processes, for each projector layout and each saved step.
Unlike the release's profiler (whose projector call raised and fell back to full width), Matryoshka is on when the
config has it on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from rocket_openvla.backbones.base import device_autocast, eval_mode
from rocket_openvla.errors import ConfigError
from rocket_openvla.profiling.config import GradientSettings, ProfileConfig, layout_name, with_layout
from rocket_openvla.profiling.runs import Subject, profiling_subject
from rocket_openvla.profiling.session import Batch, Session, objective_calls
from rocket_openvla.training.checkpoint import load_trainable
from rocket_openvla.training.distributed import DistributedContext
from rocket_openvla.training.step import TrainStep

COSINE_EPS = 1e-8  # the release's


def first_block_prefix(module: nn.Module, block_input: nn.Module) -> str:
    """Name (within `module`) of the decoder block whose input `block_input` reads: `block_input` itself or its
    nearest ancestor that is an entry of an `nn.ModuleList` (e.g. `...layers.0` for `...layers.0.input_layernorm`)."""
    modules = dict(module.named_modules())
    name = next(name for name, candidate in modules.items() if candidate is block_input)
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if isinstance(modules[".".join(parts[:end - 1])], nn.ModuleList):
            return ".".join(parts[:end])
    raise ValueError(f"{name} is not inside an nn.ModuleList of decoder blocks")


def select_parameters(step: TrainStep, pattern: str | None) -> dict[str, nn.Parameter]:
    """Trainable parameters of `step` whose names match `pattern` (`re.search`); None: the LoRA weights of the first
    decoder block (the one whose input is `hidden_states[0]`)."""
    trainable = {name: p for name, p in step.named_parameters() if p.requires_grad}
    if pattern is None:
        block = first_block_prefix(step, step.adapter.capture_points().layer_inputs[0])
        chosen = {name: p for name, p in trainable.items() if name.startswith(block + ".") and "lora_" in name}
        what, fix = f"LoRA weights under {block}", "set --gradient.parameters to a regular expression"
    else:
        chosen = {name: p for name, p in trainable.items() if re.search(pattern, name)}
        what, fix = f"trainable parameters matching {pattern!r}", "check the names in a checkpoint's trainable file"
    if not chosen:
        raise ConfigError(f"gradient.parameters={pattern!r}: no {what}; {fix}")
    return chosen


def pair_gradients(pair_losses: torch.Tensor, parameters: Sequence[torch.Tensor]) -> torch.Tensor:
    """`[K, P]`: row i is dL_i / d theta flattened (zeros where L_i does not reach a parameter)."""
    rows = []
    for loss in pair_losses:
        grads = torch.autograd.grad(loss, parameters, retain_graph=True, allow_unused=True)
        rows.append(torch.cat([(torch.zeros_like(p) if g is None else g).flatten().double()
                               for g, p in zip(grads, parameters)]))
    return torch.stack(rows)


def cosine_matrix(gradients: torch.Tensor) -> torch.Tensor:
    """`[K, K]` pairwise cosine of the rows of `gradients [K, P]` (eps 1e-8 in the denominator, as the release)."""
    norms = gradients.norm(dim=1)
    return gradients @ gradients.T / (norms[:, None] * norms[None, :] + COSINE_EPS)


def conflict_matrix(step: TrainStep, batches: Sequence[Batch], parameters: Sequence[nn.Parameter],
                    session: Session, label: str) -> tuple[torch.Tensor, int]:
    """Mean over batches and processes of the per-batch cosine matrices; returns `(matrix [K, K], batches)`."""
    context = session.context
    total = torch.zeros(step.objective.num_pairs, step.objective.num_pairs, dtype=torch.float64, device=context.device)
    with objective_calls(step) as calls, eval_mode(step.policy):
        for batch, targets, valid in tqdm(batches, desc=label, disable=not context.is_main, dynamic_ncols=True,
                                          leave=False):
            with device_autocast(session.device):
                step(batch, targets, valid)
            total += cosine_matrix(pair_gradients(calls.pop()[1].pair_losses, parameters))
    count = torch.tensor(float(len(batches)), dtype=torch.float64, device=context.device)
    if context.is_distributed:
        torch.distributed.all_reduce(total)
        torch.distributed.all_reduce(count)
    return total / count, int(count.item())


def summarise(matrix: torch.Tensor) -> dict[str, Any]:
    """The matrix and its mean off-diagonal cosine, per pair and overall."""
    k = matrix.shape[0]
    off = ~torch.eye(k, dtype=torch.bool, device=matrix.device)
    per_pair = (matrix * off).sum(dim=1) / max(k - 1, 1)
    return {"matrix": matrix.tolist(), "mean_off_diagonal": float(matrix[off].mean()) if k > 1 else None,
            "pair_mean_off_diagonal": per_pair.tolist()}


def profile_gradient_conflict(config: ProfileConfig, context: DistributedContext) -> dict[str, Any]:
    """Gradient-conflict matrices for each projector layout (at initialisation) or for each saved step of a run;
    returns the JSON record."""
    subject = profiling_subject(config)
    return gradient_record(Session.open(subject.config, context, lora=True), subject, config.gradient)


def gradient_record(session: Session, subject: Subject, settings: GradientSettings) -> dict[str, Any]:
    """`profile_gradient_conflict` on an open session (built from `subject.config`, LoRA applied)."""
    model_config, rocket = subject.config, subject.config.rocket
    student_layers, teacher_layers = rocket.resolve_pairs(session.adapter.num_hidden_layers + 1,
                                                          model_config.teacher.num_layers())
    teacher = session.teacher(teacher_layers)
    batches = session.fixed_batches(teacher, model_config.run.batch_size, settings.num_batches)
    names = settings.layouts or [layout_name(rocket)]
    layouts, record = {}, {}
    for name in names:
        with session.train_step(with_layout(rocket, name), teacher.feature_dim) as step:
            parameters = select_parameters(step, settings.parameters)
            steps = []
            for saved in subject.saved or [None]:
                if saved is not None:
                    load_trainable(step, saved.path)
                matrix, count = conflict_matrix(step, batches, list(parameters.values()), session,
                                                f"{name} step {saved.step if saved else 0}")
                steps.append({"step": saved.step if saved else 0, "num_batches": count, **summarise(matrix)})
            layouts[name] = {"widths": step.objective.widths, "steps": steps}
            record["parameters"] = {"pattern": settings.parameters, "tensors": len(parameters),
                                    "elements": sum(p.numel() for p in parameters.values()),
                                    "names": sorted(parameters)}
    return {
        "tool": "gradient_conflict",
        "backbone": model_config.backbone.type,
        "run_dir": str(subject.run_dir),
        "student_layers": student_layers,
        "teacher_layers": teacher_layers,
        "pairs": [f"s{s}-t{t}" for s, t in zip(student_layers, teacher_layers)],
        "samples_per_batch": model_config.run.batch_size,
        **record,
        "layouts": layouts,
    }
