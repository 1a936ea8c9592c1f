"""The evaluation's policy sources: the baselines by name, and a policy whose cameras LIBERO cannot render is refused
(a served policy answering like a local one is tested beside the server, in tests/deploy/test_server.py)."""

import dataclasses

import pytest

from rocket_openvla.deploy import Policy
from rocket_openvla.errors import ConfigError
from rocket_openvla.eval.policies import LocalPolicy, RandomPolicy, ZeroPolicy, make_policy
from tests.deploy.test_server import policy_dir  # noqa: F401  (a module fixture: a tiny policy directory)


def test_baselines_are_named_and_a_policy_without_libero_cameras_is_refused(policy_dir):  # noqa: F811
    assert isinstance(make_policy("random"), RandomPolicy) and isinstance(make_policy("zero"), ZeroPolicy)
    policy = Policy.from_pretrained(policy_dir)
    policy.config = dataclasses.replace(policy.config, cameras=("primary", "left_wrist"))
    with pytest.raises(ConfigError, match=r"takes cameras \['primary', 'left_wrist'\]; LIBERO renders"):
        LocalPolicy(policy)
