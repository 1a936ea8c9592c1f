"""Time forward+backward of RocketObjective against the release's straightforward per-pair loop.

Three implementations on the same inputs and the same projector weights:
  ours     RocketObjective: each pair at its exact Matryoshka width, one fused masked reduction, no host sync.
  release  the release's structure: per pair, per sample normalise-and-mean loop, `.item()` per pair for logging.
  masked   the alternative fusion: all pairs stacked through the full width, hidden units masked per pair
           (one big matmul, but ~1/mean(ratio) more FLOPs under the Matryoshka schedule).

Usage:
    python bench/bench_objective.py                       # CPU-sized defaults
    python bench/bench_objective.py --student-dim 4096 --teacher-dim 2048 --batch 8 --tokens 512 --device cuda
On CUDA it also counts host synchronisations per step (torch.cuda.set_sync_debug_mode).
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch
import torch.nn.functional as F

from rocket_openvla.align import RocketConfig, RocketObjective


def release_loop(objective: RocketObjective, student, teacher) -> torch.Tensor:
    bank, metrics, total = objective.projectors, {}, 0
    for pair, (states, target) in enumerate(zip(student, teacher)):
        width = objective.widths[pair]
        x = F.layer_norm(states, (bank.in_dim,), bank.norm_weight[0], bank.norm_bias[0], 1e-5)
        projected = F.linear(F.gelu(F.linear(x, bank.fc1_weight[0, :width], bank.fc1_bias[0, :width])),
                             bank.fc2_weight[0, :, :width], bank.fc2_bias[0])
        pair_loss = 0
        for sample_projected, sample_target in zip(projected, target):
            cos = (F.normalize(sample_projected, dim=-1) * F.normalize(sample_target, dim=-1)).sum(-1)
            pair_loss = pair_loss + 1 - cos.mean()
        pair_loss = pair_loss / projected.shape[0]
        metrics[f"align_loss_layer_{pair}"] = pair_loss.item()
        total = total + pair_loss
    total = total / len(student)
    metrics["align_loss"] = total.item()
    return total


def masked_full_width(objective: RocketObjective, student, teacher) -> torch.Tensor:
    bank = objective.projectors
    x = F.layer_norm(torch.stack(student), (bank.in_dim,), bank.norm_weight[0], bank.norm_bias[0], 1e-5)
    hidden = F.gelu(F.linear(x, bank.fc1_weight[0], bank.fc1_bias[0]))  # [K, B, T, H]
    widths = torch.tensor(objective.widths, device=hidden.device)
    unit_mask = (torch.arange(bank.hidden_dim, device=hidden.device) < widths[:, None]).to(hidden.dtype)
    projected = F.linear(hidden * unit_mask[:, None, None, :], bank.fc2_weight[0], bank.fc2_bias[0])
    cos = F.cosine_similarity(projected.float(), torch.stack(teacher).float(), dim=-1, eps=1e-12)
    return (1 - cos).mean()


def ours(objective: RocketObjective, student, teacher) -> torch.Tensor:
    return objective(student, teacher).loss


def time_step(fn, objective, student, teacher, iters: int, device: torch.device) -> float:
    def step():
        objective.zero_grad(set_to_none=True)
        for s in student:
            s.grad = None
        fn(objective, student, teacher).backward()

    step()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / iters


def count_host_syncs(fn, objective, student, teacher) -> int:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn(objective, student, teacher)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--student-dim", type=int, default=1024)
    parser.add_argument("--teacher-dim", type=int, default=512)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(0)
    config = RocketConfig(student_layers=list(range(1, args.pairs + 1)), teacher_layers=list(range(args.pairs)))
    objective = RocketObjective(config, args.student_dim, args.teacher_dim).to(device)
    student = [torch.randn(args.batch, args.tokens, args.student_dim, device=device, requires_grad=True)
               for _ in range(args.pairs)]
    teacher = [torch.randn(args.batch, args.tokens, args.teacher_dim, device=device) for _ in range(args.pairs)]

    reference = release_loop(objective, student, teacher).item()
    assert abs(ours(objective, student, teacher).item() - reference) < 1e-4, "ours and the release loop disagree"

    print(f"K={args.pairs} Ds={args.student_dim} H=Dt={args.teacher_dim} B={args.batch} T={args.tokens} "
          f"device={device} threads={torch.get_num_threads()} widths={objective.widths}")
    timings = {name: time_step(fn, objective, student, teacher, args.iters, device)
               for name, fn in [("release", release_loop), ("masked", masked_full_width), ("ours", ours)]}
    for name, seconds in timings.items():
        print(f"{name:8s} {seconds * 1e3:9.1f} ms/step   speed-up vs release {timings['release'] / seconds:5.2f}x")
    if device.type == "cuda":
        for name, fn in [("release", release_loop), ("ours", ours)]:
            print(f"{name:8s} host syncs per forward: {count_host_syncs(fn, objective, student, teacher)}")


if __name__ == "__main__":
    main()
