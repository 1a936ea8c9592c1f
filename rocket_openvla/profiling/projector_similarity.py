"""The projector-similarity tool: how alike the pairs' projectors are, in weights and in outputs (paper Fig. 7).

Each pair i is served by projector g(i) at width m_i (`RocketObjective.projector_index`, `.widths`): one shared bank
entry for every pair (ROCKET, shared), or pair i's own (independent). Loading goes through the objective of the run's
own rocket section, so independent projectors stay apart (the release's tool loaded the last pair's projector into
every slot) and the pairs are the trained layers (no layer offset).

  weights  cosine between the pairs' effective weight vectors [fc1[:m_i] | fc2[:, :m_i]] (units above m_i as zeros;
           biases and the input norm are left out: zero- and one-initialised, they would make untrained projectors
           look alike)
  outputs  per pair, normalised projector outputs o_i, student states x_i and teacher targets t_i on the same tokens;
           inputs[i, j] = <x_i, x_j>, outputs[i, j] = <o_i, o_j>, teacher[i, j] = <t_i, t_j>, alignment[i] =
           <o_i, t_i> (= 1 - pair loss), each averaged over valid tokens, then samples, then batches (the release's
           activation similarities)
Ensemble members are compared member to member and averaged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from tqdm import tqdm

from rocket_openvla.align import RocketConfig, RocketObjective
from rocket_openvla.align.loss import masked_alignment_loss
from rocket_openvla.align.release_checkpoint import parse_release_state_dict
from rocket_openvla.backbones.base import device_autocast, eval_mode
from rocket_openvla.errors import ConfigError
from rocket_openvla.profiling.config import ProfileConfig, layout_name
from rocket_openvla.profiling.runs import Subject, profiling_subject
from rocket_openvla.profiling.session import Batch, Session, objective_calls
from rocket_openvla.state_dicts import state_dict_problems
from rocket_openvla.training.checkpoint import TRAINABLE_NAME, load_trainable
from rocket_openvla.training.distributed import DistributedContext
from rocket_openvla.training.step import TrainStep

OBJECTIVE_PREFIX = "objective."  # `TrainStep.objective`'s parameters in a checkpoint's trainable.safetensors
SIMILARITIES = ("inputs", "outputs", "teacher")


def checkpoint_objective(checkpoint: Path, rocket: RocketConfig) -> RocketObjective:
    """The ROCKET objective of a checkpoint of ours, its projectors loaded from `trainable.safetensors` (sizes from
    the tensors, layout from `rocket`, the run's own section)."""
    saved = load_file(str(Path(checkpoint) / TRAINABLE_NAME))
    tensors = {key[len(OBJECTIVE_PREFIX):]: value for key, value in saved.items() if key.startswith(OBJECTIVE_PREFIX)}
    if not tensors:
        raise ConfigError(f"checkpoint {checkpoint} holds no ROCKET projector (a baseline run, rocket.coeff 0)")
    _, hidden_dim, student_dim = tensors["projectors.fc1_weight"].shape
    objective = RocketObjective(_sized(rocket, hidden_dim), student_dim, tensors["projectors.fc2_weight"].shape[1])
    problems = state_dict_problems(objective.state_dict(), tensors)
    if problems:
        raise ConfigError(f"checkpoint {checkpoint}'s projectors do not fit its run's rocket section "
                          f"(share_projector={rocket.share_projector}, {rocket.num_pairs} pairs, ensemble_size="
                          f"{rocket.ensemble_size}): {'; '.join(problems)}")
    objective.load_state_dict(tensors)
    return objective


def release_objective(path: Path, rocket: RocketConfig) -> RocketObjective:
    """The ROCKET objective holding the projectors of a release file (`align_projectors--*.pt`); its layout checks
    (shared copies identical, one projector per slot) are `RocketObjective.load_reference_state_dict`'s."""
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    first = next(iter(parse_release_state_dict(state_dict).values()))
    hidden_dim, student_dim = first["fc1.weight"].shape
    objective = RocketObjective(_sized(rocket, hidden_dim), student_dim, first["fc2.weight"].shape[0])
    objective.load_reference_state_dict(state_dict)
    return objective


def _sized(rocket: RocketConfig, hidden_dim: int) -> RocketConfig:
    return dataclasses.replace(rocket, hidden_dim=hidden_dim)


def effective_weights(objective: RocketObjective, pair: int, member: int = 0) -> torch.Tensor:
    """`[H*Ds + Dt*H]` pair `pair`'s weight matrices as it runs them: units at and above its width as zeros."""
    bank, width = objective.projectors, objective.widths[pair]
    index = objective.projector_index(pair, member)
    fc1, fc2 = bank.fc1_weight[index].detach().clone(), bank.fc2_weight[index].detach().clone()
    fc1[width:] = 0
    fc2[:, width:] = 0
    return torch.cat([fc1.flatten(), fc2.flatten()]).double()


def weight_similarity(objective: RocketObjective) -> torch.Tensor:
    """`[K, K]` cosine between the pairs' effective weights, averaged over ensemble members."""
    matrices = []
    for member in range(objective.ensemble_size):
        vectors = F.normalize(torch.stack([effective_weights(objective, pair, member)
                                           for pair in range(objective.num_pairs)]), dim=1)
        matrices.append(vectors @ vectors.T)
    return torch.stack(matrices).mean(dim=0)


def _masked_cosine_mean(cosine: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`[..., B, T]` cosines -> `[...]` averaged over valid tokens, then samples (the loss's reduction)."""
    return 1.0 - masked_alignment_loss(cosine, mask)


def batch_similarities(objective: RocketObjective, student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor],
                       mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """The similarities of one batch: `inputs`, `outputs`, `teacher` `[K, K]` and `alignment` `[K]`.

    Args:
        student: K `[B, T, Ds]` image-token states; teacher: K `[B, T, Dt]` targets; mask: `[B, T]` bool.
    """
    inputs = F.normalize(torch.stack(student).float(), dim=-1)
    targets = F.normalize(torch.stack(teacher).float(), dim=-1)
    result = {"inputs": _masked_cosine_mean(torch.einsum("ibtd,jbtd->ijbt", inputs, inputs), mask),
              "teacher": _masked_cosine_mean(torch.einsum("ibtd,jbtd->ijbt", targets, targets), mask)}
    outputs, alignment = [], []
    for member in range(objective.ensemble_size):
        projected = F.normalize(torch.stack([
            objective.projectors(states, objective.projector_index(pair, member), objective.widths[pair]).float()
            for pair, states in enumerate(student)]), dim=-1)
        outputs.append(_masked_cosine_mean(torch.einsum("ibtd,jbtd->ijbt", projected, projected), mask))
        alignment.append(_masked_cosine_mean(torch.einsum("ibtd,ibtd->ibt", projected, targets), mask))
    result["outputs"] = torch.stack(outputs).mean(dim=0)
    result["alignment"] = torch.stack(alignment).mean(dim=0)
    return result


@torch.no_grad()
def output_similarities(step: TrainStep, batches: Sequence[Batch], session: Session) -> dict[str, list]:
    """`batch_similarities` averaged over batches and processes, on the inputs the training step gives its
    objective."""
    context = session.context
    sums: dict[str, torch.Tensor] = {}
    with objective_calls(step) as calls, eval_mode(step.policy):
        for batch, targets, valid in tqdm(batches, desc="projector outputs", disable=not context.is_main,
                                          dynamic_ncols=True, leave=False):
            with device_autocast(session.device):
                step(batch, targets, valid)
            (student, teacher, mask), _ = calls.pop()
            for name, value in batch_similarities(step.objective, student, teacher, mask).items():
                sums[name] = sums[name] + value.double() if name in sums else value.double()
    count = torch.tensor(float(len(batches)), dtype=torch.float64, device=context.device)
    if context.is_distributed:
        for value in (*sums.values(), count):
            torch.distributed.all_reduce(value)
    return {name: (value / count).tolist() for name, value in sums.items()}


def profile_projector_similarity(config: ProfileConfig, context: DistributedContext) -> dict[str, Any]:
    """Weight (and with `projector.num_batches`, output) similarity at every saved step, or of a release file;
    returns the JSON record."""
    if config.projector.release_file is not None:
        objective = release_objective(config.projector.release_file, config.rocket)
        steps = [{"file": str(config.projector.release_file), "weights": weight_similarity(objective).tolist()}]
        return _record(config.rocket, config.rocket.student_layers, config.rocket.teacher_layers, objective, steps)
    subject = profiling_subject(config)
    session = Session.open(subject.config, context, lora=True) if config.projector.num_batches else None
    return projector_record(session, subject, config.projector.num_batches)


def projector_record(session: Session | None, subject: Subject, num_batches: int) -> dict[str, Any]:
    """Weight similarity of every saved step of `subject`, and with a session (built from `subject.config`, LoRA
    applied), output similarity over `num_batches` batches."""
    rocket, steps = subject.config.rocket, []
    for saved in subject.saved:
        objective = checkpoint_objective(saved.path, rocket)
        steps.append({"step": saved.step, "weights": weight_similarity(objective).tolist()})
    student_layers, teacher_layers = rocket.student_layers, rocket.teacher_layers  # as configured (weights only)
    if session is not None:
        student_layers, teacher_layers = rocket.resolve_pairs(session.adapter.num_hidden_layers + 1,
                                                              subject.config.teacher.num_layers())
        teacher = session.teacher(teacher_layers)
        batches = session.fixed_batches(teacher, subject.config.run.batch_size, num_batches)
        with session.train_step(rocket, teacher.feature_dim) as step:
            for saved, record in zip(subject.saved, steps):
                load_trainable(step, saved.path)
                record.update(output_similarities(step, batches, session))
    return {**_record(rocket, student_layers, teacher_layers, objective, steps), "run_dir": str(subject.run_dir)}


def _record(rocket: RocketConfig, student_layers: list[int], teacher_layers: list[int], objective: RocketObjective,
            steps: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "tool": "projector_similarity",
        "layout": layout_name(rocket),
        "student_layers": list(student_layers),
        "teacher_layers": list(teacher_layers),
        "pairs": [f"s{s}-t{t}" for s, t in zip(student_layers, teacher_layers)],
        "widths": objective.widths,
        "projectors": objective.projectors.num_projectors,
        "steps": steps,
    }
