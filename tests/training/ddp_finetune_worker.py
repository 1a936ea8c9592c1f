"""Worker for test_torchrun.py: the real Trainer under torchrun, then a cross-rank comparison of every trainable
parameter. Usage: torchrun --nproc-per-node 2 ddp_finetune_worker.py <result.json> --config_path ... [overrides]"""

import json
import sys

import draccus
import torch
import torch.distributed as dist

from rocket_openvla.training.config import FinetuneConfig
from rocket_openvla.training.distributed import init_distributed
from rocket_openvla.training.loop import Trainer


def main() -> None:
    result_path, arguments = sys.argv[1], sys.argv[2:]
    config = draccus.parse(FinetuneConfig, args=arguments)
    context = init_distributed()
    trainer = Trainer(config, context)
    trainer.train()
    names = sorted(name for name, p in trainer.module.named_parameters() if p.requires_grad)
    parameters = dict(trainer.module.named_parameters())
    flat = torch.cat([parameters[name].detach().flatten() for name in names])
    gathered = [torch.empty_like(flat) for _ in range(context.world_size)]
    dist.all_gather(gathered, flat)
    if context.is_main:
        json.dump({
            "max_abs_diff": (gathered[0] - gathered[1]).abs().max().item(),
            "groups": sorted({name.split(".")[1] if name.startswith("policy.") else name.split(".")[0]
                              for name in names}),
            "run_dir": str(trainer.run_dir),
        }, open(result_path, "w"))
    del trainer  # the DDP reducer must not outlive the process group (gloo aborts at exit otherwise)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
