"""Read one LIBERO-format RLDS dataset with tensorflow-datasets and standardise its trajectories.

On disk (as openvla/modified_libero_rlds):
`<data_root_dir>/<name>/<version>/{dataset_info.json, features.json, *.tfrecord-*}`,
one episode per example, `steps` holding per-step tensors. Trajectories are read with the images left encoded
(decoding happens per frame, after the shuffle buffer, so the buffer holds compact JPEG bytes).

A standardised trajectory (length T) is a dict of tensors:
    image_primary, image_wrist  string [T]  encoded images (camera order = `CAMERA_VIEWS`)
    instruction                 string [T]
    action                      float32 [T, 7]  EEF delta (6) + gripper (1 = open, 0 = closed)
    proprio                     float32 [T, 8]  EEF state (6) + gripper state (2)
    episode_id                  string [T]  the episode's tfds id (`<dataset>-train.tfrecord-<file>__<record>`), stable
    step                        int32 [T]   0 .. T - 1
"""

from __future__ import annotations

from pathlib import Path

from rocket_openvla.data.config import CAMERA_VIEWS
from rocket_openvla.data.tf_runtime import tf, tfds
from rocket_openvla.errors import ConfigError, MissingInputError

ACTION_DIM = 7
PROPRIO_DIM = 8
# OFT's EEF_POS action encoding: every dimension but the (absolute, 0/1) gripper is normalised.
ACTION_NORMALIZATION_MASK = (True,) * 6 + (False,)
_IMAGE_KEYS = {"primary": "image", "wrist": "wrist_image"}
_REQUIRED_STEP_FEATURES = {
    "observation/image": None,
    "observation/wrist_image": None,
    "observation/state": (PROPRIO_DIM,),
    "action": (ACTION_DIM,),
    "language_instruction": (),
}


def find_dataset_dir(data_root_dir: str | Path, name: str) -> Path:
    """`<data_root_dir>/<name>/<version>/` for `name` or `name:version` (newest version when none is given).

    Raises FileNotFoundError listing the datasets that do exist under `data_root_dir`.
    """
    base_name, _, version = name.partition(":")
    root = Path(data_root_dir).expanduser()
    candidates = [root / base_name / version] if version else _version_dirs(root / base_name)
    found = [path for path in candidates if (path / "dataset_info.json").is_file()]
    if found:
        return found[-1]
    raise MissingInputError(
        f"Dataset {name!r} not found: expected {root / base_name}/{version or '<version>'}/dataset_info.json. "
        f"{describe_data_root(root)}{_nesting_hint(root, base_name)} Fix: set `data_root_dir` to the folder that "
        "contains `<name>/<version>/` (for LIBERO, the clone of openvla/modified_libero_rlds), or correct the name."
    )


def _nesting_hint(root: Path, base_name: str) -> str:
    """A hint when `data_root_dir` is the dataset folder or its version folder instead of their parent."""
    for parent in (root.parent, root.parent.parent):
        if (parent / base_name).is_dir() and base_name in (root.name, root.parent.name):
            return f" `data_root_dir` points inside the dataset; use {str(parent)!r}."
    return ""


def available_datasets(data_root_dir: str | Path) -> list[str]:
    """`name:version` of every RLDS dataset directly under `data_root_dir`."""
    root = Path(data_root_dir).expanduser()
    if not root.is_dir():
        return []
    return [
        f"{dataset.name}:{version.name}"
        for dataset in sorted(p for p in root.iterdir() if p.is_dir())
        for version in _version_dirs(dataset)
        if (version / "dataset_info.json").is_file()
    ]


def describe_data_root(data_root_dir: str | Path) -> str:
    """One sentence on what `data_root_dir` holds, for error messages."""
    root = Path(data_root_dir).expanduser()
    if not root.is_dir():
        return f"data_root_dir {str(root)!r} does not exist."
    datasets = available_datasets(root)
    others = sorted(p.name for p in root.iterdir() if not any(d.startswith(p.name + ":") for d in datasets))
    listing = ", ".join(datasets) if datasets else "no `<name>/<version>/dataset_info.json`"
    if not others:
        return f"{str(root)!r} holds: {listing}."
    shown = ", ".join(others[:8]) + (f", ... ({len(others) - 8} more)" if len(others) > 8 else "")
    return f"{str(root)!r} holds: {listing} (other entries: {shown})."


def _version_dirs(dataset_dir: Path) -> list[Path]:
    """Version sub-directories sorted from oldest to newest (numeric compare of `x.y.z`)."""
    if not dataset_dir.is_dir():
        return []

    def key(path: Path) -> tuple:
        return tuple(int(part) if part.isdigit() else -1 for part in path.name.split("."))

    return sorted((p for p in dataset_dir.iterdir() if p.is_dir()), key=key)


def open_builder(data_root_dir: str | Path, name: str) -> tfds.core.DatasetBuilder:
    """A read-only tfds builder for `name`, checked to have LIBERO's step features."""
    dataset_dir = find_dataset_dir(data_root_dir, name)
    builder = tfds.builder_from_directory(str(dataset_dir))
    _check_libero_features(builder, name)
    return builder


def _check_libero_features(builder: tfds.core.DatasetBuilder, name: str) -> None:
    features = builder.info.features
    step_features = dict(_flatten_features(features["steps"].feature)) if "steps" in features else {}
    problems = []
    for key, shape in _REQUIRED_STEP_FEATURES.items():
        if key not in step_features:
            problems.append(f"missing steps/{key}")
        elif shape is not None and tuple(step_features[key].shape) != shape:
            problems.append(f"steps/{key} has shape {tuple(step_features[key].shape)}, expected {shape}")
    if problems:
        raise ConfigError(
            f"Dataset {name!r} ({builder.data_dir}) is not in LIBERO's RLDS layout: {'; '.join(problems)}. "
            "Only LIBERO-format datasets (as openvla/modified_libero_rlds) are supported."
        )


def _flatten_features(features, prefix: str = ""):
    """("observation/state", feature) pairs of a nested FeaturesDict."""
    for key, feature in features.items():
        if isinstance(feature, tfds.features.FeaturesDict):
            yield from _flatten_features(feature, f"{prefix}{key}/")
        else:
            yield f"{prefix}{key}", feature


def read_trajectories(
    builder: tfds.core.DatasetBuilder,
    split: str | tfds.typing.SplitArg = "train",
    *,
    shuffle_seed: int | None = None,
    num_parallel_reads: int = 4,
) -> tf.data.Dataset:
    """Standardised trajectories (module docstring) of `split`, in file order or files shuffled with `shuffle_seed`."""
    episodes = builder.as_dataset(
        split=split,
        shuffle_files=shuffle_seed is not None,
        decoders={"steps": tfds.decode.SkipDecoding()},
        read_config=tfds.ReadConfig(
            shuffle_seed=shuffle_seed,
            interleave_cycle_length=num_parallel_reads,
            num_parallel_calls_for_interleave_files=num_parallel_reads,
            skip_prefetch=True,
            add_tfds_id=True,
        ),
    )
    return episodes.map(_standardize_episode, num_parallel_calls=num_parallel_reads)


def _standardize_episode(episode: dict) -> dict:
    trajectory = libero_standardize(episode["steps"])
    length = tf.shape(trajectory["action"])[0]
    trajectory["episode_id"] = tf.fill([length], episode["tfds_id"])
    trajectory["step"] = tf.range(length, dtype=tf.int32)
    return trajectory


def libero_standardize(steps: dict) -> dict:
    """LIBERO steps -> standardised trajectory (OFT `libero_dataset_transform`).

    The gripper action (-1 open ... +1 close) is clipped to [0, 1] and inverted, so 1 = open and 0 = closed;
    proprio = EEF state `state[:, :6]` + gripper state `state[:, -2:]`.
    """
    action = tf.cast(steps["action"], tf.float32)
    gripper = 1.0 - tf.clip_by_value(action[:, -1:], 0.0, 1.0)
    state = tf.cast(steps["observation"]["state"], tf.float32)
    trajectory = {f"image_{view}": steps["observation"][_IMAGE_KEYS[view]] for view in CAMERA_VIEWS}
    trajectory.update(
        instruction=steps["language_instruction"],
        action=tf.concat([action[:, :6], gripper], axis=1),
        proprio=tf.concat([state[:, :6], state[:, -2:]], axis=1),
    )
    return trajectory
