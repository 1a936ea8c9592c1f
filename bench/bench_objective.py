"""Time forward+backward of RocketObjective against the release's straightforward per-pair loop.

Three implementations on the same inputs and the same projector weights:
  ours     RocketObjective: each pair at its exact Matryoshka width, one fused masked reduction, no host sync.
  release  the release's structure: per pair, per sample normalise-and-mean loop, `.item()` per pair for logging.
  masked   the alternative fusion: all pairs stacked through the full width, hidden units masked per pair
           (one big matmul, but ~1/mean(ratio) more FLOPs under the Matryoshka schedule).

Usage:
    python bench/bench_objective.py                       # CPU-sized defaults
    python bench/bench_objective.py --student-dim 4096 --teacher-dim 2048 --batch 8 --tokens 512 --device cuda
    python bench/bench_objective.py --quick --json objective.json
Host synchronisations per forward + backward are counted too (bench/host_syncs.py): on CUDA by torch's sync debugger,
on CPU as the operators that would sync on CUDA.
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F
from host_syncs import count_host_syncs
from report import SEED, Ratio, parse_args, print_ratios, settings_of, write_report
from timing import timed

from rocket_openvla.align import RocketConfig, RocketObjective
from rocket_openvla.backbones.base import device_autocast


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
    """Mean seconds of one forward + backward."""
    def step():
        objective.zero_grad(set_to_none=True)
        for s in student:
            s.grad = None
        with device_autocast(device):
            fn(objective, student, teacher).backward()

    return statistics.mean(timed(step, iters, device))


def run(pairs: int, student_dim: int, teacher_dim: int, batch: int, tokens: int, iters: int,
        device: torch.device) -> tuple[dict, list[Ratio]]:
    """Seconds per forward + backward of each implementation and host syncs per forward + backward; student states
    are bf16 on CUDA (what the autocast forward of the VLA hands the objective), fp32 on CPU."""
    torch.manual_seed(SEED)
    config = RocketConfig(student_layers=list(range(1, pairs + 1)), teacher_layers=list(range(pairs)))
    objective = RocketObjective(config, student_dim, teacher_dim).to(device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    student = [torch.randn(batch, tokens, student_dim, device=device, dtype=dtype, requires_grad=True)
               for _ in range(pairs)]
    teacher = [torch.randn(batch, tokens, teacher_dim, device=device) for _ in range(pairs)]

    with device_autocast(device):
        reference = release_loop(objective, student, teacher).item()
        difference = abs(ours(objective, student, teacher).item() - reference)
    assert difference < (2e-2 if dtype == torch.bfloat16 else 1e-4), f"ours and the release loop differ by {difference}"

    implementations = [("release", release_loop), ("masked", masked_full_width), ("ours", ours)]
    seconds = {name: time_step(fn, objective, student, teacher, iters, device) for name, fn in implementations}
    syncs = {}
    for name, fn in implementations:
        def forward_backward(fn=fn) -> None:
            with device_autocast(device):
                fn(objective, student, teacher).backward()
        syncs[name] = count_host_syncs(forward_backward, device)["count"]
    results = {"seconds": seconds, "host_syncs": syncs, "widths": objective.widths, "dtype": str(dtype)}
    ratios = [
        Ratio("objective: release loop / ours", seconds["release"] / seconds["ours"], "time, x (speed-up of ours)"),
        Ratio("objective: masked full width / ours", seconds["masked"] / seconds["ours"], "time, x"),
        Ratio("objective host syncs: release loop", syncs["release"], f"count (K + 1 = {pairs + 1} .item() calls)"),
        Ratio("objective host syncs: ours", syncs["ours"], "count, must be 0"),
    ]
    return results, ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--student-dim", type=int, default=1024)
    parser.add_argument("--teacher-dim", type=int, default=512)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parse_args(parser, {"batch": 2, "iters": 1})
    device = torch.device(args.device)
    results, ratios = run(args.pairs, args.student_dim, args.teacher_dim, args.batch, args.tokens, args.iters, device)
    print(f"K={args.pairs} Ds={args.student_dim} H=Dt={args.teacher_dim} B={args.batch} T={args.tokens} "
          f"device={device} threads={torch.get_num_threads()} widths={results['widths']}")
    seconds = results["seconds"]
    for name, value in seconds.items():
        print(f"{name:8s} {value * 1e3:9.1f} ms/step   speed-up vs release {seconds['release'] / value:5.2f}x   "
              f"host syncs {results['host_syncs'][name]}")
    print_ratios(ratios)
    write_report(args.json, "objective", settings_of(args), results,
                 ratios)


if __name__ == "__main__":
    main()
