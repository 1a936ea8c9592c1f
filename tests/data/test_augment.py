import numpy as np

from rocket_openvla.data.augment import augment_image, augment_views, center_crop, decode_and_resize
from rocket_openvla.data.tf_runtime import tf


def _scene(size: int = 48) -> np.ndarray:
    """A structured uint8 image (gradients + a square) so crops and colour jitter show."""
    y, x = np.mgrid[0:size, 0:size]
    image = np.stack([x * 255 // size, y * 255 // size, np.full_like(x, 90)], axis=-1).astype(np.uint8)
    image[size // 3 : size // 2, size // 3 : size // 2] = (220, 40, 40)
    return image


def _seed(a: int, b: int) -> tf.Tensor:
    return tf.constant([a, b], tf.int64)


def test_augmentation_changes_pixels_but_not_shape_or_dtype():
    image = _scene()
    augmented = augment_image(tf.constant(image), _seed(1, 2)).numpy()
    assert augmented.shape == image.shape and augmented.dtype == np.uint8
    assert np.abs(augmented.astype(int) - image).mean() > 2


def test_augmentation_is_a_function_of_the_seed():
    image = tf.constant(_scene())
    first, again = (augment_image(image, _seed(5, 9)).numpy() for _ in range(2))
    other = augment_image(image, _seed(5, 10)).numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_cameras_get_different_crops_and_jitter():
    image = _scene()
    views = augment_views(tf.constant(np.stack([image, image])), _seed(3, 4)).numpy()
    assert views.shape == (2, *image.shape) and views.dtype == np.uint8
    assert not np.array_equal(views[0], views[1])  # the same picture in both cameras is augmented differently
    np.testing.assert_array_equal(views[1], augment_image(tf.constant(image), _seed(4, 5)).numpy())  # seed + 1


def test_center_crop_removes_the_outer_border():
    # The centre crop keeps the central sqrt(0.9) ~ 94.9% of each side: a 2%-wide border disappears.
    size = 100
    image = np.full((size, size, 3), 128, np.uint8)
    image[:2], image[-2:], image[:, :2], image[:, -2:] = 255, 255, 255, 255
    cropped = center_crop(tf.constant(image)).numpy()
    assert cropped.shape == image.shape and cropped.dtype == np.uint8
    assert cropped.max() == 128 and cropped.min() == 128


def test_decode_and_resize_to_the_model_size():
    encoded = tf.io.encode_png(tf.constant(_scene(64)))
    resized = decode_and_resize(encoded, 32).numpy()
    assert resized.shape == (32, 32, 3) and resized.dtype == np.uint8
    np.testing.assert_allclose(resized.mean(axis=(0, 1)), _scene(64).mean(axis=(0, 1)), atol=3)
