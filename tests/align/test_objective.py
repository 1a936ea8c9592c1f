"""RocketObjective against an explicit per-pair, per-sample computation written the way the release does it."""

import pytest
import torch
import torch.nn.functional as F

from rocket_openvla.align import RocketConfig, RocketObjective

STUDENT_DIM, TEACHER_DIM, HIDDEN_DIM = 24, 16, 40
BATCH, TOKENS = 3, 7


def make_objective(num_pairs: int = 4, seed: int = 0, **overrides) -> RocketObjective:
    torch.manual_seed(seed)
    fields = dict(student_layers=list(range(1, num_pairs + 1)), teacher_layers=list(range(num_pairs)),
                  hidden_dim=HIDDEN_DIM)
    fields.update(overrides)
    objective = RocketObjective(RocketConfig(**fields), STUDENT_DIM, TEACHER_DIM).double()
    with torch.no_grad():  # non-trivial norm affine and biases so every parameter matters
        for parameter in objective.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    return objective


def make_inputs(num_pairs: int, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    student = [torch.randn(BATCH, TOKENS, STUDENT_DIM, generator=generator, dtype=torch.float64, requires_grad=True)
               for _ in range(num_pairs)]
    teacher = [torch.randn(BATCH, TOKENS, TEACHER_DIM, generator=generator, dtype=torch.float64)
               for _ in range(num_pairs)]
    return student, teacher


def explicit_loss(objective: RocketObjective, student, teacher, mask=None) -> torch.Tensor:
    """Straightforward loop: per pair, per member, per sample; Python slicing of nn.Linear-layout weights."""
    bank, config = objective.projectors, objective.config
    pair_losses = []
    for pair, (states, target) in enumerate(zip(student, teacher)):
        width = objective.widths[pair]
        member_losses = []
        for member in range(config.ensemble_size):
            g = objective.projector_index(pair, member)
            x = states
            if config.input_norm:
                x = F.layer_norm(x, (STUDENT_DIM,), bank.norm_weight[g], bank.norm_bias[g], 1e-5)
            hidden = F.gelu(x @ bank.fc1_weight[g][:width].T + bank.fc1_bias[g][:width])
            projected = hidden @ bank.fc2_weight[g][:, :width].T + bank.fc2_bias[g]
            sample_losses = []
            for b in range(BATCH):
                keep = slice(None) if mask is None else mask[b]
                if mask is not None and not mask[b].any():
                    continue
                cos = (F.normalize(projected[b][keep], dim=-1) * F.normalize(target[b][keep], dim=-1)).sum(-1)
                sample_losses.append(1 - cos.mean())
            member_losses.append(torch.stack(sample_losses).mean() if sample_losses else projected.sum() * 0)
        pair_losses.append(torch.stack(member_losses).mean())
    return torch.stack(pair_losses).mean()


def assert_matches_explicit(objective, student, teacher, mask=None):
    params = list(objective.parameters())
    fused = objective(student, teacher, mask).loss
    fused_grads = torch.autograd.grad(fused, student + params, allow_unused=False)
    reference = explicit_loss(objective, student, teacher, mask)
    reference_grads = torch.autograd.grad(reference, student + params)
    assert abs(fused.item() - reference.item()) <= 1e-6
    for got, want in zip(fused_grads, reference_grads):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "overrides",
    [
        dict(),  # ROCKET: shared + Matryoshka
        dict(shallow_to_deep=False),
        dict(matryoshka=False),
        dict(width_ratios=[0.9, 0.3, 0.6, 0.1]),
        dict(ensemble_size=3),
        dict(share_projector=False),
        dict(share_projector=False, ensemble_size=2, width_ratios=[0.2] * 4),
        dict(input_norm=False),
    ],
    ids=["rocket", "reversed", "shared", "custom", "ensemble", "independent", "independent-ens-narrow", "no-norm"],
)
def test_fused_equals_explicit_per_pair_loop(overrides):
    objective = make_objective(**overrides)
    assert_matches_explicit(objective, *make_inputs(4))


def test_single_pair_is_spatial_forcing():
    objective = make_objective(num_pairs=1, share_projector=False)
    assert objective.widths == [HIDDEN_DIM]
    assert_matches_explicit(objective, *make_inputs(1))


def test_mask_and_all_masked_samples():
    objective = make_objective()
    student, teacher = make_inputs(4)
    mask = torch.ones(BATCH, TOKENS, dtype=torch.bool)
    mask[0, 3:] = False
    mask[1] = False  # a sample without a valid token contributes nothing
    assert_matches_explicit(objective, student, teacher, mask)

    # Masked tokens do not influence the loss.
    changed = [t.clone() for t in teacher]
    changed[2][0, 5] += 100.0
    changed[2][1] += 100.0
    torch.testing.assert_close(objective(student, teacher, mask).loss, objective(student, changed, mask).loss)


def test_everything_masked_gives_zero_loss_and_zero_gradients():
    objective = make_objective()
    student, teacher = make_inputs(4)
    output = objective(student, teacher, torch.zeros(BATCH, TOKENS, dtype=torch.bool))
    output.loss.backward()
    assert output.loss.item() == 0.0
    assert all(torch.isfinite(p.grad).all() and not p.grad.any() for p in objective.parameters())


def test_hidden_unit_gets_gradient_only_from_pairs_wider_than_it():
    objective = make_objective(num_pairs=4)
    widths = objective.widths
    assert widths == sorted(widths) and len(set(widths)) == 4
    student, teacher = make_inputs(4)
    pair_losses = objective(student, teacher).pair_losses
    fc1 = objective.projectors.fc1_weight
    for pair in range(4):
        (grad,) = torch.autograd.grad(pair_losses[pair], fc1, retain_graph=True)
        row_has_grad = grad[0].abs().sum(dim=1) > 0
        assert row_has_grad[: widths[pair]].all()
        assert not row_has_grad[widths[pair]:].any()
    (grad,) = torch.autograd.grad(pair_losses.mean(), fc1)
    receivers = (grad[0].abs().sum(dim=1) > 0).long()
    contributing = torch.tensor([sum(w > j for w in widths) for j in range(HIDDEN_DIM)])
    assert torch.equal(receivers, (contributing > 0).long())


def test_metrics_are_detached_and_shaped():
    objective = make_objective(ensemble_size=2)
    output = objective(*make_inputs(4))
    assert output.pair_losses.shape == (4,)
    assert output.metrics["align/member_losses"].shape == (4, 2)
    assert all(not value.requires_grad for value in output.metrics.values())
    torch.testing.assert_close(output.metrics["align/loss"], output.loss.detach())


def test_default_hidden_dim_is_teacher_dim():
    objective = RocketObjective(RocketConfig(student_layers=[1], teacher_layers=[0]), STUDENT_DIM, TEACHER_DIM)
    assert objective.projectors.fc1_weight.shape == (1, TEACHER_DIM, STUDENT_DIM)


def test_release_initialisation():
    objective = RocketObjective(RocketConfig(student_layers=[1, 2], teacher_layers=[0, 1]), 300, 200)
    bank = objective.projectors
    bound = (6 / (300 + 200)) ** 0.5
    assert bank.fc1_weight.abs().max() <= bound and bank.fc1_weight.abs().max() > 0.9 * bound
    assert not bank.fc1_bias.any() and not bank.fc2_bias.any()
    assert torch.equal(bank.norm_weight, torch.ones_like(bank.norm_weight))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s, t, m: (s[:3], t, m), "one per layer pair"),
        (lambda s, t, m: ([x[..., :-1] for x in s], t, m), r"student\[0\] must be"),
        (lambda s, t, m: (s, [x[..., :-1] for x in t], m), r"teacher\[0\] must be"),
        (lambda s, t, m: (s, [x[:, :-1] for x in t], m), "pool the teacher"),
        (lambda s, t, m: (s, t, m[:, :-1]), "mask must be a bool"),
        (lambda s, t, m: (s, t, m.float()), "mask must be a bool"),
    ],
)
def test_bad_inputs_fail_before_compute(mutate, message):
    objective = make_objective()
    student, teacher = make_inputs(4)
    mask = torch.ones(BATCH, TOKENS, dtype=torch.bool)
    with pytest.raises(ValueError, match=message):
        objective(*mutate(student, teacher, mask))
