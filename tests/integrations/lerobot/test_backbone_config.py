"""`--backbone.type lerobot` in every environment: the finetune config parses it without lerobot or model code, bad
values are named, and without lerobot `build()` says how to get it. (Runs in the main suite and the lerobot venv.)"""

import importlib.util
import subprocess
import sys

import draccus
import pytest

from rocket_openvla.backbones import available_backbones
from rocket_openvla.errors import ConfigError
from rocket_openvla.integrations.lerobot.backbone_config import LIBERO_CAMERAS, LeRobotBackboneConfig

LEROBOT_INSTALLED = importlib.util.find_spec("lerobot") is not None


def test_the_finetune_config_selects_lerobot_from_the_command_line():
    from rocket_openvla.training.config import FinetuneConfig

    assert "lerobot" in available_backbones()
    config = draccus.parse(FinetuneConfig, args=[
        "--backbone.type", "lerobot", "--backbone.policy_type", "pi05", "--backbone.chunk_size", "10",
        "--backbone.empty_cameras", "1", "--backbone.cameras", "[observation.images.base_0_rgb]",
    ])
    backbone = config.backbone
    assert isinstance(backbone, LeRobotBackboneConfig) and backbone.type == "lerobot"
    assert (backbone.policy_type, backbone.chunk_size, backbone.empty_cameras) == ("pi05", 10, 1)
    assert backbone.cameras == ["observation.images.base_0_rgb"] and backbone.random_weights
    assert "type: lerobot" in draccus.dump(config)
    assert LeRobotBackboneConfig().cameras == list(LIBERO_CAMERAS)


def test_parsing_imports_neither_lerobot_nor_model_code():
    code = (
        "import sys, draccus\n"
        "from rocket_openvla.integrations.lerobot.backbone_config import LeRobotBackboneConfig\n"
        "config = draccus.parse(LeRobotBackboneConfig, args=['--policy_type', 'smolvla'])\n"
        "config.validate()\n"
        "print(sorted(m for m in ('lerobot', 'transformers', 'peft', 'tensorflow') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(("values", "message"), [
    ({"policy_type": "pi1"}, "backbone.policy_type='pi1'"),
    ({"size": "small"}, "backbone.size='small'"),
    ({"dtype": "float16"}, "backbone.dtype='float16'"),
    ({"cameras": ["wrist"]}, "observation.images."),
    ({"cameras": []}, r"backbone.cameras=\[\]"),
    ({"empty_cameras": -1}, "backbone.empty_cameras=-1"),
    ({"chunk_size": 0}, "backbone.chunk_size=0"),
    ({"policy_type": "smolvla", "gradient_checkpointing": True}, "SmolVLA has no gradient checkpointing"),
])
def test_bad_values_are_named(values, message):
    with pytest.raises(ConfigError, match=message):
        LeRobotBackboneConfig(**values).validate()


def test_a_policy_directory_config_reads_everything_from_the_directory():
    config = LeRobotBackboneConfig(policy_type="pi05", tokenizer="tok", chunk_size=10).for_policy_dir("run/policy")
    assert (config.pretrained, config.base, config.tokenizer) == ("run/policy", None, None)
    assert (config.policy_type, config.chunk_size) == ("pi05", 10)


@pytest.mark.skipif(LEROBOT_INSTALLED, reason="lerobot is installed here")
def test_without_lerobot_build_says_how_to_get_it():
    with pytest.raises(ConfigError, match="scripts/test_lerobot.sh"):
        LeRobotBackboneConfig().build()
