"""A bank of MLP projectors (student state -> teacher feature) with prefix-width sub-networks.

Each projector is the release's `AlignProjector`: optional LayerNorm(Ds) -> Linear(Ds -> H) -> exact GELU ->
Linear(H -> Dt), Xavier-uniform weights and zero biases. Running projector g at width m uses the first m hidden
units only (fc1 rows `[:m]`, fc2 columns `[:, :m]`, the full fc2 bias): the Matryoshka sub-network. Hidden unit j
therefore receives gradient only from calls whose width exceeds j.

The G projectors are stored as stacked parameters (`fc1_weight [G, H, Ds]`, ...) so one module holds a shared
projector ensemble or one projector per layer pair alike.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rocket_openvla.errors import ConfigError

LAYER_NORM_EPS = 1e-5  # nn.LayerNorm default, as the release's `vlm_norm`


class ProjectorBank(nn.Module):
    def __init__(self, num_projectors: int, in_dim: int, hidden_dim: int, out_dim: int, input_norm: bool) -> None:
        super().__init__()
        self.in_dim, self.hidden_dim, self.out_dim = in_dim, hidden_dim, out_dim
        self.input_norm = input_norm
        if input_norm:
            self.norm_weight = nn.Parameter(torch.ones(num_projectors, in_dim))
            self.norm_bias = nn.Parameter(torch.zeros(num_projectors, in_dim))
        self.fc1_weight = nn.Parameter(torch.empty(num_projectors, hidden_dim, in_dim))
        self.fc1_bias = nn.Parameter(torch.zeros(num_projectors, hidden_dim))
        self.fc2_weight = nn.Parameter(torch.empty(num_projectors, out_dim, hidden_dim))
        self.fc2_bias = nn.Parameter(torch.zeros(num_projectors, out_dim))
        self.reset_parameters()

    @property
    def num_projectors(self) -> int:
        return self.fc1_weight.shape[0]

    @torch.no_grad()
    def reset_parameters(self) -> None:
        for index in range(self.num_projectors):
            nn.init.xavier_uniform_(self.fc1_weight[index])
            nn.init.xavier_uniform_(self.fc2_weight[index])
        self.fc1_bias.zero_()
        self.fc2_bias.zero_()
        if self.input_norm:
            self.norm_weight.fill_(1.0)
            self.norm_bias.zero_()

    def forward(self, x: torch.Tensor, index: int, width: int) -> torch.Tensor:
        """Run projector `index` on its first `width` hidden units.

        Args:
            x: `[..., Ds]` student states.

        Returns:
            `[..., Dt]` projected states.
        """
        if self.input_norm:
            x = F.layer_norm(x, (self.in_dim,), self.norm_weight[index], self.norm_bias[index], LAYER_NORM_EPS)
        hidden = F.gelu(F.linear(x, self.fc1_weight[index, :width], self.fc1_bias[index, :width]))
        return F.linear(hidden, self.fc2_weight[index, :, :width], self.fc2_bias[index])

    def load_projector(self, index: int, tensors: dict[str, torch.Tensor]) -> None:
        """Copy one projector's weights given in `nn.Linear`/`nn.LayerNorm` layout.

        Args:
            tensors: `fc1.weight [H, Ds]`, `fc1.bias [H]`, `fc2.weight [Dt, H]`, `fc2.bias [Dt]`, and with input
                norm `norm.weight [Ds]`, `norm.bias [Ds]`.
        """
        targets = {"fc1.weight": self.fc1_weight, "fc1.bias": self.fc1_bias,
                   "fc2.weight": self.fc2_weight, "fc2.bias": self.fc2_bias}
        if self.input_norm:
            targets.update({"norm.weight": self.norm_weight, "norm.bias": self.norm_bias})
        with torch.no_grad():
            for name, target in targets.items():
                value = tensors[name]
                if value.shape != target.shape[1:]:
                    raise ConfigError(
                        f"projector tensor {name} has shape {tuple(value.shape)}, expected {tuple(target.shape[1:])}; "
                        "check rocket.hidden_dim and the student/teacher dims against the checkpoint"
                    )
                target[index].copy_(value)
