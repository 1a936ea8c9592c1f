"""The pi0.5 LIBERO presets (`configs/paper/pi05_libero_*.yaml`) carry the release's recipe and its layer pairs, and
the lerobot quickstart parses. Parsing needs no lerobot, so this runs in the main suite too."""

from pathlib import Path

import draccus
import pytest

from rocket_openvla.integrations.lerobot.backbone_config import LeRobotBackboneConfig
from rocket_openvla.training.config import FinetuneConfig

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def preset(name: str) -> FinetuneConfig:
    config = draccus.parse(FinetuneConfig, config_path=str(CONFIGS / "paper" / f"pi05_libero_{name}.yaml"), args=[])
    config.validate()
    return config


@pytest.mark.parametrize("name", ["rocket", "spatial_forcing", "baseline"])
def test_pi05_presets_carry_the_releases_libero_recipe(name):
    config = preset(name)
    backbone = config.backbone
    assert isinstance(backbone, LeRobotBackboneConfig) and backbone.policy_type == "pi05"
    assert backbone.chunk_size == config.data.num_actions_chunk == 10 and backbone.gradient_checkpointing
    assert (len(backbone.cameras), backbone.empty_cameras, backbone.dtype) == (2, 1, "bfloat16")
    assert (config.run.batch_size, config.run.global_batch_size, config.run.max_steps) == (16, 64, 30_000)
    optim = config.optim
    assert (optim.lr, optim.schedule, optim.warmup_steps, optim.lr_decay_step, optim.min_lr_ratio) == (
        2.5e-5, "cosine", 1000, 30_000, 0.1)
    assert (optim.betas, optim.eps, optim.weight_decay, optim.max_grad_norm) == ([0.9, 0.95], 1e-8, 1e-10, 1.0)
    assert config.rocket.student_token_shift == 0 and config.rocket.input_norm and config.rocket.teacher_pos_embed


def test_pi05_layer_pairs_are_the_releases_in_our_index():
    rocket = preset("rocket").rocket
    assert rocket.coeff == 0.5 and rocket.share_projector and rocket.matryoshka
    # 18-layer PaliGemma: hidden_states has 19 entries, the release's "-1" is the final-norm output, index 18
    assert rocket.resolve_pairs(19, 24) == ([2, 3, 4, 5, 6, 7, 8, 9, 10, 18], [2, 4, 6, 8, 10, 12, 14, 16, 18, 23])
    spatial = preset("spatial_forcing").rocket
    assert spatial.resolve_pairs(19, 24) == ([12], [23]) and not spatial.share_projector
    assert spatial.pair_widths(2048) == [409] and spatial.coeff == 0.5
    assert not preset("baseline").rocket.enabled


def test_lerobot_quickstart_parses():
    config = draccus.parse(FinetuneConfig, config_path=str(CONFIGS / "quickstart_lerobot.yaml"), args=[])
    config.validate()
    assert config.backbone.type == "lerobot" and config.backbone.size == "tiny"
    assert config.backbone.chunk_size == config.data.num_actions_chunk
