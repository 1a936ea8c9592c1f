"""The backbone registry: `--backbone.type openvla` selects and configures the native OpenVLA adapter."""

import subprocess
import sys
from dataclasses import dataclass, field

import draccus
import pytest
import torch

from rocket_openvla.backbones import BackboneConfig, OpenVLAAdapter, OpenVLABackboneConfig, available_backbones
from rocket_openvla.backbones.openvla import PolicySpec
from rocket_openvla.errors import ConfigError


@dataclass
class TrainConfig:
    backbone: BackboneConfig = field(default_factory=OpenVLABackboneConfig)


def test_openvla_is_registered_and_parsed_from_the_command_line():
    assert "openvla" in available_backbones()
    config = draccus.parse(TrainConfig, args=["--backbone.type", "openvla", "--backbone.policy.num_images", "1",
                                              "--backbone.policy.action_head", "diffusion",
                                              "--backbone.dtype", "bfloat16"])
    backbone = config.backbone
    assert isinstance(backbone, OpenVLABackboneConfig) and backbone.type == "openvla"
    assert backbone.policy == PolicySpec(num_images=1, action_head="diffusion")
    assert (backbone.dtype, backbone.pretrained) == ("bfloat16", None)
    assert "type: openvla" in draccus.dump(config)


def test_a_yaml_without_type_gets_the_default_backbone(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("backbone:\n  policy:\n    chunk: 4\n")
    config = draccus.parse(TrainConfig, config_path=str(path), args=[])
    assert isinstance(config.backbone, OpenVLABackboneConfig) and config.backbone.policy.chunk == 4


def test_unknown_backbone_type_is_refused_naming_the_registered_ones(capsys):
    assert {"openvla", "pi0", "paligemma"} <= set(available_backbones())
    with pytest.raises(SystemExit):
        draccus.parse(TrainConfig, args=["--backbone.type", "no-such-vla"])
    message = capsys.readouterr().err.split("invalid choice: 'no-such-vla' (choose from ")[1]
    assert all(f"'{name}'" in message for name in available_backbones())


def test_parsing_a_backbone_config_imports_no_model_code():
    code = (
        "import sys, draccus\n"
        "from rocket_openvla.backbones import OpenVLABackboneConfig\n"
        "config = draccus.parse(OpenVLABackboneConfig, args=['--policy.action_head', 'discrete'])\n"
        "config.validate()\n"
        "print(sorted(m for m in ('transformers', 'peft', 'timm', 'tensorflow') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_build_makes_the_tiny_adapter():
    adapter = OpenVLABackboneConfig(policy=PolicySpec(num_images=1, use_proprio=False), seed=3).build()
    assert isinstance(adapter, OpenVLAAdapter) and adapter.teacher_input_format == "openvla"
    assert adapter.camera_grids == ((16, 16),) and adapter.policy.proprio_projector is None
    assert adapter.num_hidden_layers == 2


@pytest.mark.parametrize("field_name, value, message", [("size", "13b", "backbone.size='13b'"),
                                                        ("dtype", "float7", "backbone.dtype='float7'"),
                                                        ("attn_implementation", "xformers", "attn_implementation")])
def test_bad_config_values_are_named(field_name, value, message):
    with pytest.raises(ConfigError, match=message):
        OpenVLABackboneConfig(**{field_name: value}).validate()


def test_bad_policy_values_are_named():
    with pytest.raises(ConfigError, match="backbone.policy.action_head='mse'"):
        PolicySpec(action_head="mse")
    with pytest.raises(ConfigError, match="backbone.policy.chunk=0"):
        PolicySpec(chunk=0)


def test_bfloat16_build_keeps_the_proprio_projector_in_float32():
    adapter = OpenVLABackboneConfig(dtype="bfloat16").build()
    policy = adapter.policy
    assert {p.dtype for p in policy.vla.parameters()} == {p.dtype for p in policy.action_head.parameters()} == {
        torch.bfloat16}
    assert {p.dtype for p in policy.proprio_projector.parameters()} == {torch.float32}
