"""lerobot policies for `--backbone.type lerobot`: lerobot's config from ours, a random (tiny) policy, a lerobot
policy directory or one of our run's policy directories, and the tokenizer.

Policy directories:
    lerobot's           config.json + model.safetensors (`PreTrainedPolicy.save_pretrained`, e.g. lerobot/pi05_base)
    ours (LoRA)         config.json (lerobot's) + lora_adapter/ + policy_config.json (+ tokenizer, statistics); the
                        adapter records its base: a lerobot directory (a random run's `base_model/`)
    ours (merged)       a lerobot directory + policy_config.json
`policy_config.json` (`LeRobotPolicySpec`) says whether the policy is tiny; without it a directory is lerobot-sized.
The data defines the image / state / action features (as lerobot's make_policy does), so `backbone.cameras` etc.
override the directory's config.
"""

from __future__ import annotations

import contextlib
import importlib
import json
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import safe_open
from torch import nn

from rocket_openvla.backbones.base import POLICY_CONFIG_NAME
from rocket_openvla.backbones.lora import LORA_DIR, load_with_lora_adapter
from rocket_openvla.backbones.registry import spec_from_dict
from rocket_openvla.errors import ConfigError, MissingInputError
from rocket_openvla.files import write_text
from rocket_openvla.integrations.lerobot.configuration_lerobot import LeRobotPolicySpec
from rocket_openvla.integrations.lerobot.tiny import TINY_IMAGE_SIZE, TINY_NUM_VLM_LAYERS, tiny_lerobot_models

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from rocket_openvla.integrations.lerobot.backbone_config import LeRobotBackboneConfig

LEROBOT_VERSION = "0.6.1"
WEIGHTS_NAME = "model.safetensors"  # lerobot's single weights file
LEROBOT_CONFIG_NAME = "config.json"
_CLASSES = {  # policy type -> (module, policy class, config module, config class)
    "pi0": ("lerobot.policies.pi0.modeling_pi0", "PI0Policy", "lerobot.policies.pi0.configuration_pi0", "PI0Config"),
    "pi05": ("lerobot.policies.pi05.modeling_pi05", "PI05Policy", "lerobot.policies.pi05.configuration_pi05",
             "PI05Config"),
    "smolvla": ("lerobot.policies.smolvla.modeling_smolvla", "SmolVLAPolicy",
                "lerobot.policies.smolvla.configuration_smolvla", "SmolVLAConfig"),
}


def import_lerobot() -> None:
    """Fail with the fix when lerobot is not installed here."""
    try:
        importlib.import_module("lerobot")
    except ImportError as error:
        raise ConfigError(
            f"backbone.type=lerobot needs lerobot {LEROBOT_VERSION}, which is not installed in this Python "
            "environment; it needs Python >= 3.12 and its own pins: `pip install -e '.[lerobot]'` in a Python 3.12 "
            "venv, or run scripts/test_lerobot.sh, which builds one"
        ) from error


def policy_class(policy_type: str) -> type[nn.Module]:
    module, name, _, _ = _CLASSES[policy_type]
    return getattr(importlib.import_module(module), name)


def config_class(policy_type: str) -> type:
    _, _, module, name = _CLASSES[policy_type]
    return getattr(importlib.import_module(module), name)


def lerobot_config(options: LeRobotBackboneConfig, config: Any | None = None) -> Any:
    """lerobot's config of the policy `options` describes: `config` (a directory's) or a fresh one, with the data's
    features and the settings `options` gives."""
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.utils.constants import ACTION, OBS_STATE

    smolvla = options.policy_type == "smolvla"
    if config is None:
        config = config_class(options.policy_type)(device="cpu")
        side = options.image_size or (TINY_IMAGE_SIZE[options.policy_type] if options.size == "tiny" else None)
        if side is not None:
            setattr(config, "resize_imgs_with_padding" if smolvla else "image_resolution", (side, side))
        if smolvla and options.size == "tiny":
            config.num_vlm_layers = TINY_NUM_VLM_LAYERS
    elif config.type != options.policy_type:
        raise ConfigError(
            f"backbone.policy_type={options.policy_type!r} but the directory holds a lerobot {config.type!r} policy; "
            f"set backbone.policy_type={config.type!r}"
        )
    width, height = image_size(config) or (None, None)
    config.input_features = {key: PolicyFeature(FeatureType.VISUAL, (3, height, width)) for key in options.cameras}
    config.input_features[OBS_STATE] = PolicyFeature(FeatureType.STATE, (options.state_dim,))
    config.output_features = {ACTION: PolicyFeature(FeatureType.ACTION, (options.action_dim,))}
    config.empty_cameras = options.empty_cameras
    config.device = "cpu"  # the trainer moves the policy to its device
    if options.chunk_size is not None:
        config.chunk_size = config.n_action_steps = options.chunk_size
    for name in ("train_expert_only", "freeze_vision_encoder"):
        if getattr(options, name) is not None:
            setattr(config, name, getattr(options, name))
    if smolvla:
        config.load_vlm_weights = False  # random, or the directory's model.safetensors holds the VLM too
        if options.vlm_model_name is not None:
            config.vlm_model_name = options.vlm_model_name
    else:
        config.gradient_checkpointing = options.gradient_checkpointing
        if options.dtype is not None:
            config.dtype = options.dtype
    return config


def image_size(config: Any) -> tuple[int, int] | None:
    """(width, height) lerobot resizes (with padding) camera images to; None: SmolVLA takes them as they come."""
    return config.resize_imgs_with_padding if config.type == "smolvla" else config.image_resolution[::-1]


@contextlib.contextmanager
def built_at(spec: LeRobotPolicySpec) -> Iterator[None]:
    """lerobot builds models of `spec.size` inside the block."""
    with tiny_lerobot_models(spec.policy_type) if spec.size == "tiny" else contextlib.nullcontext():
        yield


def build_lerobot_policy(options: LeRobotBackboneConfig, trainable_lora: bool = True) -> tuple[nn.Module,
                                                                                              LeRobotPolicySpec]:
    """The lerobot policy (peft-wrapped when loaded from a LoRA run directory) and its spec."""
    import_lerobot()
    torch.manual_seed(options.seed)
    if options.pretrained is not None:
        policy, spec = load_lerobot_policy(Path(options.pretrained), options, trainable_lora)
    else:
        spec = LeRobotPolicySpec(options.policy_type, options.size)
        with built_at(spec):
            policy = policy_class(options.policy_type)(lerobot_config(options))
    if options.policy_type == "smolvla" and options.dtype is not None:
        policy.to(getattr(torch, options.dtype))
    return policy, spec


def load_lerobot_policy(path: Path, options: LeRobotBackboneConfig, trainable_lora: bool) -> tuple[nn.Module,
                                                                                                   LeRobotPolicySpec]:
    """A policy directory (module docstring); LoRA weights load trainable when `trainable_lora`."""
    if not path.is_dir():
        raise MissingInputError(
            f"backbone.pretrained={str(path)!r} is not a directory; pass a local lerobot policy directory (nothing "
            "is downloaded: fetch hub policies first, e.g. `hf download lerobot/pi05_base --local-dir <dir>`)"
        )
    spec = read_spec(path) or LeRobotPolicySpec(options.policy_type, "full")
    if spec.policy_type != options.policy_type:
        raise ConfigError(
            f"backbone.policy_type={options.policy_type!r} but {path} holds a {spec.policy_type!r} policy; set "
            f"backbone.policy_type={spec.policy_type!r}"
        )
    if (path / WEIGHTS_NAME).is_file():
        return load_lerobot_directory(path, path, options, spec), spec
    if (path / LORA_DIR).is_dir():
        def load_base(base: Path) -> nn.Module:
            return load_lerobot_directory(base, path, options, spec)

        return load_with_lora_adapter(path, options.base, load_base, trainable_lora, "lerobot policy"), spec
    raise MissingInputError(
        f"{path} holds no lerobot policy: neither {WEIGHTS_NAME} nor {LORA_DIR}/ "
        f"(found: {sorted(p.name for p in path.iterdir())})"
    )


def load_lerobot_directory(weights_dir: Path, config_dir: Path, options: LeRobotBackboneConfig,
                           spec: LeRobotPolicySpec) -> nn.Module:
    """lerobot's `from_pretrained` of `weights_dir/model.safetensors`, with `config_dir`'s config.json (or the
    weights directory's) under `options`, checked to have really loaded (lerobot's pi0 / pi05 only print why not)."""
    from lerobot.configs.policies import PreTrainedConfig

    config_class(spec.policy_type)  # registers the config type draccus parses config.json into
    if not (config_dir / LEROBOT_CONFIG_NAME).is_file():
        config_dir = weights_dir
    config = lerobot_config(options, PreTrainedConfig.from_pretrained(str(config_dir)))
    with built_at(spec):
        policy = policy_class(spec.policy_type).from_pretrained(str(weights_dir), config=config, strict=True)
    check_weights_loaded(policy, weights_dir / WEIGHTS_NAME)
    return policy


def check_weights_loaded(policy: nn.Module, weights_file: Path, samples: int = 4) -> None:
    """Compare a few of the file's tensors (spread over it) with the policy's (keys as saved or without lerobot's
    "model." prefix, as openpi conversions store them)."""
    state = policy.state_dict()
    with safe_open(str(weights_file), framework="pt") as weights:
        pairs = [(key, key if key in state else f"model.{key}") for key in weights.keys()]
        pairs = [(key, name) for key, name in pairs if name in state]
        chosen = pairs[:: max(len(pairs) // samples, 1)][:samples]
        loaded = bool(chosen) and all(
            torch.equal(weights.get_tensor(key).to(state[name].dtype), state[name].cpu()) for key, name in chosen
        )
    if not loaded:
        raise ConfigError(
            f"the weights of {weights_file} did not load into lerobot's {type(policy).__name__} (lerobot printed why "
            "above); check backbone.policy_type and that the directory is a lerobot policy of that type"
        )


def read_spec(path: Path) -> LeRobotPolicySpec | None:
    spec_file = path / POLICY_CONFIG_NAME
    return spec_from_dict(LeRobotPolicySpec, json.loads(spec_file.read_text())) if spec_file.is_file() else None


def write_spec(spec: LeRobotPolicySpec, path: Path) -> None:
    write_text(path / POLICY_CONFIG_NAME, json.dumps(asdict(spec), indent=2, sort_keys=True))


def load_tokenizer(options: LeRobotBackboneConfig) -> PreTrainedTokenizerBase:
    """The tokenizer lerobot's processor would use, from local files; a character tokenizer for random tiny models."""
    from transformers import AutoTokenizer

    from rocket_openvla.backbones.char_tokenizer import build_char_tokenizer

    candidates = [Path(d) for d in (options.tokenizer, options.vlm_model_name, options.pretrained, options.base)
                  if d is not None]
    for directory in candidates:
        if any(directory.glob("tokenizer*")):
            return AutoTokenizer.from_pretrained(directory)
    if options.pretrained is None and options.size == "tiny":
        return build_char_tokenizer()
    expected = "SmolVLM2's" if options.policy_type == "smolvla" else "google/paligemma-3b-pt-224's"
    raise MissingInputError(
        f"no tokenizer files in {[str(d) for d in candidates]}; the {options.policy_type} policy uses {expected} "
        "tokenizer: pass --backbone.tokenizer <local copy of it>"
    )
