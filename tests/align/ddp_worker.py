"""Worker for test_ddp.py: run under `torchrun --nproc-per-node 2`; each rank sees different data."""

import json
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from rocket_openvla.align import RocketConfig, RocketObjective


def main(result_path: str) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)  # same initial projector on every rank, as DDP requires
    config = RocketConfig(student_layers=[1, 2, 3], teacher_layers=[0, 1, 2], hidden_dim=32)
    objective = RocketObjective(config, student_dim=16, teacher_dim=8)
    initial = [p.detach().clone() for p in objective.parameters()]
    model = DistributedDataParallel(objective)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(100 + rank)  # different data per rank
    losses = []
    for _ in range(4):
        student = [torch.randn(4, 6, 16, generator=generator) for _ in range(3)]
        teacher = [torch.randn(4, 6, 8, generator=generator) for _ in range(3)]
        loss = model(student, teacher).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    flat = torch.cat([p.detach().flatten() for p in objective.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    loss_tensor = torch.tensor(losses)
    all_losses = [torch.empty_like(loss_tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(all_losses, loss_tensor)
    if rank == 0:
        moved = max((p.detach() - q).abs().max().item() for p, q in zip(objective.parameters(), initial))
        json.dump({
            "max_param_diff_across_ranks": (gathered[0] - gathered[1]).abs().max().item(),
            "param_change": moved,
            "loss_diff_across_ranks": (all_losses[0] - all_losses[1]).abs().max().item(),
        }, open(result_path, "w"))
    del model  # the DDP reducer must not outlive the process group (gloo aborts at exit otherwise)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
