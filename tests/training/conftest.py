"""Tiny finetune configs shared by the training tests (and the deploy, profiling and integration tests); the
generated dataset they read is `rlds_root` of tests/conftest.py."""

from pathlib import Path

import pytest
import yaml

from tests.conftest import DATASET

# The quickstarts' tiny set-ups, small enough for a test, per backbone.
BACKBONE_SECTIONS = {
    # 2-layer OpenVLA: hidden_states 1 (after block 0) and 2 (after the final norm), the release's one-token shift
    "openvla": {"backbone": {"type": "openvla", "size": "tiny"},
                "rocket": {"student_layers": [1, 2], "teacher_layers": [0, 1], "student_token_shift": 1}},
    # 4-layer PI0 VLM, three camera slots (the third absent); the last block is not aligned, so DDP meets parameters
    # without a gradient (the last block's MLP feeds nothing else)
    "pi0": {"backbone": {"type": "pi0", "size": "tiny", "policy": {"chunk_size": 8}},
            "rocket": {"student_layers": [1, 2], "teacher_layers": [0, 1]}},
}


def tiny_config_dict(rlds_root: Path, run_root: Path, backbone: str = "openvla", **sections) -> dict:
    """A tiny finetune config: the backbone's tiny model, a 2-block random VGGT at 224 px, a few steps."""
    config = {
        "teacher": {"type": "vggt_random", "image_size": 224, "depth": 2},
        "rocket": {"coeff": 0.5},
        "data": {"data_root_dir": str(rlds_root), "dataset": DATASET, "shuffle_buffer_size": 32,
                 "num_parallel_calls": 1, "num_parallel_reads": 1},
        "lora": {"rank": 4},
        "optim": {"lr": 1e-3},
        "run": {"max_steps": 4, "batch_size": 2, "save_freq": 2, "log_freq": 1, "run_root_dir": str(run_root),
                "run_id": "test"},
        "wandb": {"mode": "disabled"},
    }
    for section, values in [*BACKBONE_SECTIONS[backbone].items(), *sections.items()]:
        config.setdefault(section, {}).update(values)
    return config


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def load_config(rlds_root: Path, run_root: Path, backbone: str = "openvla", **sections):
    """A parsed FinetuneConfig (through draccus, as the entry point does)."""
    import draccus

    from rocket_openvla.training.config import FinetuneConfig

    config = tiny_config_dict(rlds_root, run_root, backbone, **sections)
    path = write_config(run_root.parent / f"{run_root.name}.yaml", config)
    return draccus.parse(FinetuneConfig, config_path=str(path), args=[])


@pytest.fixture(scope="session")
def teacher_cache(rlds_root, tmp_path_factory):
    """`(config, writer)`: a float32 teacher cache of the whole dataset (every frame, an episode per shard), written
    by the precompute in this process from the tiny openvla config."""
    import torch

    from rocket_openvla.training.distributed import DistributedContext
    from rocket_openvla.training.precompute import CacheWriter

    tmp_path = tmp_path_factory.mktemp("teacher_cache")
    config = load_config(rlds_root, tmp_path / "runs", teacher_cache={"dir": str(tmp_path / "cache"),
                                                                      "dtype": "float32"}, data={"image_aug": False})
    writer = CacheWriter(config, DistributedContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu")))
    writer.run()
    return config, writer
