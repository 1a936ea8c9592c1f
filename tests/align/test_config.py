import pytest

from rocket_openvla.align import RocketConfig

PAPER_STUDENT = [2, 4, 6, 8, 10, 12, 14, 16, 18, 31]
PAPER_TEACHER = [2, 4, 6, 8, 10, 12, 14, 16, 18, -1]


def config(**overrides) -> RocketConfig:
    fields = dict(student_layers=list(PAPER_STUDENT), teacher_layers=list(PAPER_TEACHER))
    fields.update(overrides)
    return RocketConfig(**fields)


def test_paper_matryoshka_widths():
    assert config().pair_widths(2048) == [409, 591, 773, 955, 1137, 1319, 1501, 1683, 1865, 2048]


def test_reversed_widths():
    assert config(shallow_to_deep=False).pair_widths(2048) == [2048, 1865, 1683, 1501, 1319, 1137, 955, 773, 591, 409]


def test_shared_without_matryoshka_is_full_width():
    assert config(matryoshka=False).pair_widths(2048) == [2048] * 10


def test_independent_projectors_default_to_full_width():
    assert config(share_projector=False).pair_widths(2048) == [2048] * 10


def test_release_independent_width_is_reproduced_by_ratios():
    # The release builds each independent projector with num_layers=1 -> ratio [0.2] -> 409 of 2048 units.
    assert config(share_projector=False, width_ratios=[0.2] * 10).pair_widths(2048) == [409] * 10


def test_custom_ratios_apply_in_every_layout():
    ratios = [0.5, 1.0]
    for shared in (True, False):
        for matryoshka in (True, False):
            cfg = RocketConfig(student_layers=[1, 2], teacher_layers=[0, 1], width_ratios=ratios,
                               share_projector=shared, matryoshka=matryoshka)
            assert cfg.pair_widths(100) == [50, 100]


def test_single_pair_schedule_starts_at_min_ratio():
    assert RocketConfig(student_layers=[24], teacher_layers=[-1]).pair_widths(2048) == [409]


def test_resolve_pairs_maps_negative_indices():
    student, teacher = config().resolve_pairs(num_student_states=33, num_teacher_layers=24)
    assert student == PAPER_STUDENT
    assert teacher == [2, 4, 6, 8, 10, 12, 14, 16, 18, 23]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(student_layers=[], teacher_layers=[]), "at least one layer"),
        (dict(teacher_layers=[1, 2]), "give one teacher layer per student layer"),
        (dict(width_ratios=[0.5] * 3), "one ratio per pair"),
        (dict(width_ratios=[0.0] + [1.0] * 9), r"outside \(0, 1\]"),
        (dict(width_ratios=[1.5] + [1.0] * 9), r"outside \(0, 1\]"),
        (dict(ensemble_size=0), "ensemble_size"),
        (dict(hidden_dim=0), "hidden_dim"),
        (dict(pooling="nearest"), "pooling"),
        (dict(student_token_shift=-1), "student_token_shift"),
    ],
)
def test_validate_rejects_bad_fields(overrides, message):
    with pytest.raises(ValueError, match=message):
        config(**overrides).validate()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(student_layers=[2, 4, 6, 8, 10, 12, 14, 16, 18, 33]), "out of range"),
        (dict(teacher_layers=[2, 4, 6, 8, 10, 12, 14, 16, 18, 24]), "out of range"),
        (dict(student_layers=[2, 4, 6, 8, 10, 12, 14, 16, 18, 18]), "repeats a layer"),
        (dict(teacher_layers=[2, 4, 6, 8, 10, 12, 14, 16, 18, 2]), "repeats a layer"),
        (dict(student_layers=[4, 2, 6, 8, 10, 12, 14, 16, 18, 31]), "ascending"),
        (dict(student_layers=[2, 4, 6, 8, 10, 12, 14, 16, 18, 1]), "ascending"),
    ],
)
def test_resolve_pairs_rejects_bad_layers(overrides, message):
    with pytest.raises(ValueError, match=message):
        config(**overrides).resolve_pairs(num_student_states=33, num_teacher_layers=24)


def test_unsorted_student_layers_are_fine_without_nested_widths():
    cfg = config(student_layers=[4, 2, 6, 8, 10, 12, 14, 16, 18, 31], share_projector=False)
    assert cfg.resolve_pairs(33, 24)[0][:2] == [4, 2]
