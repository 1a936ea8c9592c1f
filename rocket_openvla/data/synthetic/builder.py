"""A tensorflow-datasets builder that writes the synthetic episodes as a LIBERO `*_no_noops`-format RLDS dataset."""

from __future__ import annotations

import json
import logging
import tempfile
import types
from pathlib import Path

import numpy as np

from rocket_openvla.data.config import SYNTHETIC_DATASET_NAME
from rocket_openvla.data.synthetic.episodes import generate_episodes
from rocket_openvla.data.tf_runtime import tfds

logger = logging.getLogger(__name__)

VERSION = "1.0.0"
_METADATA_FILE = "metadata.json"


def libero_features(image_size: int) -> "tfds.features.FeaturesDict":
    """LIBERO `*_no_noops` feature spec with `image_size`² JPEG cameras."""
    image = tfds.features.Image(shape=(image_size, image_size, 3), dtype=np.uint8, encoding_format="jpeg")
    return tfds.features.FeaturesDict(
        {
            "steps": tfds.features.Dataset(
                {
                    "observation": tfds.features.FeaturesDict(
                        {
                            "image": image,
                            "wrist_image": image,
                            "state": tfds.features.Tensor(shape=(8,), dtype=np.float32),
                            "joint_state": tfds.features.Tensor(shape=(7,), dtype=np.float32),
                        }
                    ),
                    "action": tfds.features.Tensor(shape=(7,), dtype=np.float32),
                    "discount": tfds.features.Scalar(dtype=np.float32),
                    "reward": tfds.features.Scalar(dtype=np.float32),
                    "is_first": tfds.features.Scalar(dtype=np.bool_),
                    "is_last": tfds.features.Scalar(dtype=np.bool_),
                    "is_terminal": tfds.features.Scalar(dtype=np.bool_),
                    "language_instruction": tfds.features.Text(),
                }
            ),
            "episode_metadata": tfds.features.FeaturesDict({"file_path": tfds.features.Text()}),
        }
    )


class SyntheticLiberoBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Scripted pick-up episodes rendered with numpy; one `train` split, like LIBERO.

    Not registered with tfds: read the result with `tfds.builder_from_directory` (or `tfds.builder(name,
    data_dir=...)` in a process that never defined a builder of that name).
    """

    VERSION = tfds.core.Version(VERSION)
    name = SYNTHETIC_DATASET_NAME

    def __init__(self, *, num_episodes: int, image_size: int, seed: int, **kwargs):
        self.generator_options = {"num_episodes": num_episodes, "image_size": image_size, "seed": seed}
        super().__init__(**kwargs)

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> None:
        """No checksums or README live beside this module (tfds' lookup of them also needs `importlib_resources`)."""
        return None

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="Synthetic LIBERO-format pick-up episodes (rocket_openvla.data.synthetic).",
            features=libero_features(self.generator_options["image_size"]),
            metadata=tfds.core.MetadataDict(generator=self.generator_options),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        yield from generate_episodes(**self.generator_options)


def generate_synthetic_dataset(
    data_root_dir: str | Path,
    name: str = SYNTHETIC_DATASET_NAME,
    num_episodes: int = 16,
    image_size: int = 256,
    seed: int = 0,
) -> Path:
    """Write `<data_root_dir>/<name>/1.0.0/` unless it exists; return that directory.

    Idempotent: an existing dataset made with the same options is reused; one made with other options raises
    (delete it or choose another `name`). tfds writes into a temporary directory and renames it when complete,
    so an interrupted run leaves nothing half-written behind.
    """
    options = {"num_episodes": num_episodes, "image_size": image_size, "seed": seed}
    dataset_dir = Path(data_root_dir) / name / VERSION
    if (dataset_dir / "dataset_info.json").exists():
        _check_existing_options(dataset_dir, options)
        return dataset_dir
    builder_cls = types.new_class(
        f"SyntheticLibero_{name}",
        (SyntheticLiberoBuilder,),
        {"skip_registration": True},
        lambda namespace: namespace.update(name=name, __module__=__name__),
    )
    logger.info("Generating synthetic dataset %s (%s) under %s", name, options, data_root_dir)
    builder = builder_cls(data_dir=str(data_root_dir), **options)
    with tempfile.TemporaryDirectory() as download_dir:  # keeps tfds' empty `downloads/` out of data_root_dir
        builder.download_and_prepare(
            download_dir=download_dir,
            download_config=tfds.download.DownloadConfig(try_download_gcs=False),
        )
    return dataset_dir


def _check_existing_options(dataset_dir: Path, options: dict) -> None:
    metadata_path = dataset_dir / _METADATA_FILE
    stored = json.loads(metadata_path.read_text()).get("generator") if metadata_path.exists() else None
    if stored != options:
        raise ValueError(
            f"{dataset_dir} already exists but was not generated with {options} (found generator options {stored}). "
            "Fix: delete that directory to regenerate it, or pass another `name`."
        )
