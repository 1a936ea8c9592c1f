import numpy as np

from rocket_openvla.data.synthetic.scene import (
    COLOURS,
    WRIST_CAMERA_HEIGHT,
    SceneObject,
    primary_camera,
    render,
    wrist_camera,
)

SIZE = 96


def _dominant_channel(pixel: np.ndarray) -> int:
    return int(np.argmax(pixel))


def test_objects_appear_where_their_3d_positions_project():
    objects = [
        SceneObject("red", "block", np.array([-0.15, 0.0, 0.03])),
        SceneObject("green", "ball", np.array([0.0, 0.1, 0.03])),
        SceneObject("blue", "block", np.array([0.15, -0.05, 0.03])),
    ]
    camera = primary_camera(SIZE)
    image = render(camera, objects, gripper_position=None)
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
    for obj in objects:
        (u, v, depth), = camera.project(obj.position[None])
        assert depth > 0
        pixel = image[int(v), int(u)]
        assert _dominant_channel(pixel) == _dominant_channel(np.array(COLOURS[obj.colour])), obj.name


def test_nearer_objects_occlude_farther_ones():
    camera = primary_camera(SIZE)
    far = SceneObject("red", "ball", np.array([0.0, 0.1, 0.03]))
    # On the ray from the camera to the far ball's centre, a third of the way: strictly in front of it.
    near_centre = camera.position + (far.position - camera.position) / 3
    near = SceneObject("blue", "ball", near_centre, half_size=0.02)
    (u, v, _), = camera.project(far.position[None])
    assert _dominant_channel(render(camera, [far], None)[int(v), int(u)]) == 0
    assert _dominant_channel(render(camera, [far, near], None)[int(v), int(u)]) == 2
    assert _dominant_channel(render(camera, [near, far], None)[int(v), int(u)]) == 2  # order-independent


def test_wrist_camera_looks_down_from_above_the_gripper():
    gripper = np.array([0.05, -0.02, 0.2])
    camera = wrist_camera(gripper, SIZE)
    np.testing.assert_allclose(camera.position, gripper + [0, 0, WRIST_CAMERA_HEIGHT])
    below = SceneObject("yellow", "block", np.array([0.05, -0.02, 0.03]))
    (u, v, depth), = camera.project(below.position[None])
    np.testing.assert_allclose([u, v], [SIZE / 2, SIZE / 2], atol=1e-6)
    np.testing.assert_allclose(depth, gripper[2] + WRIST_CAMERA_HEIGHT - 0.03)
    centre = render(camera, [below], None)[SIZE // 2, SIZE // 2]
    assert centre[0] > 150 and centre[1] > 150 and centre[2] < 100  # yellow
