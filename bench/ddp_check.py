"""Two processes, one DDP wrapper around the ROCKET `TrainStep`: every trainable weight stays identical across ranks.

Each rank trains the tiny OpenVLA (configs/quickstart.yaml, teacher at 224 px) on its own batch for --steps AdamW steps
(so unsynchronised gradients would make the ranks diverge), then every trainable tensor (LoRA, ROCKET projector,
action head, proprio projector) is compared with rank 0's, bit for bit. nccl on GPUs, gloo on CPU; bf16 autocast on
CUDA, as training. Run by bench/gpu_check.py:

    torchrun --standalone --nproc-per-node 2 bench/ddp_check.py --json ddp.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.distributed as dist
from bench_step import StepBench, preset
from torch.nn.parallel import DistributedDataParallel

from rocket_openvla.align import RocketObjective
from rocket_openvla.backbones.base import device_autocast
from rocket_openvla.training.distributed import init_distributed, shutdown_distributed
from rocket_openvla.training.optim import build_optimizer

GROUPS = {"rocket projector": "objective.", "lora": "lora_", "heads": "policy.action_head."}


def gathered(values: torch.Tensor) -> list[torch.Tensor]:
    parts = [torch.empty_like(values) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, values)
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    context = init_distributed()
    if context.world_size < 2:
        raise SystemExit("run under torchrun with --nproc-per-node 2 (or more)")
    config = preset("tiny")
    config.teacher.image_size = 224
    bench = StepBench(config, args.batch, context.device, data_seed=context.rank)
    teacher = bench.teacher(position_term=True)
    targets = teacher(bench.adapter.teacher_images(bench.batch))
    module = bench.train_step(RocketObjective(config.rocket, bench.adapter.hidden_size, teacher.feature_dim))
    unused = bench.adapter.ddp_find_unused_parameters(bench.student_layers)
    device_ids = [context.device.index] if context.device.type == "cuda" else None
    model = DistributedDataParallel(module, device_ids=device_ids, find_unused_parameters=unused)
    optimizer, _ = build_optimizer(config.optim, [module])
    trainable = {name: p for name, p in module.named_parameters() if p.requires_grad}
    initial = torch.cat([p.detach().float().flatten() for p in trainable.values()])
    losses = []
    for _ in range(args.steps):
        optimizer.zero_grad(set_to_none=True)
        with device_autocast(context.device):
            output = model(bench.batch, targets)
            output.loss.backward()
        optimizer.step()
        losses.append(output.loss.detach().float())

    differences = {}
    for group, marker in {"all trainable": "", **GROUPS}.items():
        tensors = [p.detach().float().flatten() for name, p in trainable.items() if marker in name]
        if not tensors:
            raise RuntimeError(f"no trainable parameter name contains {marker!r}: {sorted(trainable)[:8]} ...")
        parts = gathered(torch.cat(tensors))
        differences[group] = {"tensors": len(tensors),
                              "max_abs_difference": max(float((part - parts[0]).abs().max()) for part in parts)}
    moved = float((torch.cat([p.detach().float().flatten() for p in trainable.values()]) - initial).abs().max())
    rank_losses = [[round(float(v), 6) for v in part] for part in gathered(torch.stack(losses))]
    if context.is_main:
        identical = all(group["max_abs_difference"] == 0 for group in differences.values())
        result = {"world_size": context.world_size, "backend": dist.get_backend(), "device": str(context.device),
                  "steps": args.steps, "differences": differences, "max_weight_change": moved,
                  "losses_per_rank": rank_losses, "ranks_saw_different_data": rank_losses[0] != rank_losses[1],
                  "identical": identical}
        args.json.write_text(json.dumps(result, indent=1) + "\n")
        print(json.dumps(result, indent=1))
    shutdown_distributed()


if __name__ == "__main__":
    main()
