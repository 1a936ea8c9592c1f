"""Whole episodes in file order, un-augmented, as the training samples they yield (for precomputing teacher targets).

`episode_samples` reads episodes `[start, stop)` of one dataset's train split and yields, per episode, its tfds id and
the samples the training pipeline draws from it (every chunk start, in step order), with the same decoding, resizing
and normalisation but no augmentation (`crop_boxes` are whole frames).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rocket_openvla.data.chunking import chunk_actions
from rocket_openvla.data.config import DataConfig
from rocket_openvla.data.pipeline import sample_transform, to_numpy_sample, usable_trajectory
from rocket_openvla.data.rlds import read_trajectories
from rocket_openvla.data.sources import OpenDataset
from rocket_openvla.data.tf_runtime import tf


def episode_samples(
    config: DataConfig, dataset: OpenDataset, start: int, stop: int
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """`(episode_id, samples)` for episodes `[start, stop)` of the train split, in file order (module docstring).

    Episodes the pipeline skips (no instruction, shorter than a chunk) are skipped here too.
    """
    transform = sample_transform(config.image_size, image_aug=False, augment_seed=0)
    trajectories = read_trajectories(dataset.builder, f"train[{start}:{stop}]", num_parallel_reads=1)
    for trajectory in trajectories.filter(lambda t: usable_trajectory(t, config.num_actions_chunk)):
        frames = tf.data.Dataset.from_tensor_slices(chunk_actions(trajectory, config.num_actions_chunk))
        frames = frames.map(lambda frame: {**frame, "dataset_name": tf.constant(dataset.name)})
        samples = frames.enumerate().map(transform, num_parallel_calls=config.num_parallel_calls, deterministic=True)
        yield trajectory["episode_id"][0].numpy().decode(), [to_numpy_sample(s, dataset.statistics) for s in samples]
