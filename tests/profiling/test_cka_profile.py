"""The CKA tool on the tiny set-up: every student hidden state against every teacher layer, through training's
capture, token positions and teacher targets."""

import math

from rocket_openvla.profiling.cka_profile import cka_record
from rocket_openvla.profiling.config import CKASettings


def test_cka_covers_every_layer_pair_of_the_set_up(tiny_session):
    record = cka_record(tiny_session, CKASettings(num_samples=4, batch_size=4))
    assert record["student_layers"] == [0, 1, 2] and record["teacher_layers"] == [0, 1]  # 2-block Llama, 2-block VGGT
    assert record["student_blocks"] == 2 and record["teacher_depth"] == 2
    assert record["num_samples"] == 4 and record["estimator"] == "minibatch CKA, unbiased HSIC"
    values = [value for row in record["matrix"] for value in row]
    assert len(record["matrix"]) == 3 and all(len(row) == 2 for row in record["matrix"])
    assert all(math.isfinite(value) and -1.0 <= value <= 1.0 + 1e-9 for value in values)
