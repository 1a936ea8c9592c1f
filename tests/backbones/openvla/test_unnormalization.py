"""OFT's `predict_action` un-normalisation on the golden run: L1 head output and discrete decoding."""

import json

import numpy as np
import torch

from rocket_openvla.backbones.action_heads import L1RegressionActionHead
from rocket_openvla.backbones.openvla.action_tokenizer import ActionTokenizer
from rocket_openvla.normalization import parse_dataset_statistics, select_unnorm_key
from tests.fixtures import OPENVLA_OFT_TINY

GOLDEN_CONFIG = OPENVLA_OFT_TINY / "config.json"


@torch.no_grad()
def test_golden_predict_action_unnormalisation(golden):
    """OpenVLA-OFT's `predict_action`: L1 head, then un-normalisation with the checkpoint's `norm_stats`."""
    weights, outputs = golden["weights"], golden["outputs"]
    config = json.loads(GOLDEN_CONFIG.read_text())
    statistics = parse_dataset_statistics(config["norm_stats"])
    action_stats = statistics[select_unnorm_key(statistics, None)].action
    head = L1RegressionActionHead(input_dim=64, hidden_dim=64, action_dim=7, num_actions_chunk=8)
    head.load_state_dict({k.removeprefix("action_head."): v for k, v in weights.items() if "action_head." in k})

    normalized = head(outputs["predict_action.l1.actions_hidden_states"])[0]
    torch.testing.assert_close(
        action_stats.unnormalize(normalized), outputs["predict_action.l1.actions"], atol=1e-5, rtol=0
    )

    # The random tiny model's discrete argmax tokens lie outside the action range, which OpenVLA decodes to the top
    # bin center; un-normalised, that reproduces the golden discrete actions.
    top_bin = ActionTokenizer().decode(np.full((8, 7), 5))
    np.testing.assert_allclose(
        action_stats.unnormalize(top_bin), outputs["predict_action.discrete.actions"].numpy(), atol=1e-6
    )
