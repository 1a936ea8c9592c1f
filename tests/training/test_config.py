"""The YAML presets parse through draccus and say what the release's scripts say."""

from pathlib import Path

import draccus
import pytest

from rocket_openvla.training.config import FinetuneConfig
from rocket_openvla.training.optim import OptimConfig, lr_multiplier

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
PAPER_STUDENT = [2, 4, 6, 8, 10, 12, 14, 16, 18, 31]
PAPER_TEACHER = [2, 4, 6, 8, 10, 12, 14, 16, 18, -1]


def preset(name: str) -> FinetuneConfig:
    config = draccus.parse(FinetuneConfig, config_path=str(CONFIGS / "paper" / f"openvla_libero_{name}.yaml"), args=[])
    config.validate()
    return config


@pytest.mark.parametrize("name", ["rocket", "shared", "naive", "spatial_forcing", "baseline"])
def test_common_release_settings(name):
    config = preset(name)
    assert (config.run.batch_size, config.run.global_batch_size, config.run.max_steps) == (8, 32, 50_005)
    assert (config.run.save_freq, config.run.seed) == (5_000, 42)
    assert (config.optim.lr, config.optim.schedule, config.optim.lr_decay_step, config.optim.warmup_steps) == (
        5e-4, "multistep", 10_000, 0)
    assert config.optim.max_grad_norm is None and config.optim.weight_decay == 0.01
    assert (config.lora.rank, config.lora.effective_alpha, config.lora.dropout, config.lora.init) == (
        32, 16, 0, "gaussian")
    policy = config.backbone.policy
    assert (policy.num_images, policy.use_proprio, policy.action_head, policy.chunk) == (2, True, "l1", 8)
    assert config.backbone.dtype == "bfloat16"
    assert config.data.dataset == "libero_4_task_suites_no_noops" and config.data.image_aug
    assert config.data.shuffle_buffer_size == 100_000
    rocket = config.rocket
    assert (rocket.input_norm, rocket.teacher_pos_embed, rocket.pos_embed_scale, rocket.pooling) == (
        True, True, 0.1, "bilinear")
    assert rocket.student_token_shift == 1 and rocket.ensemble_size == 1


def test_rocket_preset():
    rocket = preset("rocket").rocket
    assert (rocket.student_layers, rocket.teacher_layers, rocket.coeff) == (PAPER_STUDENT, PAPER_TEACHER, 0.5)
    assert rocket.pair_widths(2048) == [409, 591, 773, 955, 1137, 1319, 1501, 1683, 1865, 2048]


def test_ablation_presets():
    assert preset("shared").rocket.pair_widths(2048) == [2048] * 10
    naive = preset("naive").rocket
    assert not naive.share_projector and naive.pair_widths(2048) == [409] * 10
    spatial = preset("spatial_forcing").rocket
    assert (spatial.student_layers, spatial.teacher_layers, spatial.share_projector) == ([24], [-1], False)
    assert spatial.pair_widths(2048) == [409]
    assert not preset("baseline").rocket.enabled


def test_quickstart_parses():
    config = draccus.parse(FinetuneConfig, config_path=str(CONFIGS / "quickstart.yaml"), args=[])
    config.validate()
    assert type(config.teacher).__name__ == "RandomVGGTConfig" and config.data.synthetic.generate
    tiny_hidden_states = 3  # the tiny Llama has 2 blocks
    assert config.rocket.resolve_pairs(tiny_hidden_states, config.teacher.num_layers()) == ([1, 2], [0, 1])


def test_learning_rate_schedules():
    multistep = OptimConfig(schedule="multistep", lr_decay_step=10, warmup_steps=4)
    assert [lr_multiplier(multistep, s) for s in (0, 2, 4, 9, 10)] == pytest.approx([0.1, 0.55, 1.0, 1.0, 0.1])
    cosine = OptimConfig(schedule="cosine", warmup_steps=2, lr_decay_step=12, min_lr_ratio=0.1)
    assert lr_multiplier(cosine, 2) == pytest.approx(1.0)
    assert lr_multiplier(cosine, 7) == pytest.approx(0.55)
    assert lr_multiplier(cosine, 12) == pytest.approx(0.1) and lr_multiplier(cosine, 50) == pytest.approx(0.1)


def pi0_preset(name: str) -> FinetuneConfig:
    path = CONFIGS / "paper" / f"pi0_libero_{name}.yaml"
    config = draccus.parse(FinetuneConfig, config_path=str(path), args=[])
    config.validate()
    return config


@pytest.mark.parametrize("name", ["rocket", "spatial_forcing", "baseline"])
def test_pi0_presets_carry_the_releases_libero_recipe(name):
    config = pi0_preset(name)
    assert type(config.backbone).__name__ == "PI0BackboneConfig" and config.backbone.dtype == "bfloat16"
    assert config.backbone.policy.chunk_size == config.data.num_actions_chunk == 10
    assert (config.run.batch_size, config.run.global_batch_size, config.run.max_steps) == (16, 64, 30_000)
    optim = config.optim
    assert (optim.lr, optim.schedule, optim.warmup_steps, optim.lr_decay_step, optim.min_lr_ratio) == (
        2.5e-5, "cosine", 1000, 30_000, 0.1)
    assert (optim.betas, optim.weight_decay, optim.max_grad_norm) == ([0.9, 0.95], 1e-10, 1.0)
    assert config.rocket.student_token_shift == 0 and config.rocket.input_norm and config.rocket.teacher_pos_embed


def test_pi0_layer_lists_are_the_releases_own():
    rocket = pi0_preset("rocket").rocket
    assert rocket.student_layers == [2, 3, 4, 5, 6, 7, 8, 9, 10, -1] and rocket.coeff == 0.5
    assert rocket.resolve_pairs(19, 24) == ([2, 3, 4, 5, 6, 7, 8, 9, 10, 18], [2, 4, 6, 8, 10, 12, 14, 16, 18, 23])
    spatial = pi0_preset("spatial_forcing").rocket
    assert (spatial.student_layers, spatial.teacher_layers, spatial.share_projector) == ([12], [-1], False)
    assert spatial.pair_widths(2048) == [409] and spatial.coeff == 0.5
    assert not pi0_preset("baseline").rocket.enabled


def test_pi0_quickstart_parses():
    config = draccus.parse(FinetuneConfig, config_path=str(CONFIGS / "quickstart_pi0.yaml"), args=[])
    config.validate()
    assert config.backbone.type == "pi0" and config.rocket.resolve_pairs(5, 4) == ([1, 2, 3, 4], [0, 1, 2, 3])
