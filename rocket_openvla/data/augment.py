"""OpenVLA's image transforms in TensorFlow: decode + resize, train-time augmentation, eval-time frames.

Training with `image_aug` (OpenVLA / OFT) applies, in order, on the resized image as float in [0, 1],
clipping to [0, 1] after each op: a random square crop of 90% of the area resized back, brightness ±0.2,
contrast and saturation in [0.8, 1.2], hue ±0.05. As in the dlimp fork that OpenVLA-OFT trains with, each op
gets its own stateless seed: before every op the seed is replaced by `stateless_uniform([2], seed)` (int32 in
[0, 2^31 - 1)), starting from the seed passed in, so the five random parameters of one image are independent of
each other. Within the crop op the row and column offsets come from the same op seed, so the fixed 90% square
crop's offsets are equal (it slides along the diagonal). Camera i of a frame uses seed + i, so cameras get
different crops and jitter. Evaluation of an augmented policy takes the centre crop of the same area instead.
`augment_crop_boxes` says which crop each view got (the teacher-feature cache applies it to cached feature maps).
"""

from __future__ import annotations

from rocket_openvla.data.tf_runtime import tf

CROP_AREA = 0.9
BRIGHTNESS_DELTA = 0.2
CONTRAST_RANGE = (0.8, 1.2)
SATURATION_RANGE = (0.8, 1.2)
HUE_DELTA = 0.05
NUM_AUGMENT_OPS = 5  # crop, brightness, contrast, saturation, hue


def decode_and_resize(encoded: tf.Tensor, size: int) -> tf.Tensor:
    """Encoded image bytes (scalar string) -> uint8 [size, size, 3], Lanczos3 with antialiasing like OpenVLA."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False, dtype=tf.uint8)
    return resize_image(image, size)


def resize_image(image: tf.Tensor, size: int) -> tf.Tensor:
    """uint8 [H, W, 3] -> uint8 [size, size, 3]."""
    resized = tf.image.resize(image, (size, size), method="lanczos3", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def augment_image(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """uint8 [H, W, 3] -> uint8 [H, W, 3] with OpenVLA-OFT's train augmentation.

    `seed` int32 or int64 [2] fixes the draw; each op gets a fresh seed derived from it (see `op_seeds`).
    """
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    crop_seed, brightness_seed, contrast_seed, saturation_seed, hue_seed = op_seeds(seed)
    ops = (
        lambda x: _crop_and_resize(x, _square_crop_box(crop_seed), height, width),
        lambda x: tf.image.stateless_random_brightness(x, BRIGHTNESS_DELTA, brightness_seed),
        lambda x: tf.image.stateless_random_contrast(x, *CONTRAST_RANGE, contrast_seed),
        lambda x: tf.image.stateless_random_saturation(x, *SATURATION_RANGE, saturation_seed),
        lambda x: tf.image.stateless_random_hue(x, HUE_DELTA, hue_seed),
    )
    result = tf.image.convert_image_dtype(image, tf.float32)
    for op in ops:
        result = tf.clip_by_value(op(result), 0.0, 1.0)
    return tf.image.convert_image_dtype(result, tf.uint8, saturate=True)


def augment_crop_box(seed: tf.Tensor) -> tf.Tensor:
    """The crop `augment_image(image, seed)` takes: float32 [4] `(y1, x1, y2, x2)` in [0, 1] image coordinates."""
    return _square_crop_box(op_seeds(seed)[0])


def op_seeds(seed: tf.Tensor) -> list[tf.Tensor]:
    """int32/int64 [2] -> five int32 [2] seeds for crop, brightness, contrast, saturation, hue (in that order).

    A chain: each op's seed is `stateless_uniform([2], previous, maxval=int32 max)`, the first from `seed`.
    """
    seeds = []
    for _ in range(NUM_AUGMENT_OPS):
        seed = tf.random.stateless_uniform([2], seed, maxval=tf.int32.max, dtype=tf.int32)
        seeds.append(seed)
    return seeds


def _square_crop_box(seed: tf.Tensor) -> tf.Tensor:
    """The random square crop of `CROP_AREA` drawn from the crop op's seed (int32 [2]): float32 [4] (y1, x1, y2, x2).

    A random resized crop with scale and aspect ratio fixed at (CROP_AREA, 1): side sqrt(area / ratio) in float32,
    row and column offsets both drawn from `seed` over [0, 1 - side), hence equal.
    """
    side = tf.sqrt(tf.constant(CROP_AREA, tf.float32))
    offset = tf.random.stateless_uniform((1,), seed, 0.0, 1.0 - side)[0]
    return tf.stack([offset, offset, offset + side, offset + side])


def _crop_and_resize(image: tf.Tensor, box: tf.Tensor, height: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
    """float32 [H, W, 3] -> float32 [height, width, 3]: the `box` (y1, x1, y2, x2), normalised, resized back."""
    return tf.image.crop_and_resize(image[None], box[None], [0], (height, width))[0]


def augment_views(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """uint8 [V, H, W, 3] -> uint8 [V, H, W, 3]; view i is augmented with `seed + i`."""
    num_views = images.shape[0]
    return tf.stack([augment_image(images[i], seed + i) for i in range(num_views)])


def augment_crop_boxes(num_views: int, seed: tf.Tensor) -> tf.Tensor:
    """float32 [V, 4]: the crop box `augment_views(images, seed)` takes for each of its `num_views` views."""
    return tf.stack([augment_crop_box(seed + i) for i in range(num_views)])


def center_crop(image: tf.Tensor, crop_area: float = CROP_AREA) -> tf.Tensor:
    """Eval counterpart of the random crop: centre square of `crop_area` resized back; uint8 [H, W, 3] -> same."""
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    side = crop_area**0.5
    offset = (1.0 - side) / 2
    box = tf.constant([[offset, offset, offset + side, offset + side]], tf.float32)
    cropped = tf.image.crop_and_resize(tf.image.convert_image_dtype(image, tf.float32)[None], box, [0], (height, width))
    return tf.image.convert_image_dtype(tf.clip_by_value(cropped[0], 0.0, 1.0), tf.uint8, saturate=True)


def eval_frame(image: tf.Tensor, size: int, crop: bool) -> tf.Tensor:
    """A camera frame as OpenVLA-OFT's evaluation feeds it to a policy: uint8 [H, W, 3] -> uint8 [size, size, 3].

    JPEG-encoded and decoded first (the RLDS datasets store JPEG frames, so the policy trained on their artefacts),
    resized as training frames are, then centre-cropped when the policy trained with `image_aug`.
    """
    frame = decode_and_resize(tf.io.encode_jpeg(image), size)
    return center_crop(frame) if crop else frame
