"""The datasets a `DataConfig` names, opened: tfds builders with their statistics (shared by the training pipeline and
the teacher-cache precompute)."""

from __future__ import annotations

from dataclasses import dataclass

from rocket_openvla.data.config import DataConfig
from rocket_openvla.data.mixture import check_members_exist
from rocket_openvla.data.rlds import open_builder
from rocket_openvla.data.statistics import load_or_compute_statistics
from rocket_openvla.data.synthetic import generate_synthetic_dataset
from rocket_openvla.data.tf_runtime import tfds
from rocket_openvla.normalization import DatasetStatistics


@dataclass(frozen=True)
class OpenDataset:
    name: str
    builder: tfds.core.DatasetBuilder
    statistics: DatasetStatistics

    @property
    def version(self) -> str:
        return str(self.builder.info.version)

    @property
    def num_episodes(self) -> int:
        return self.builder.info.splits["train"].num_examples


def open_datasets(config: DataConfig) -> dict[str, OpenDataset]:
    """The member datasets of `config.dataset` (mixture order), with their statistics; generates the synthetic
    dataset first when `config.synthetic.generate` asks for it."""
    config.validate()
    if config.synthetic.generate:
        options = config.synthetic
        generate_synthetic_dataset(config.data_root_dir, config.dataset, options.num_episodes, options.image_size,
                                   options.seed)
    members = config.members()
    check_members_exist(config.dataset, members, config.data_root_dir, known_mixtures=list(config.all_mixtures()))
    datasets = {}
    for name in members:
        builder = open_builder(config.data_root_dir, name)
        datasets[name] = OpenDataset(name, builder, load_or_compute_statistics(builder, name))
    return datasets
