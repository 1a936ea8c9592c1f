import functools

import numpy as np

from rocket_openvla.data.augment import (
    BRIGHTNESS_DELTA,
    CONTRAST_RANGE,
    CROP_AREA,
    HUE_DELTA,
    SATURATION_RANGE,
    augment_crop_box,
    augment_crop_boxes,
    augment_image,
    augment_views,
    center_crop,
    decode_and_resize,
    op_seeds,
)
from rocket_openvla.data.tf_runtime import tf

PARAMETERS = ("crop offset", "brightness", "contrast", "saturation", "hue")
NUM_SEEDS = 400


def _scene(size: int = 48) -> np.ndarray:
    """A structured uint8 image (gradients + a square) so crops and colour jitter show."""
    y, x = np.mgrid[0:size, 0:size]
    image = np.stack([x * 255 // size, y * 255 // size, np.full_like(x, 90)], axis=-1).astype(np.uint8)
    image[size // 3 : size // 2, size // 3 : size // 2] = (220, 40, 40)
    return image


def _seed(a: int, b: int, dtype: tf.DType = tf.int64) -> tf.Tensor:
    return tf.constant([a, b], dtype)


def _fork_seed_chain(seed: tf.Tensor) -> list[tf.Tensor]:
    """int [2] -> five int32 [2] seeds: before each op the seed is replaced by a uniform draw seeded by it."""
    seeds = []
    for _ in PARAMETERS:
        seed = tf.random.stateless_uniform([2], seed, maxval=tf.int32.max, dtype=tf.int32)
        seeds.append(seed)
    return seeds


def _fork_random_resized_crop(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """float32 [H, W, 3] -> same: a random resized crop, scale (0.9, 0.9) and ratio (1, 1), all draws from `seed`."""
    batch = image[None]  # [1, H, W, 3]
    height, width = tf.shape(batch)[1], tf.shape(batch)[2]
    scales = tf.random.stateless_uniform((1,), seed, CROP_AREA, CROP_AREA)
    ratios = tf.exp(tf.random.stateless_uniform((1,), seed, tf.math.log(1.0), tf.math.log(1.0)))
    crop_heights = tf.clip_by_value(tf.sqrt(scales / ratios), 0, 1)
    crop_widths = tf.clip_by_value(tf.sqrt(scales * ratios), 0, 1)
    top = tf.random.stateless_uniform((1,), seed, 0, 1 - crop_heights)
    left = tf.random.stateless_uniform((1,), seed, 0, 1 - crop_widths)
    boxes = tf.stack([top, left, top + crop_heights, left + crop_widths], axis=1)  # [1, 4]
    return tf.image.crop_and_resize(batch, boxes, tf.range(1), (height, width))[0]


def _fork_augment(image: np.ndarray, seed: tf.Tensor) -> np.ndarray:
    """uint8 [H, W, 3] -> uint8 [H, W, 3]: OFT's augmentation restated op by op, a fresh seed before each op."""
    ops = (
        _fork_random_resized_crop,
        lambda x, s: tf.image.stateless_random_brightness(x, 0.2, s),
        lambda x, s: tf.image.stateless_random_contrast(x, 0.8, 1.2, s),
        lambda x, s: tf.image.stateless_random_saturation(x, 0.8, 1.2, s),
        lambda x, s: tf.image.stateless_random_hue(x, 0.05, s),
    )
    result = tf.image.convert_image_dtype(tf.constant(image), tf.float32)
    for op in ops:
        seed = tf.random.stateless_uniform([2], seed, maxval=tf.int32.max, dtype=tf.int32)
        result = tf.clip_by_value(op(result, seed), 0.0, 1.0)
    return tf.image.convert_image_dtype(result, tf.uint8, saturate=True).numpy()


def _draws(seeds: list[tf.Tensor]) -> np.ndarray:
    """Five op seeds -> float [5]: the value each op draws (TF's stateless_uniform over the op's range)."""
    side = tf.sqrt(tf.constant(CROP_AREA, tf.float32))
    ranges = (
        (0.0, 1.0 - side),
        (-BRIGHTNESS_DELTA, BRIGHTNESS_DELTA),
        CONTRAST_RANGE,
        SATURATION_RANGE,
        (-HUE_DELTA, HUE_DELTA),
    )
    return np.array([tf.random.stateless_uniform([], s, lo, hi).numpy() for s, (lo, hi) in zip(seeds, ranges)])


def _stream_seeds() -> list[tf.Tensor]:
    """NUM_SEEDS seeds of the form the pipeline passes: int64 [augment_seed, position]."""
    return [_seed(1234, position) for position in range(NUM_SEEDS)]


@functools.lru_cache(maxsize=1)
def _measured_parameters() -> np.ndarray:
    """float [NUM_SEEDS, 5]: each op's parameter read back from what `augment_image` does to crafted images.

    Per seed, four 32x32 images are augmented with that seed. A uniform grey image is changed by brightness only
    (the crop, contrast, saturation and hue leave it unchanged): its mean shift is the brightness delta. Two grey
    ramps along x, one rising and one falling, are not clipped by any draw: contrast keeps each image's mean, so
    the difference of their means depends on the crop offset alone, and the rising ramp's spread, relative to the
    cropped ramp's, is the contrast factor. A uniform colour keeps its hue through brightness and saturation and
    its HSV value through saturation and hue: its hue shift is the hue delta, and its saturation over that after
    the brightness shift, (max - min) / value, is the saturation factor.
    """
    size = 32
    ramp = np.linspace(0.0, 1.0, size)
    grey = np.full((size, size, 3), 0.5)
    rising = np.broadcast_to((0.3 + 0.4 * ramp)[None, :, None], (size, size, 3))
    falling = np.broadcast_to((0.7 - 0.4 * ramp)[None, :, None], (size, size, 3))
    colour = np.broadcast_to(np.array([0.3, 0.6, 0.45]), (size, size, 3))
    inputs = np.round(np.stack([grey, rising, falling, colour]) * 255).astype(np.uint8)  # [4, S, S, 3]
    images = tf.constant(inputs)

    @tf.function
    def augment_all(seed: tf.Tensor) -> tf.Tensor:
        return tf.stack([augment_image(images[i], seed) for i in range(len(inputs))])

    out = np.stack([augment_all(seed).numpy() for seed in _stream_seeds()]).astype(np.float64) / 255  # [N, 4, ...]
    before = inputs.astype(np.float64) / 255
    side = float(np.sqrt(np.float32(CROP_AREA)))

    brightness = out[:, 0].mean(axis=(1, 2, 3)) - before[0].mean()
    # mean of a ramp a + b x over the crop [o, o + side] is a + b (o + side / 2), plus the brightness delta
    offset = (out[:, 1].mean(axis=(1, 2, 3)) - out[:, 2].mean(axis=(1, 2, 3)) + 0.4) / 0.8 - side / 2
    contrast = out[:, 1, :, :, 0].std(axis=(1, 2)) / (0.4 * side * ramp.std())
    hsv = tf.image.rgb_to_hsv(out[:, 3].mean(axis=(1, 2))).numpy()  # [N, 3]
    colour_in = before[3, 0, 0]
    hue = hsv[:, 0] - tf.image.rgb_to_hsv(colour_in).numpy()[0]
    saturation = hsv[:, 1] / ((colour_in.max() - colour_in.min()) / hsv[:, 2])
    return np.stack([offset, brightness, contrast, saturation, hue], axis=1)


def _max_abs_correlation(parameters: np.ndarray) -> float:
    """float [N, 5] -> the largest |Pearson correlation| between two different columns."""
    correlation = np.corrcoef(parameters, rowvar=False)
    return float(np.abs(correlation[~np.eye(len(correlation), dtype=bool)]).max())


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


def test_int32_and_int64_seeds_give_the_same_augmentation():
    # The pipeline passes int64 [augment_seed, position]; OFT's seeds are int32. The values alone matter.
    image = tf.constant(_scene())
    np.testing.assert_array_equal(
        augment_image(image, _seed(77, 3, tf.int64)).numpy(), augment_image(image, _seed(77, 3, tf.int32)).numpy()
    )


def test_cameras_get_different_crops_and_jitter():
    image = _scene()
    views = augment_views(tf.constant(np.stack([image, image])), _seed(3, 4)).numpy()
    assert views.shape == (2, *image.shape) and views.dtype == np.uint8
    assert not np.array_equal(views[0], views[1])  # the same picture in both cameras is augmented differently
    np.testing.assert_array_equal(views[0], augment_image(tf.constant(image), _seed(3, 4)).numpy())  # seed + 0
    np.testing.assert_array_equal(views[1], augment_image(tf.constant(image), _seed(4, 5)).numpy())  # seed + 1


def test_each_op_gets_its_own_seed_from_the_fork_chain():
    for seed in (_seed(0, 0), _seed(1234, 17), _seed(2**31 - 2, 2**40)):
        chain = _fork_seed_chain(seed)
        derived = [s.numpy() for s in op_seeds(seed)]
        assert all(s.dtype == np.int32 and s.shape == (2,) for s in derived)
        np.testing.assert_array_equal(np.stack(derived), np.stack([s.numpy() for s in chain]))
        distinct = {tuple(s) for s in derived} | {tuple(seed.numpy())}
        assert len(distinct) == len(PARAMETERS) + 1  # no op reuses the seed passed in or another op's seed


def test_augment_image_equals_the_fork_algorithm():
    for size in (48, 37):
        image = _scene(size)
        for seed in (_seed(0, 0), _seed(3, 4), _seed(1234, 999), _seed(2**30, 123456)):
            np.testing.assert_array_equal(augment_image(tf.constant(image), seed).numpy(), _fork_augment(image, seed))


def test_measured_parameters_are_the_draws_of_each_op_seed():
    # What augment_image does to the crafted images is what each op's own seed draws, to within uint8 rounding.
    measured = _measured_parameters()
    draws = np.stack([_draws(_fork_seed_chain(seed)) for seed in _stream_seeds()])
    widths = np.array([1 - np.sqrt(CROP_AREA), 2 * BRIGHTNESS_DELTA, 0.4, 0.4, 2 * HUE_DELTA])
    error = np.abs(measured - draws).max(axis=0)
    assert (error < 0.1 * widths).all(), dict(zip(PARAMETERS, error))
    assert (measured.max(axis=0) - measured.min(axis=0) > 0.9 * widths).all()  # each draw spans its range


def test_crop_boxes_are_the_crops_the_images_got():
    # The box the teacher cache applies to feature maps is where augment_image cropped: its offset matches the one read
    # back from the augmented ramps, its side is sqrt(0.9), rows and columns share the offset.
    boxes = np.stack([augment_crop_box(seed).numpy() for seed in _stream_seeds()])  # [N, 4]
    measured_offset = _measured_parameters()[:, 0]
    np.testing.assert_allclose(boxes[:, 0], measured_offset, atol=0.1 * (1 - np.sqrt(CROP_AREA)))
    np.testing.assert_array_equal(boxes[:, 0], boxes[:, 1])
    np.testing.assert_allclose(boxes[:, 2:] - boxes[:, :2], np.sqrt(CROP_AREA), atol=1e-6)
    views = augment_crop_boxes(2, _seed(3, 4)).numpy()
    np.testing.assert_array_equal(views, np.stack([augment_crop_box(_seed(3, 4)), augment_crop_box(_seed(4, 5))]))


def test_the_five_parameters_are_uncorrelated_across_seeds():
    measured = _measured_parameters()
    assert _max_abs_correlation(measured) < 0.15, np.round(np.corrcoef(measured, rowvar=False), 3)
    # With every op drawing from one seed (OpenVLA's dlimp), the same five parameters move together.
    shared = np.stack([_draws([seed] * len(PARAMETERS)) for seed in _stream_seeds()])
    correlation = np.corrcoef(shared, rowvar=False)
    assert (correlation > 0.99).all(), np.round(correlation, 3)


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
