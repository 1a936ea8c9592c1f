"""The golden OpenVLA-OFT run (`tests/fixtures/openvla-oft-tiny`, made with the original code) as fixtures."""

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from rocket_openvla.backbones.openvla.configuration_openvla import OpenVLAConfig, PolicySpec
from rocket_openvla.backbones.openvla.modeling_openvla import OpenVLAModel
from rocket_openvla.backbones.openvla.policy import OpenVLAPolicy
from rocket_openvla.normalization import parse_dataset_statistics
from tests.fixtures import OPENVLA_OFT_TINY

GOLDEN_DIR = OPENVLA_OFT_TINY


def golden_config_dict() -> dict:
    """The golden `config.json` plus the tiny tower sizes (our `vision_tower_overrides` field)."""
    config = json.loads((GOLDEN_DIR / "config.json").read_text())
    towers = json.loads((GOLDEN_DIR / "tiny_vit_overrides.json").read_text())
    config["vision_tower_overrides"] = [towers[model_id] for model_id in config["timm_model_ids"]]
    return config


def golden_config(**overrides) -> OpenVLAConfig:
    return OpenVLAConfig.from_dict({**golden_config_dict(), **overrides})


def strip_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {name.removeprefix(prefix): t for name, t in state.items() if name.startswith(prefix)}


def load_embedding_table(path: Path) -> tuple[str, torch.Tensor]:
    """Rebuild the full token-embedding table from the stored rows (`ids`, `rows`); rows never used are zero.

    Returns:
        `(state-dict key, [num_embeddings, dim] table)`.
    """
    with safe_open(path, "pt") as handle:
        metadata = handle.metadata()
        ids, rows = handle.get_tensor("ids"), handle.get_tensor("rows")
    table = rows.new_zeros(int(metadata["num_embeddings"]), rows.shape[1])
    table[ids] = rows
    return metadata["key"], table


def load_golden_weights() -> dict[str, torch.Tensor]:
    """The golden weights with the token-embedding table put back (only the rows the golden data uses are stored)."""
    weights = load_file(GOLDEN_DIR / "weights.safetensors")
    key, table = load_embedding_table(GOLDEN_DIR / "embed_tokens.safetensors")
    weights[key] = table
    return weights


@pytest.fixture(scope="session")
def golden() -> dict[str, dict[str, torch.Tensor]]:
    """`{"weights", "inputs", "outputs"}` tensors of the golden run (outputs: text logits at a few positions only)."""
    return {
        "weights": load_golden_weights(),
        "inputs": load_file(GOLDEN_DIR / "inputs.safetensors"),
        "outputs": load_file(GOLDEN_DIR / "outputs.safetensors"),
    }


def build_golden_policy(golden, action_head: str = "l1", **config_overrides) -> OpenVLAPolicy:
    """The golden model as an OpenVLAPolicy (VLA, proprio projector and L1 head loaded strictly), in eval mode."""
    config = golden_config(**config_overrides)
    policy = OpenVLAPolicy(OpenVLAModel(config), PolicySpec(action_head=action_head),
                           parse_dataset_statistics(config.norm_stats))
    weights = golden["weights"]
    if action_head == "l1":
        policy.load_state_dict(weights, strict=True)
    else:  # the golden weights hold an L1 head only: the other heads stay randomly initialised
        for name in ("vla", "proprio_projector"):
            getattr(policy, name).load_state_dict(strip_prefix(weights, f"{name}."), strict=True)
    return policy.eval()


@pytest.fixture(scope="module")
def golden_policy(golden) -> OpenVLAPolicy:
    """Shared read-only golden policy; tests that change a policy build their own with `make_golden_policy`."""
    return build_golden_policy(golden)


@pytest.fixture
def make_golden_policy(golden):
    """`make_golden_policy(action_head="l1", **config_overrides) -> OpenVLAPolicy` (fresh each call)."""
    return lambda action_head="l1", **overrides: build_golden_policy(golden, action_head, **overrides)


@pytest.fixture
def published_checkpoint(tmp_path, golden) -> Path:
    """The golden VLA in the Hugging Face layout of openvla/openvla-7b: config.json + model.safetensors."""
    directory = tmp_path / "openvla-tiny"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(golden_config_dict()))
    save_file(strip_prefix(golden["weights"], "vla."), directory / "model.safetensors")
    return directory
