import pytest

from rocket_openvla.align import resolve_layers


def test_negative_indices_are_python_style():
    assert resolve_layers([0, 5, -1, -33], 33) == [0, 5, 32, 0]


@pytest.mark.parametrize("index", [33, -34])
def test_out_of_range_names_field_and_range(index):
    with pytest.raises(ValueError, match=r"rocket.student_layers: index .* \[-33, 32\]"):
        resolve_layers([index], 33, "rocket.student_layers")
