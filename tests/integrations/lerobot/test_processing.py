"""Our samples -> lerobot's batch: the same camera keys, state, action chunk and language tokens that lerobot's own
preprocessor steps (task rewriting, then its tokenizer step) produce from that sample."""

import pytest

from .helpers import CHUNK, POLICY_TYPES, SKIP_REASON, samples, tiny_options

pytest.importorskip("lerobot", reason=SKIP_REASON)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from lerobot.processor import TokenizerProcessorStep, TransitionKey, create_transition  # noqa: E402

from rocket_openvla.integrations.lerobot.processing_lerobot import task_steps  # noqa: E402
from rocket_openvla.normalization import DatasetStatistics, FeatureStatistics  # noqa: E402


@pytest.fixture(scope="module", params=POLICY_TYPES)
def adapter(request):
    return tiny_options(request.param).build()


def lerobot_tokens(adapter, raw):
    """lerobot's preprocessing of the tasks (its steps, with the policy's tokenizer): tokens and attention mask."""
    config = adapter.lerobot_policy.config
    padding = config.pad_language_to if config.type == "smolvla" else "max_length"
    steps = [*task_steps(config.type, config.max_state_dim),
             TokenizerProcessorStep(tokenizer=adapter.processor.tokenizer, max_length=config.tokenizer_max_length,
                                    padding_side="right", padding=padding)]
    transition = create_transition(
        observation={"observation.state": torch.stack([torch.as_tensor(sample["proprio"]) for sample in raw])},
        complementary_data={"task": [sample["instruction"] for sample in raw]},
    )
    for step in steps:
        transition = step(transition)
    observation = transition[TransitionKey.OBSERVATION]
    return observation["observation.language.tokens"], observation["observation.language.attention_mask"]


def test_the_batch_is_what_lerobots_preprocessor_makes(adapter):
    raw = samples(3, seed=4)
    processor = adapter.processor
    batch = processor.collator()([processor(sample) for sample in raw])
    tokens, mask = lerobot_tokens(adapter, raw)
    assert torch.equal(batch["observation.language.tokens"], tokens)
    assert torch.equal(batch["observation.language.attention_mask"], mask)
    side = processor.layout.image_size
    for index, key in enumerate(("observation.images.image", "observation.images.wrist_image")):
        assert batch[key].shape == (3, 3, side, side) and 0 <= batch[key].min() and batch[key].max() <= 1
    torch.testing.assert_close(batch["observation.state"], torch.from_numpy(np.stack([s["proprio"] for s in raw])))
    torch.testing.assert_close(batch["action"], torch.from_numpy(np.stack([s["actions"] for s in raw])))
    assert batch["action"].shape == (3, CHUNK, 7) and batch["dataset_names"] == ["synthetic_libero_no_noops"] * 3


def test_pi05_writes_the_discretised_state_into_the_prompt():
    adapter = tiny_options("pi05").build()
    prompt = adapter.processor.prompt("pick_up the bowl", torch.tensor([-1.0, 0.0, 0.999]))
    assert prompt == "Task: pick up the bowl, State: 0 128 255;\nAction: "


def test_a_sample_with_another_camera_count_is_refused_naming_the_field(adapter):
    with pytest.raises(ValueError, match="backbone.cameras"):
        adapter.processor(samples(1, cameras=3)[0])
    bad = samples(1)[0]
    bad["actions"] = bad["actions"][:2]
    with pytest.raises(ValueError, match="data.num_actions_chunk"):
        adapter.processor(bad)


def test_predict_actions_samples_unnormalised_chunks(adapter):
    config = adapter.lerobot_policy.config
    setattr(config, "num_steps" if config.type == "smolvla" else "num_inference_steps", 2)  # denoising steps
    rng = np.random.default_rng(0)
    adapter.set_dataset_statistics({"libero": DatasetStatistics(
        action=FeatureStatistics.from_values(rng.uniform(-2, 2, (64, 7)), mask=[True] * 6 + [False]),
        proprio=FeatureStatistics.from_values(rng.uniform(-1, 1, (64, 8))))})
    raw = samples(2, seed=5)
    images = torch.stack([torch.from_numpy(sample["images"]) for sample in raw])
    proprio = torch.stack([torch.from_numpy(sample["proprio"]) for sample in raw])
    instructions = [sample["instruction"] for sample in raw]
    first = adapter.predict_actions(images, instructions, proprio, generator=torch.Generator().manual_seed(3))
    again = adapter.predict_actions(images, instructions, proprio, generator=torch.Generator().manual_seed(3))
    assert first.shape == (2, CHUNK, 7) and first.dtype == torch.float32 and torch.isfinite(first).all()
    torch.testing.assert_close(first, again)  # the generator fixes lerobot's starting noise
