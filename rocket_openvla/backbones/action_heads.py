"""OpenVLA-OFT's continuous action heads and the projectors that feed extra inputs into the LLM (any backbone with
OFT-style action heads uses them: the native OpenVLA, the transformers VLMs).

Every module keeps OFT's parameter names, so OFT's `action_head--*.pt`, `proprio_projector--*.pt` and
`noisy_action_projector--*.pt` load with `strict=True` (after `load_oft_component_state_dict` strips DDP's
`module.` prefix):

    ProprioProjector        fc1.{weight,bias}, fc2.{weight,bias}
    NoisyActionProjector    fc1.{weight,bias}, fc2.{weight,bias}
    L1RegressionActionHead  model.{layer_norm1, fc1, mlp_resnet_blocks.{0,1}.ffn.{0,1}, layer_norm2, fc2}.*
    DiffusionActionHead     noise_predictor.mlp_resnet.<same as model.* above>

The heads read the LLM's last hidden states at the action-token slots, `[B, chunk * action_dim, D]` (token
k = step k // action_dim, dimension k % action_dim), regroup them per chunk step to `[B, chunk, action_dim * D]`
and map each step with an MLPResNet to `[B, chunk, action_dim]`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

NUM_RESNET_BLOCKS = 2  # OFT's MLPResNet depth for both heads


def load_oft_component_state_dict(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    """Load one of OFT's `<component>--<step>_checkpoint.pt` files and strip DDP's leading `module.` prefix.

    The file is read with `torch.load(weights_only=True)`, so it can only hold tensors and plain containers.
    """
    path = Path(path)
    state = torch.load(path, map_location=map_location, weights_only=True)
    hint = "pass an OFT component checkpoint such as `action_head--150000_checkpoint.pt`"
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict; {hint}")
    not_tensors = sorted(name for name, value in state.items() if not isinstance(value, torch.Tensor))
    if not_tensors:
        raise ValueError(f"{path} is not a state dict: entries {not_tensors[:5]} are not tensors; {hint}")
    return {name.removeprefix("module."): tensor for name, tensor in state.items()}


class _TwoLayerGELUProjector(nn.Module):
    """Linear(in -> llm_dim) -> GELU -> Linear(llm_dim -> llm_dim), OFT's projector shape."""

    def __init__(self, in_dim: int, llm_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, llm_dim)
        self.act_fn1 = nn.GELU()
        self.fc2 = nn.Linear(llm_dim, llm_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act_fn1(self.fc1(x)))


class ProprioProjector(_TwoLayerGELUProjector):
    """Projects the normalised proprio state to one LLM token (appended after the image patches).

    `ProprioProjector(llm_dim, proprio_dim)`: `forward(proprio [B, proprio_dim]) -> [B, llm_dim]`.
    """

    def __init__(self, llm_dim: int, proprio_dim: int) -> None:
        super().__init__(proprio_dim, llm_dim)
        self.llm_dim, self.proprio_dim = llm_dim, proprio_dim


class NoisyActionProjector(_TwoLayerGELUProjector):
    """[Diffusion] Embeds each noisy action value (one scalar per action token) as an LLM input embedding.

    `NoisyActionProjector(llm_dim)`: `forward(noisy_actions [B, chunk * action_dim, 1]) -> [B, chunk * action_dim,
    llm_dim]`. OFT stores it separately from the head, as `noisy_action_projector--*.pt`.
    """

    def __init__(self, llm_dim: int) -> None:
        super().__init__(1, llm_dim)
        self.llm_dim = llm_dim


class MLPResNetBlock(nn.Module):
    """Pre-LayerNorm residual block: `x + ReLU(Linear(LayerNorm(x)))`, `[..., dim] -> [..., dim]`."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.ffn = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.ffn(x)


class MLPResNet(nn.Module):
    """LayerNorm -> Linear -> ReLU -> residual blocks -> LayerNorm -> Linear, `[..., in] -> [..., out]`."""

    def __init__(self, num_blocks: int, input_dim: int, hidden_dim: int, output_dim: int) -> None:
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(input_dim)
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.relu = nn.ReLU()
        self.mlp_resnet_blocks = nn.ModuleList(MLPResNetBlock(hidden_dim) for _ in range(num_blocks))
        self.layer_norm2 = nn.LayerNorm(hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.fc1(self.layer_norm1(x)))
        for block in self.mlp_resnet_blocks:
            x = block(x)
        return self.fc2(self.layer_norm2(x))


def _group_by_chunk_step(actions_hidden_states: torch.Tensor, num_actions_chunk: int, action_dim: int) -> torch.Tensor:
    """`[B, chunk * action_dim, D] -> [B, chunk, action_dim * D]` (the action_dim tokens of one step side by side)."""
    batch, num_tokens, _ = actions_hidden_states.shape
    if num_tokens != num_actions_chunk * action_dim:
        raise ValueError(
            f"expected {num_actions_chunk} * {action_dim} = {num_actions_chunk * action_dim} action hidden states "
            f"per sample, got {num_tokens}; check the head's num_actions_chunk/action_dim against the data"
        )
    return actions_hidden_states.reshape(batch, num_actions_chunk, -1)


class L1RegressionActionHead(nn.Module):
    """OFT's L1-regression head: `forward(actions_hidden_states [B, chunk * action_dim, input_dim])` ->
    normalised actions `[B, chunk, action_dim]`, trained with `nn.L1Loss` against the normalised ground truth.

    `L1RegressionActionHead(input_dim, hidden_dim, action_dim, num_actions_chunk)`; OFT uses input_dim = hidden_dim =
    llm_dim (4096) and LIBERO's action_dim 7, chunk 8 (OFT reads the chunk from its global constants).
    """

    def __init__(
        self, input_dim: int = 4096, hidden_dim: int = 4096, action_dim: int = 7, num_actions_chunk: int = 8
    ) -> None:
        super().__init__()
        self.action_dim, self.num_actions_chunk = action_dim, num_actions_chunk
        self.model = MLPResNet(NUM_RESNET_BLOCKS, input_dim * action_dim, hidden_dim, action_dim)

    def forward(self, actions_hidden_states: torch.Tensor) -> torch.Tensor:
        return self.model(_group_by_chunk_step(actions_hidden_states, self.num_actions_chunk, self.action_dim))


class SinusoidalTimestepEmbedding(nn.Module):
    """`[B]` diffusion timesteps -> `[B, dim]` embeddings `[sin(t * f_i) | cos(t * f_i)]`,
    `f_i = exp(-i * ln(10000) / (dim / 2 - 1))` for i < dim / 2 (OFT's `SinusoidalPositionalEncoding`)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        if dim % 2 or dim < 4:
            raise ValueError(f"timestep embedding dim must be even and >= 4, got {dim}")
        self.dim = dim

    def forward(self, timesteps: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        frequencies = torch.exp(torch.arange(half, device=timesteps.device) * (-math.log(10000) / (half - 1)))
        angles = timesteps[:, None] * frequencies[None, :]
        return torch.cat((angles.sin(), angles.cos()), dim=-1)


class DDIMScheduler:
    """Deterministic DDIM (eta = 0) as OFT configures diffusers' `DDIMScheduler`.

    Settings: `num_train_timesteps` T (OFT: 50), the "squaredcos_cap_v2" schedule
    `beta_t = min(1 - abar((t + 1) / T) / abar(t / T), 0.999)` with `abar(s) = cos((s + 0.008) / 1.008 * pi / 2)^2`,
    epsilon prediction, the predicted clean sample clipped to [-1, 1], alpha_bar = 1 after the last step
    (`set_alpha_to_one`), "leading" timestep spacing with offset 0.

    Sampling with n inference steps (1 <= n <= T) visits `t = (n - 1) * T // n, ..., T // n, 0` and at each step
        x0_hat = clip((x_t - sqrt(1 - abar_t) * eps) / sqrt(abar_t), -1, 1)
        x_prev = sqrt(abar_prev) * x0_hat + sqrt(1 - abar_prev) * eps,   prev = t - T // n   (abar_prev = 1 if prev < 0)
    """

    def __init__(self, num_train_timesteps: int = 50) -> None:
        if num_train_timesteps < 1:
            raise ValueError(f"num_train_timesteps must be >= 1, got {num_train_timesteps}")
        self.num_train_timesteps = num_train_timesteps

        def alpha_bar(s: float) -> float:
            return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2

        betas = [
            min(1 - alpha_bar((t + 1) / num_train_timesteps) / alpha_bar(t / num_train_timesteps), 0.999)
            for t in range(num_train_timesteps)
        ]
        # float32 on the CPU exactly as diffusers computes it; a plain attribute, so casting the head to bf16
        # never touches the schedule.
        self.alphas_cumprod = torch.cumprod(1.0 - torch.tensor(betas, dtype=torch.float32), dim=0)

    def timesteps(self, num_inference_steps: int) -> list[int]:
        """The descending timesteps visited by `num_inference_steps` sampling steps."""
        if not 1 <= num_inference_steps <= self.num_train_timesteps:
            raise ValueError(
                f"num_inference_steps must be in [1, {self.num_train_timesteps}] (num_train_timesteps), "
                f"got {num_inference_steps}"
            )
        step_ratio = self.num_train_timesteps // num_inference_steps
        return [index * step_ratio for index in reversed(range(num_inference_steps))]

    def add_noise(self, actions: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """Closed-form forward diffusion `sqrt(abar_t) * x0 + sqrt(1 - abar_t) * noise`.

        Args:
            actions: `[B, ...]` clean samples x0.
            noise: `[B, ...]` standard normal noise.
            timesteps: `[B]` integer timesteps in [0, T).
        """
        alphas_cumprod = self.alphas_cumprod.to(device=actions.device, dtype=actions.dtype)[timesteps]
        alphas_cumprod = alphas_cumprod.reshape(-1, *([1] * (actions.dim() - 1)))
        return alphas_cumprod.sqrt() * actions + (1 - alphas_cumprod).sqrt() * noise

    def step(
        self, noise_pred: torch.Tensor, timestep: int, sample: torch.Tensor, num_inference_steps: int
    ) -> torch.Tensor:
        """One DDIM update x_t -> x_prev (see the class docstring); `noise_pred` and `sample` share a shape."""
        prev_timestep = timestep - self.num_train_timesteps // num_inference_steps
        alpha_prod = self.alphas_cumprod[timestep]
        alpha_prod_prev = self.alphas_cumprod[prev_timestep] if prev_timestep >= 0 else torch.tensor(1.0)
        pred_original = ((sample - (1 - alpha_prod) ** 0.5 * noise_pred) / alpha_prod**0.5).clamp(-1, 1)
        return alpha_prod_prev**0.5 * pred_original + (1 - alpha_prod_prev) ** 0.5 * noise_pred


@dataclass(frozen=True)
class NoisedActions:
    """Training inputs of the diffusion head for one batch.

    noise: `[B, chunk, action_dim]` the regression target of the noise predictor.
    noisy_actions: `[B, chunk, action_dim]` x_t, fed to the LLM through `NoisyActionProjector`.
    timestep_embeddings: `[B, 1, input_dim]` one extra LLM token, placed after the patches (and proprio token).
    """

    noise: torch.Tensor
    noisy_actions: torch.Tensor
    timestep_embeddings: torch.Tensor


class NoisePredictor(nn.Module):
    """An MLPResNet under the attribute name OFT's `NoisePredictionModel` uses (`mlp_resnet`)."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int) -> None:
        super().__init__()
        self.mlp_resnet = MLPResNet(NUM_RESNET_BLOCKS, input_dim, hidden_dim, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp_resnet(x)


ActionHiddenStatesFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class DiffusionActionHead(nn.Module):
    """OFT's diffusion head: predicts the noise added to the normalised action chunk (MSE loss on the noise).

    `DiffusionActionHead(input_dim, hidden_dim, action_dim, num_actions_chunk, num_diffusion_steps_train)`.
    `forward(actions_hidden_states [B, chunk * action_dim, input_dim]) -> noise prediction [B, chunk, action_dim]`.

    The VLA sees x_t twice per forward: each noisy action value replaces its action token's embedding (through
    `NoisyActionProjector`), and the timestep embedding is one extra token after the patches (+ proprio) token.
    OFT sizes the noise predictor's input and the timestep embedding with `hidden_dim`; here they use
    `input_dim` (the LLM width they must match), which is the same number in every OFT configuration.
    """

    def __init__(
        self,
        input_dim: int = 4096,
        hidden_dim: int = 4096,
        action_dim: int = 7,
        num_actions_chunk: int = 8,
        num_diffusion_steps_train: int = 50,
    ) -> None:
        super().__init__()
        self.action_dim, self.num_actions_chunk = action_dim, num_actions_chunk
        self.noise_predictor = NoisePredictor(input_dim * action_dim, hidden_dim, action_dim)
        self.time_encoder = SinusoidalTimestepEmbedding(input_dim)
        self.noise_scheduler = DDIMScheduler(num_diffusion_steps_train)

    def forward(self, actions_hidden_states: torch.Tensor) -> torch.Tensor:
        grouped = _group_by_chunk_step(actions_hidden_states, self.num_actions_chunk, self.action_dim)
        return self.noise_predictor(grouped)

    def timestep_embeddings(self, timesteps: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """`[B]` timesteps -> `[B, 1, input_dim]` LLM tokens."""
        return self.time_encoder(timesteps).to(dtype).unsqueeze(1)

    def sample_noisy_actions(self, actions: torch.Tensor, generator: torch.Generator | None = None) -> NoisedActions:
        """Draw noise and one timestep per sample (uniform in [0, T)) and diffuse `actions [B, chunk, action_dim]`.

        `generator` (on `actions.device`) makes the draw reproducible.
        """
        noise = torch.randn(actions.shape, generator=generator, device=actions.device, dtype=actions.dtype)
        timesteps = torch.randint(
            0, self.noise_scheduler.num_train_timesteps, (actions.shape[0],), generator=generator, device=actions.device
        )
        noisy_actions = self.noise_scheduler.add_noise(actions, noise, timesteps)
        return NoisedActions(noise, noisy_actions, self.timestep_embeddings(timesteps, actions.dtype))

    def sample(
        self, action_hidden_states_fn: ActionHiddenStatesFn, noise: torch.Tensor, num_inference_steps: int | None = None
    ) -> torch.Tensor:
        """Reverse diffusion from `noise [B, chunk, action_dim]` to normalised actions `[B, chunk, action_dim]`.

        Args:
            action_hidden_states_fn: `(noisy_actions [B, chunk, action_dim], timestep_embeddings [B, 1, input_dim])
                -> actions_hidden_states [B, chunk * action_dim, input_dim]`: one VLA forward with these inputs.
            noise: the starting point x_T (OFT draws it from N(0, 1)).
            num_inference_steps: DDIM steps; defaults to `num_diffusion_steps_train` (OFT's default, 50).
        """
        num_steps = self.noise_scheduler.num_train_timesteps if num_inference_steps is None else num_inference_steps
        sample = noise
        for timestep in self.noise_scheduler.timesteps(num_steps):
            timesteps = torch.full((noise.shape[0],), float(timestep), device=noise.device)
            hidden_states = action_hidden_states_fn(sample, self.timestep_embeddings(timesteps, noise.dtype))
            noise_pred = self(hidden_states).to(sample.dtype)
            sample = self.noise_scheduler.step(noise_pred, timestep, sample, num_steps)
        return sample
