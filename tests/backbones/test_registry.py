"""The backbone registry: `--backbone.type openvla` selects and configures the native OpenVLA adapter."""

from dataclasses import dataclass, field

import draccus
import pytest

from rocket_openvla.backbones import BackboneConfig, OpenVLAAdapter, OpenVLABackboneConfig, available_backbones


@dataclass
class TrainConfig:
    backbone: BackboneConfig = field(default_factory=OpenVLABackboneConfig)


def test_openvla_is_registered_and_parsed_from_the_command_line():
    assert "openvla" in available_backbones()
    config = draccus.parse(TrainConfig, args=["--backbone.type", "openvla", "--backbone.num_images", "1",
                                              "--backbone.action_head", "diffusion", "--backbone.dtype", "bfloat16"])
    backbone = config.backbone
    assert isinstance(backbone, OpenVLABackboneConfig) and backbone.type == "openvla"
    assert (backbone.num_images, backbone.action_head, backbone.pretrained) == (1, "diffusion", None)
    assert "type: openvla" in draccus.dump(config)


def test_unknown_backbone_type_is_refused():
    with pytest.raises(SystemExit):
        draccus.parse(TrainConfig, args=["--backbone.type", "no-such-vla"])


def test_build_makes_the_tiny_adapter():
    adapter = OpenVLABackboneConfig(num_images=1, use_proprio=False, seed=3).build()
    assert isinstance(adapter, OpenVLAAdapter) and adapter.teacher_input_format == "openvla"
    assert adapter.image_token_span() == (1, 256) and adapter.policy.proprio_projector is None
    assert adapter.num_hidden_layers == 2


@pytest.mark.parametrize("field_name, value, message", [("size", "13b", "backbone.size='13b'"),
                                                        ("dtype", "float7", "backbone.dtype='float7'"),
                                                        ("action_head", "mse", "action_head='mse'")])
def test_bad_config_values_are_named(field_name, value, message):
    with pytest.raises(ValueError, match=message):
        OpenVLABackboneConfig(**{field_name: value}).build()
