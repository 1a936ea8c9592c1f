"""OpenVLA's image transforms in TensorFlow: decode + resize, train-time augmentation, eval-time centre crop.

Training with `image_aug` (OpenVLA / OFT) applies, in order, on the resized image as float in [0, 1],
clipping to [0, 1] after each op: a random square crop of 90% of the area resized back, brightness ±0.2,
contrast and saturation in [0.8, 1.2], hue ±0.05. As in OpenVLA (dlimp), every op of one image draws from the
same stateless seed, so with a fixed 90% square crop the crop's row and column offsets are equal (it slides
along the diagonal), and camera i of a frame uses seed + i, so cameras get different crops and jitter.
Evaluation of an augmented policy takes the centre crop of the same area instead.
"""

from __future__ import annotations

from rocket_openvla.data.tf_runtime import tf

CROP_AREA = 0.9
BRIGHTNESS_DELTA = 0.2
CONTRAST_RANGE = (0.8, 1.2)
SATURATION_RANGE = (0.8, 1.2)
HUE_DELTA = 0.05


def decode_and_resize(encoded: tf.Tensor, size: int) -> tf.Tensor:
    """Encoded image bytes (scalar string) -> uint8 [size, size, 3], Lanczos3 with antialiasing like OpenVLA."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False, dtype=tf.uint8)
    return resize_image(image, size)


def resize_image(image: tf.Tensor, size: int) -> tf.Tensor:
    """uint8 [H, W, 3] -> uint8 [size, size, 3]."""
    resized = tf.image.resize(image, (size, size), method="lanczos3", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def augment_image(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """uint8 [H, W, 3] -> uint8 [H, W, 3] with OpenVLA's train augmentation; `seed` int32 [2] fixes the draw."""
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    side = CROP_AREA**0.5
    offset = tf.random.stateless_uniform((1,), seed, 0.0, 1.0 - side)
    box = tf.stack([offset, offset, offset + side, offset + side], axis=1)  # [1, 4] (y1, x1, y2, x2), normalised
    ops = (
        lambda x: tf.image.crop_and_resize(x[None], box, [0], (height, width))[0],
        lambda x: tf.image.stateless_random_brightness(x, BRIGHTNESS_DELTA, seed),
        lambda x: tf.image.stateless_random_contrast(x, *CONTRAST_RANGE, seed),
        lambda x: tf.image.stateless_random_saturation(x, *SATURATION_RANGE, seed),
        lambda x: tf.image.stateless_random_hue(x, HUE_DELTA, seed),
    )
    result = tf.image.convert_image_dtype(image, tf.float32)
    for op in ops:
        result = tf.clip_by_value(op(result), 0.0, 1.0)
    return tf.image.convert_image_dtype(result, tf.uint8, saturate=True)


def augment_views(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """uint8 [V, H, W, 3] -> uint8 [V, H, W, 3]; view i is augmented with `seed + i`."""
    num_views = images.shape[0]
    return tf.stack([augment_image(images[i], seed + i) for i in range(num_views)])


def center_crop(image: tf.Tensor, crop_area: float = CROP_AREA) -> tf.Tensor:
    """Eval counterpart of the random crop: centre square of `crop_area` resized back; uint8 [H, W, 3] -> same."""
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    side = crop_area**0.5
    offset = (1.0 - side) / 2
    box = tf.constant([[offset, offset, offset + side, offset + side]], tf.float32)
    cropped = tf.image.crop_and_resize(tf.image.convert_image_dtype(image, tf.float32)[None], box, [0], (height, width))
    return tf.image.convert_image_dtype(tf.clip_by_value(cropped[0], 0.0, 1.0), tf.uint8, saturate=True)
