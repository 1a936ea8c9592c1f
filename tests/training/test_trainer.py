"""The Trainer in one process on a generated dataset: baseline, learning, bad input, non-finite losses."""

import json
import stat

import pytest
import torch

from rocket_openvla.backbones.pi0.policy import PI0Policy
from rocket_openvla.errors import UserError
from rocket_openvla.files import FILE_MODE
from rocket_openvla.training.checkpoint import TRAINABLE_NAME, latest_checkpoint
from rocket_openvla.training.distributed import DistributedContext
from rocket_openvla.training.loop import MERGED_DIR, NonFiniteLossError, Trainer

from .conftest import load_config

SINGLE = DistributedContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


def test_baseline_builds_neither_teacher_nor_projector(rlds_root, tmp_path):
    config = load_config(rlds_root, tmp_path / "runs", rocket={"coeff": 0.0}, run={"max_steps": 2})
    trainer = Trainer(config, SINGLE)
    assert trainer.teacher is None and trainer.module.objective is None
    run_dir = trainer.train()
    checkpoint = latest_checkpoint(run_dir)
    assert checkpoint.name == "step_00000002"
    from safetensors import safe_open

    with safe_open(str(checkpoint / TRAINABLE_NAME), "pt") as handle:
        keys = list(handle.keys())
    assert any("lora_" in key for key in keys) and any("action_head" in key for key in keys)
    assert not any(key.startswith("objective.") for key in keys)


def test_align_loss_decreases_on_a_fixed_batch(rlds_root, tmp_path):
    trainer = Trainer(load_config(rlds_root, tmp_path / "runs"), SINGLE)
    batch, _, _ = trainer.batches().next()
    targets = trainer.teacher(batch["pixel_values"])
    align_losses = []
    for _ in range(12):
        trainer.optimizer.zero_grad()
        output = trainer.model(batch, targets)
        output.loss.backward()
        trainer.optimizer.step()
        assert torch.isfinite(output.loss)
        align_losses.append(output.metrics["align/loss"].item())
    assert align_losses[-1] < 0.8 * align_losses[0]


def test_nonfinite_losses_abort_with_step_and_batch_statistics(rlds_root, tmp_path):
    config = load_config(
        rlds_root, tmp_path / "runs", optim={"lr": 1e30}, run={"max_steps": 20, "max_nonfinite_steps": 2}
    )
    with pytest.raises(NonFiniteLossError, match=r"2 consecutive steps .* at step \d+; last batch: .*pixel_values"):
        Trainer(config, SINGLE).train()


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"rocket": {"teacher_layers": [0, 2]}}, r"rocket.teacher_layers: index 2 is out of range for 2 entries"),
        ({"rocket": {"student_layers": [1, 3]}}, r"rocket.student_layers: index 3 is out of range for 3 entries"),
        ({"run": {"global_batch_size": 3}}, "run.global_batch_size=3"),
        ({"rocket": {"coeff": -1.0}}, r"rocket.coeff=-1.0; use a weight >= 0"),
        ({"optim": {"lr": 0.0}}, r"optim.lr=0.0; use a positive learning rate"),
        ({"run": {"save_freq": 0}}, r"run.save_freq=0; use a positive value"),
        ({"data": {"dataset": "libero_missing_no_noops"}}, "libero_missing_no_noops"),
    ],
)
def test_bad_config_fails_before_training(rlds_root, tmp_path, sections, message):
    config = load_config(rlds_root, tmp_path / "runs", **sections)
    with pytest.raises(UserError, match=message):
        Trainer(config, SINGLE)


def test_run_directory_guards(rlds_root, tmp_path):
    runs = tmp_path / "runs"
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        Trainer(load_config(rlds_root, runs, run={"resume": True}), SINGLE)
    Trainer(load_config(rlds_root, runs, run={"max_steps": 1}), SINGLE).train()
    with pytest.raises(ValueError, match=r"different config \(optim.lr: 0.001 -> 0.002"):
        Trainer(load_config(rlds_root, runs, optim={"lr": 2e-3}), SINGLE)
    with pytest.raises(ValueError, match="--run.resume true to continue"):
        Trainer(load_config(rlds_root, runs, run={"max_steps": 1}), SINGLE)
    with pytest.raises(ValueError, match=r"run.resume: the config differs .*optim.lr"):
        Trainer(load_config(rlds_root, runs, optim={"lr": 2e-3}, run={"resume": True}), SINGLE)
    fresh = Trainer(load_config(rlds_root, runs, optim={"lr": 2e-3}, run={"overwrite": True}), SINGLE)
    assert fresh.state.step == 0 and latest_checkpoint(fresh.run_dir) is None


def test_merge_at_end_writes_a_policy_equal_to_the_lora_policy(rlds_root, tmp_path):
    from rocket_openvla.backbones.openvla import OpenVLAPolicy

    runs = tmp_path / "runs"
    trainer = Trainer(load_config(rlds_root, runs, run={"max_steps": 1}, lora={"merge_at_end": True}), SINGLE)
    run_dir = trainer.train()
    assert not trainer.adapter.has_lora
    merged = OpenVLAPolicy.from_pretrained(run_dir / MERGED_DIR)
    assert merged.statistics.keys() == {"synthetic_libero_no_noops"}

    lora = Trainer(load_config(rlds_root, runs, run={"max_steps": 1, "resume": True}, lora={"merge_at_end": True}),
                   SINGLE)  # the step-1 checkpoint: same random base + the trained LoRA weights and heads
    assert lora.adapter.has_lora
    batch, _, _ = lora.batches().next()
    with torch.no_grad():
        torch.testing.assert_close(merged(batch).loss, lora.adapter.policy(batch).loss, atol=1e-5, rtol=0)


def test_resume_refuses_changed_dataset_statistics(rlds_root, tmp_path):
    import json

    from rocket_openvla.data.statistics import StatisticsMismatchError

    runs = tmp_path / "runs"
    run_dir = Trainer(load_config(rlds_root, runs, run={"max_steps": 1}), SINGLE).train()
    saved = run_dir / "dataset_statistics.json"
    statistics = json.loads(saved.read_text())
    statistics["synthetic_libero_no_noops"]["action"]["q99"][0] += 0.5
    saved.write_text(json.dumps(statistics))
    with pytest.raises(StatisticsMismatchError, match=r"synthetic_libero_no_noops.*action.q99"):
        Trainer(load_config(rlds_root, runs, run={"max_steps": 2, "resume": True}), SINGLE)


def test_gradient_accumulation_equals_the_larger_batch(rlds_root, tmp_path):
    """Two micro-batches of 1 sample = one batch of the same 2 samples: same loss, same gradient (Adam's first step
    is scale-invariant, so the gradients themselves are compared; they stay in .grad after the last step)."""

    def one_step(run_id: str, batch_size: int, accumulation: int) -> tuple[float, dict[str, torch.Tensor]]:
        config = load_config(rlds_root, tmp_path / "runs", run={"max_steps": 1, "batch_size": batch_size,
                                                                 "run_id": run_id},
                             optim={"grad_accumulation_steps": accumulation}, data={"image_aug": False})
        trainer = Trainer(config, SINGLE)
        run_dir = trainer.train()
        loss = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])["loss"]
        return loss, {name: p.grad.clone() for name, p in trainer.module.named_parameters() if p.requires_grad}

    (accumulated_loss, accumulated), (whole_loss, whole) = one_step("accumulated", 1, 2), one_step("whole", 2, 1)
    assert accumulated_loss == pytest.approx(whole_loss, rel=1e-5)
    for name, gradient in whole.items():
        torch.testing.assert_close(accumulated[name], gradient, atol=1e-6, rtol=1e-4, msg=name)


def test_the_policy_trains_in_train_mode_and_every_written_file_is_readable(rlds_root, tmp_path):
    config = load_config(rlds_root, tmp_path / "runs", run={"max_steps": 2}, lora={"merge_at_end": True})
    trainer = Trainer(config, SINGLE)
    policy_modes, teacher_modes = [], []
    trainer.adapter.capture_points().layer_inputs[0].register_forward_pre_hook(
        lambda module, args: policy_modes.append(module.training))
    trainer.teacher.register_forward_pre_hook(lambda module, args: teacher_modes.append(module.training))

    run_dir = trainer.train()

    assert policy_modes == [True, True] and teacher_modes == [False, False]
    files = [path for path in run_dir.rglob("*") if path.is_file()]
    assert any(path.suffix == ".safetensors" for path in files) and (run_dir / "merged" / "config.json") in files
    unreadable = {str(path.relative_to(run_dir)): oct(stat.S_IMODE(path.stat().st_mode)) for path in files
                  if stat.S_IMODE(path.stat().st_mode) != FILE_MODE}
    assert unreadable == {}


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"rocket": {"student_layers": [1, 5]}}, r"rocket.student_layers: index 5 is out of range for 5 entries"),
        ({"data": {"num_actions_chunk": 4}}, r"data.num_actions_chunk=4 but the policy predicts chunks of 8"),
    ],
)
def test_pi0_bad_config_fails_before_training(rlds_root, tmp_path, sections, message):
    with pytest.raises(UserError, match=message):
        Trainer(load_config(rlds_root, tmp_path / "runs", "pi0", **sections), SINGLE)


def test_pi0_baseline_trains_and_merges(rlds_root, tmp_path):
    config = load_config(rlds_root, tmp_path / "runs", "pi0", rocket={"coeff": 0.0}, run={"max_steps": 2},
                         lora={"merge_at_end": True})
    trainer = Trainer(config, SINGLE)
    assert trainer.teacher is None and trainer.module.objective is None
    run_dir = trainer.train()
    merged = PI0Policy.from_pretrained(run_dir / MERGED_DIR)
    assert not merged.has_lora and list(merged.statistics) == ["synthetic_libero_no_noops"]
