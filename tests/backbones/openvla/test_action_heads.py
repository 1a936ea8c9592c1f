import math

import pytest
import torch

from rocket_openvla.backbones.action_heads import (
    DDIMScheduler,
    DiffusionActionHead,
    L1RegressionActionHead,
    NoisyActionProjector,
    ProprioProjector,
    SinusoidalTimestepEmbedding,
    load_oft_component_state_dict,
)

# `golden` (conftest.py): the tensors of the golden OpenVLA-OFT run made with the original code.
LLM_DIM, ACTION_DIM, CHUNK, PROPRIO_DIM = 64, 7, 8, 8  # the golden tiny model (README)


def component(weights: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {name.removeprefix(prefix): tensor for name, tensor in weights.items() if name.startswith(prefix)}


@pytest.fixture(scope="module")
def golden_head(golden) -> L1RegressionActionHead:
    head = L1RegressionActionHead(LLM_DIM, LLM_DIM, ACTION_DIM, CHUNK)
    head.load_state_dict(component(golden["weights"], "action_head."), strict=True)
    return head.eval()


@torch.no_grad()
def test_l1_head_reproduces_golden_actions_and_loss(golden, golden_head):
    pred = golden_head(golden["outputs"]["actions_hidden_states"])
    torch.testing.assert_close(pred, golden["outputs"]["pred_actions"], atol=1e-5, rtol=0)
    loss = torch.nn.functional.l1_loss(pred, golden["inputs"]["actions"])
    torch.testing.assert_close(loss.reshape(1), golden["outputs"]["l1_loss"], atol=1e-6, rtol=0)


@torch.no_grad()
def test_proprio_projector_reproduces_golden_proprio_token(golden):
    projector = ProprioProjector(llm_dim=LLM_DIM, proprio_dim=PROPRIO_DIM)
    projector.load_state_dict(component(golden["weights"], "proprio_projector."), strict=True)
    token = projector(golden["inputs"]["proprio"])
    # The proprio token is the last entry of the projector features (512 patches, then proprio).
    torch.testing.assert_close(token, golden["outputs"]["projector_features"][:, -1], atol=1e-5, rtol=0)


def test_oft_component_checkpoint_loads_strictly_without_ddp_prefix(golden, tmp_path):
    weights = component(golden["weights"], "action_head.")
    path = tmp_path / "action_head--150000_checkpoint.pt"
    torch.save({f"module.{name}": tensor for name, tensor in weights.items()}, path)

    state = load_oft_component_state_dict(path)

    assert set(state) == set(weights)
    head = L1RegressionActionHead(LLM_DIM, LLM_DIM, ACTION_DIM, CHUNK)
    head.load_state_dict(state, strict=True)
    torch.testing.assert_close(head.model.fc2.weight, weights["model.fc2.weight"], atol=0, rtol=0)


def test_oft_component_loader_rejects_non_state_dicts(tmp_path):
    path = tmp_path / "action_head--1_checkpoint.pt"
    torch.save({"step": 3}, path)
    with pytest.raises(ValueError, match=r"not a state dict: entries \['step'\] are not tensors"):
        load_oft_component_state_dict(path)
    torch.save([torch.zeros(1)], path)
    with pytest.raises(ValueError, match="holds a list, not a state dict"):
        load_oft_component_state_dict(path)


def test_l1_head_rejects_wrong_number_of_action_states():
    head = L1RegressionActionHead(LLM_DIM, 32, ACTION_DIM, CHUNK)
    with pytest.raises(ValueError, match="8 \\* 7 = 56"):
        head(torch.zeros(2, 55, LLM_DIM))


@torch.no_grad()
def test_diffusion_head_noise_predictor_uses_oft_names_and_mlp_resnet(golden):
    # OFT's diffusion head wraps the same MLPResNet as the L1 head under `noise_predictor.mlp_resnet.`.
    resnet_weights = component(golden["weights"], "action_head.model.")
    head = DiffusionActionHead(LLM_DIM, LLM_DIM, ACTION_DIM, CHUNK, num_diffusion_steps_train=50)
    head.load_state_dict({f"noise_predictor.mlp_resnet.{k}": v for k, v in resnet_weights.items()}, strict=True)

    noise_pred = head(golden["outputs"]["actions_hidden_states"])

    torch.testing.assert_close(noise_pred, golden["outputs"]["pred_actions"], atol=1e-5, rtol=0)


def test_noisy_action_projector_embeds_each_action_value():
    projector = NoisyActionProjector(llm_dim=LLM_DIM)
    assert {name: tuple(p.shape) for name, p in projector.state_dict().items()} == {
        "fc1.weight": (LLM_DIM, 1),
        "fc1.bias": (LLM_DIM,),
        "fc2.weight": (LLM_DIM, LLM_DIM),
        "fc2.bias": (LLM_DIM,),
    }
    assert projector(torch.randn(3, CHUNK * ACTION_DIM, 1)).shape == (3, CHUNK * ACTION_DIM, LLM_DIM)


def test_timestep_embedding_matches_sinusoidal_formula():
    embedding = SinusoidalTimestepEmbedding(LLM_DIM)
    timesteps = torch.tensor([0.0, 7.0, 49.0])
    half = LLM_DIM // 2
    expected = torch.tensor(
        [
            [math.sin(t * math.exp(-i * math.log(10000) / (half - 1))) for i in range(half)]
            + [math.cos(t * math.exp(-i * math.log(10000) / (half - 1))) for i in range(half)]
            for t in timesteps.tolist()
        ]
    )
    torch.testing.assert_close(embedding(timesteps), expected, atol=1e-5, rtol=0)


def test_squared_cosine_schedule_follows_its_closed_form():
    num_steps = 50
    scheduler = DDIMScheduler(num_steps)

    def alpha_bar(s: float) -> float:
        return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2

    # Uncapped, the product telescopes to alpha_bar((t + 1) / T) / alpha_bar(0); only the last beta hits the cap.
    expected = torch.tensor([alpha_bar((t + 1) / num_steps) / alpha_bar(0) for t in range(num_steps - 1)])
    torch.testing.assert_close(scheduler.alphas_cumprod[:-1], expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(scheduler.alphas_cumprod[-1], scheduler.alphas_cumprod[-2] * (1 - 0.999))


def test_ddim_timesteps_use_leading_spacing():
    scheduler = DDIMScheduler(50)
    assert scheduler.timesteps(50) == list(range(49, -1, -1))
    assert scheduler.timesteps(10) == [45, 40, 35, 30, 25, 20, 15, 10, 5, 0]
    for bad in (0, 51):
        with pytest.raises(ValueError, match="num_inference_steps"):
            scheduler.timesteps(bad)


@pytest.mark.parametrize("num_inference_steps", [50, 10, 7])
def test_ddim_with_exact_noise_walks_back_along_the_forward_process(num_inference_steps):
    scheduler = DDIMScheduler(50)
    generator = torch.Generator().manual_seed(0)
    # The schedule's scalars are float32 (as in diffusers); at t = 49 abar is ~1e-6 and the x0 estimate divides
    # their rounding error by sqrt(abar), hence float64 samples and a 1e-4 tolerance (a wrong formula is off by >0.1).
    clean = torch.rand(2, CHUNK, ACTION_DIM, generator=generator, dtype=torch.float64) * 1.8 - 0.9
    noise = torch.randn(2, CHUNK, ACTION_DIM, generator=generator, dtype=torch.float64)
    timesteps = scheduler.timesteps(num_inference_steps)

    sample = scheduler.add_noise(clean, noise, torch.full((2,), timesteps[0]))
    for timestep, previous in zip(timesteps, timesteps[1:] + [None]):
        sample = scheduler.step(noise, timestep, sample, num_inference_steps)
        expected = clean if previous is None else scheduler.add_noise(clean, noise, torch.full((2,), previous))
        torch.testing.assert_close(sample, expected, atol=1e-4, rtol=0)


def test_ddim_step_clips_the_predicted_clean_sample():
    scheduler = DDIMScheduler(50)
    # With abar_prev = 1 (last step) the update returns the clipped x0 estimate itself.
    sample = torch.full((1, 2), 30.0)
    assert torch.equal(scheduler.step(torch.zeros(1, 2), 0, sample, 50), torch.ones(1, 2))


def test_sample_noisy_actions_is_reproducible_with_a_seed():
    head = DiffusionActionHead(LLM_DIM, 32, ACTION_DIM, CHUNK)
    actions = torch.rand(4, CHUNK, ACTION_DIM) * 2 - 1

    first = head.sample_noisy_actions(actions, torch.Generator().manual_seed(7))
    second = head.sample_noisy_actions(actions, torch.Generator().manual_seed(7))
    other = head.sample_noisy_actions(actions, torch.Generator().manual_seed(8))

    assert first.noise.shape == first.noisy_actions.shape == (4, CHUNK, ACTION_DIM)
    assert first.timestep_embeddings.shape == (4, 1, LLM_DIM)
    assert torch.equal(first.noisy_actions, second.noisy_actions)
    assert torch.equal(first.timestep_embeddings, second.timestep_embeddings)
    assert not torch.equal(first.noise, other.noise)


@torch.no_grad()
def test_diffusion_sampling_runs_one_vla_forward_per_step_deterministically():
    torch.manual_seed(0)
    head = DiffusionActionHead(LLM_DIM, 32, ACTION_DIM, CHUNK, num_diffusion_steps_train=50).eval()
    noisy_action_projector = NoisyActionProjector(LLM_DIM)
    noise = torch.randn(2, CHUNK, ACTION_DIM, generator=torch.Generator().manual_seed(1))
    calls = []

    def fake_vla(noisy_actions, timestep_embeddings):
        # Stands in for the VLA forward: the action states depend on both inputs like the real splice does.
        calls.append((noisy_actions.clone(), timestep_embeddings))
        action_tokens = noisy_action_projector(noisy_actions.reshape(2, -1, 1))
        return action_tokens + timestep_embeddings

    actions = head.sample(fake_vla, noise, num_inference_steps=10)
    repeat = head.sample(fake_vla, noise, num_inference_steps=10)

    assert actions.shape == (2, CHUNK, ACTION_DIM)
    assert torch.equal(actions, repeat)
    assert len(calls) == 20
    assert torch.equal(calls[0][0], noise)
    expected_embeddings = head.time_encoder(torch.tensor([45.0, 45.0]))[:, None]
    torch.testing.assert_close(calls[0][1], expected_embeddings, atol=0, rtol=0)
    torch.testing.assert_close(calls[9][1], head.time_encoder(torch.zeros(2))[:, None], atol=0, rtol=0)


def test_casting_the_diffusion_head_keeps_the_schedule_in_float32():
    head = DiffusionActionHead(LLM_DIM, 32, ACTION_DIM, CHUNK).to(torch.bfloat16)
    assert head.noise_predictor.mlp_resnet.fc1.weight.dtype == torch.bfloat16
    assert head.noise_scheduler.alphas_cumprod.dtype == torch.float32
