from itertools import islice

import numpy as np
import pytest

from rocket_openvla.data.config import NAMED_MIXTURES, SYNTHETIC_DATASET_NAME, DataConfig, SyntheticDataConfig
from rocket_openvla.data.mixture import balance_weights, check_members_exist, mixture_length
from rocket_openvla.data.pipeline import build_dataset

SECOND = "synthetic_b_no_noops"


def test_balanced_weights_follow_dataset_sizes():
    np.testing.assert_allclose(balance_weights([1.0, 1.0], [300, 100]), [0.75, 0.25])
    np.testing.assert_allclose(balance_weights([1.0, 0.5], [100, 100]), [2 / 3, 1 / 3])
    # Primary datasets (weight 1.0) set the length: 100 steps at probability 2/3 -> 150 frames.
    assert mixture_length([1.0, 0.5], [100, 100]) == 150
    assert mixture_length([1.0, 1.0], [300, 100]) == 400


def test_named_mixtures_resolve_to_members():
    config = DataConfig(dataset="libero_4_task_suites_no_noops")
    assert config.members() == {name: 1.0 for name in NAMED_MIXTURES["libero_4_task_suites_no_noops"]}
    assert len(config.members()) == 4
    assert DataConfig(dataset="libero_goal_no_noops").members() == {"libero_goal_no_noops": 1.0}
    custom = DataConfig(dataset="mine", mixtures={"mine": {"a": 1.0, "b": 0.25}})
    assert custom.members() == {"a": 1.0, "b": 0.25}
    assert "libero_4_task_suites_no_noops" in custom.all_mixtures()  # built-ins stay available


@pytest.mark.parametrize(
    "config, message",
    [
        (DataConfig(shuffle_buffer_size=0), "data.shuffle_buffer_size=0 must be >= 1"),
        (DataConfig(num_actions_chunk=0), "data.num_actions_chunk=0"),
        (DataConfig(dataset="m", mixtures={"m": {"a": 1.0, "b": 0.0}}), r"data.mixtures\['m'\].*'b': 0.0"),
        (DataConfig(dataset="m", mixtures={"m": {}}), r"data.mixtures\['m'\] is empty"),
        (DataConfig(dataset="libero_4_task_suites_no_noops", synthetic=SyntheticDataConfig(generate=True)),
         "needs data.dataset to be one dataset name"),
    ],
)
def test_config_errors_name_the_field(config, message):
    with pytest.raises(ValueError, match=message):
        config.validate()


def test_unknown_mixture_member_is_named(rlds_root):
    members = {SYNTHETIC_DATASET_NAME: 1.0, "libero_goal_no_noops": 1.0}
    with pytest.raises(FileNotFoundError) as error:
        check_members_exist("my_mix", members, rlds_root)
    message = str(error.value)
    assert "Mixture 'my_mix'" in message and "['libero_goal_no_noops']" in message
    assert f"{SYNTHETIC_DATASET_NAME}:1.0.0" in message  # lists what exists
    check_members_exist("fine", {SYNTHETIC_DATASET_NAME: 1.0, SECOND: 1.0}, rlds_root)


def test_unknown_dataset_or_mixture_name(rlds_root):
    config = DataConfig(data_root_dir=rlds_root, dataset="libero_4_task_suite_no_noops")  # typo
    with pytest.raises(FileNotFoundError, match="Known mixtures: .*libero_4_task_suites_no_noops"):
        build_dataset(config)
    with pytest.raises(FileNotFoundError, match="Mixture 'libero_4_task_suites_no_noops'"):
        build_dataset(DataConfig(data_root_dir=rlds_root, dataset="libero_4_task_suites_no_noops"))


def test_mixture_pipeline_samples_every_member(make_config):
    config = make_config(dataset="both", mixtures={"both": {SYNTHETIC_DATASET_NAME: 1.0, SECOND: 1.0}})
    dataset = build_dataset(config)
    sizes = [dataset.dataset_statistics[name]["num_transitions"] for name in (SYNTHETIC_DATASET_NAME, SECOND)]
    assert dataset.dataset_names == [SYNTHETIC_DATASET_NAME, SECOND]
    np.testing.assert_allclose(dataset.sample_weights, np.array(sizes) / sum(sizes))
    assert dataset.dataset_length == sum(sizes)
    names = [sample["dataset_name"] for sample in islice(iter(dataset), 60)]
    assert set(names) == {SYNTHETIC_DATASET_NAME, SECOND}
