"""Tabletop scenes with objects at known 3D positions, ray-cast with numpy through pinhole cameras.

World frame: metres, z up, the table top is the plane z = 0 centred on the origin. Camera frame: OpenCV
convention (x right, y down, z forward); `Camera.world_from_camera` maps camera-frame directions to world.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

TABLE_HALF_EXTENT = 0.5
OBJECT_HALF_SIZE = 0.03
GRIPPER_RADIUS = 0.025
WRIST_CAMERA_HEIGHT = 0.15

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.12, 0.10),
    "green": (0.15, 0.70, 0.20),
    "blue": (0.15, 0.30, 0.90),
    "yellow": (0.95, 0.85, 0.15),
    "purple": (0.60, 0.20, 0.75),
    "orange": (0.95, 0.50, 0.10),
}
SHAPES = ("block", "ball")

_LIGHT_DIRECTION = np.array([0.3, -0.5, 1.0]) / np.linalg.norm([0.3, -0.5, 1.0])
_BACKGROUND = np.array([0.30, 0.32, 0.36])
_TABLE_TONES = (np.array([0.72, 0.60, 0.45]), np.array([0.62, 0.50, 0.37]))
_GRIPPER_COLOUR = np.array([0.20, 0.20, 0.22])


@dataclass
class SceneObject:
    """An object on the table: a `block` (axis-aligned cube) or a `ball` (sphere) of half-size `half_size`."""

    colour: str
    shape: str
    position: np.ndarray  # [3] centre, world frame
    half_size: float = OBJECT_HALF_SIZE

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"


@dataclass(frozen=True)
class Camera:
    """A pinhole camera; `intrinsics` [3, 3] in pixels for an `image_size`² image."""

    position: np.ndarray  # [3] world frame
    world_from_camera: np.ndarray  # [3, 3] rotation, columns = camera x, y, z axes in world coordinates
    intrinsics: np.ndarray  # [3, 3]
    image_size: int

    def project(self, points: np.ndarray) -> np.ndarray:
        """World points [N, 3] -> pixel coordinates [N, 2] (u right, v down) and depth along the optical axis."""
        in_camera = (points - self.position) @ self.world_from_camera
        uvw = in_camera @ self.intrinsics.T
        return np.concatenate([uvw[:, :2] / uvw[:, 2:], in_camera[:, 2:]], axis=1)

    @property
    def optics(self) -> tuple[bytes, bytes, int]:
        """Hashable (intrinsics, orientation, size): cameras that share it share their ray directions."""
        return self.intrinsics.tobytes(), self.world_from_camera.tobytes(), self.image_size

    def ray_directions(self) -> np.ndarray:
        """Unit world-frame ray directions through each pixel centre: float32 [H, W, 3] (cached; read-only)."""
        return _ray_directions(self.optics)

    def pixel_window(self, centre: np.ndarray, radius: float) -> tuple[slice, slice]:
        """Rows and columns that can see a sphere of `radius` around `centre` (the whole image when close)."""
        full = (slice(0, self.image_size), slice(0, self.image_size))
        (u, v, depth), = self.project(centre[None])
        if depth <= 2 * radius:
            return full
        half = 1.5 * self.intrinsics[0, 0] * radius / (depth - radius) + 1  # 1.5: off-axis stretch
        rows = slice(int(np.clip(v - half, 0, self.image_size)), int(np.clip(np.ceil(v + half), 0, self.image_size)))
        cols = slice(int(np.clip(u - half, 0, self.image_size)), int(np.clip(np.ceil(u + half), 0, self.image_size)))
        return rows, cols


@functools.lru_cache(maxsize=8)
def _ray_directions(optics: tuple[bytes, bytes, int]) -> np.ndarray:
    intrinsics, world_from_camera, image_size = optics
    pixel = np.arange(image_size) + 0.5
    u, v = np.meshgrid(pixel, pixel)
    homogeneous = np.stack([u, v, np.ones_like(u)], axis=-1)
    in_camera = homogeneous @ np.linalg.inv(np.frombuffer(intrinsics).reshape(3, 3)).T
    in_world = in_camera @ np.frombuffer(world_from_camera).reshape(3, 3).T
    return (in_world / np.linalg.norm(in_world, axis=-1, keepdims=True)).astype(np.float32)


def look_at_camera(position, target, up, fov_degrees: float, image_size: int) -> Camera:
    """A camera at `position` looking at `target`; `up` fixes the roll (image y points away from it)."""
    position, target, up = (np.asarray(x, dtype=np.float64) for x in (position, target, up))
    forward = target - position
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    focal = 0.5 * image_size / np.tan(np.deg2rad(fov_degrees) / 2)
    intrinsics = np.array([[focal, 0.0, image_size / 2], [0.0, focal, image_size / 2], [0.0, 0.0, 1.0]])
    return Camera(position, np.stack([right, down, forward], axis=1), intrinsics, image_size)


def primary_camera(image_size: int) -> Camera:
    """The fixed third-person ("agentview") camera: in front of the table, looking down at its centre."""
    return look_at_camera((0.0, -0.5, 0.55), (0.0, 0.0, 0.0), (0.0, 0.0, 1.0), 45.0, image_size)


def wrist_camera(gripper_position: np.ndarray, image_size: int) -> Camera:
    """The gripper-mounted camera: above the gripper (and a held object), looking straight down (image up = +y)."""
    eye = np.asarray(gripper_position, dtype=np.float64) + np.array([0.0, 0.0, WRIST_CAMERA_HEIGHT])
    return look_at_camera(eye, eye - np.array([0.0, 0.0, 1.0]), (0.0, 1.0, 0.0), 80.0, image_size)


def render(camera: Camera, objects: list[SceneObject], gripper_position: np.ndarray | None) -> np.ndarray:
    """Ray-cast the table, the objects and (if given) the gripper sphere: uint8 [H, W, 3].

    Each object is only traced inside the pixel window its bounding sphere projects to.
    """
    directions = camera.ray_directions()
    origin = camera.position.astype(np.float32)
    table_depth, table_colour = _table_layer(camera.position.tobytes(), camera.optics)
    depth, colour = table_depth.copy(), table_colour.copy()
    primitives = [(obj.position, obj.half_size, COLOURS[obj.colour], obj.shape == "ball") for obj in objects]
    if gripper_position is not None:
        primitives.append((np.asarray(gripper_position), GRIPPER_RADIUS, _GRIPPER_COLOUR, True))
    for centre, half_size, base, is_sphere in primitives:
        window = camera.pixel_window(centre, half_size * np.sqrt(3))
        draw = _draw_sphere if is_sphere else _draw_box
        draw(origin, directions[window], centre, half_size, np.asarray(base), depth[window], colour[window])
    return np.clip(np.round(colour * 255.0), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=4)
def _table_layer(position: bytes, optics: tuple[bytes, bytes, int]) -> tuple[np.ndarray, np.ndarray]:
    """Depth [H, W] and colour [H, W, 3] of the checkered table over the background (cached: the primary
    camera never moves)."""
    origin = np.frombuffer(position).astype(np.float32)
    directions = _ray_directions(optics)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -origin[2] / directions[..., 2]
    hit_x = origin[0] + t * directions[..., 0]
    hit_y = origin[1] + t * directions[..., 1]
    visible = (t > 0) & (np.abs(hit_x) <= TABLE_HALF_EXTENT) & (np.abs(hit_y) <= TABLE_HALF_EXTENT)
    odd_square = (np.floor(hit_x / 0.1) + np.floor(hit_y / 0.1)) % 2 == 1
    tone = np.where(odd_square[..., None], _TABLE_TONES[1], _TABLE_TONES[0])
    colour = np.where(visible[..., None], tone, _BACKGROUND).astype(np.float32)
    depth = np.where(visible, t, np.inf).astype(np.float32)
    return depth, colour


def _shade(base: np.ndarray, normals: np.ndarray) -> np.ndarray:
    lambert = np.clip(normals @ _LIGHT_DIRECTION, 0.0, 1.0)
    return base * (0.35 + 0.65 * lambert)[..., None]


def _draw_sphere(origin, directions, centre, radius, base, depth, colour) -> None:
    offset = origin - centre
    b = directions @ offset
    discriminant = b * b - (offset @ offset - radius * radius)
    hit = discriminant > 0
    t = -b - np.sqrt(np.where(hit, discriminant, 0.0))
    visible = hit & (t > 0) & (t < depth)
    normals = (origin + t[visible][:, None] * directions[visible] - centre) / radius
    depth[visible] = t[visible]
    colour[visible] = _shade(base, normals)


def _draw_box(origin, directions, centre, half_size, base, depth, colour) -> None:
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = 1.0 / directions
        t_low = (centre - half_size - origin) * inverse
        t_high = (centre + half_size - origin) * inverse
    t_entry = np.minimum(t_low, t_high)
    t_near = t_entry.max(axis=-1)
    t_far = np.maximum(t_low, t_high).min(axis=-1)
    visible = (t_near < t_far) & (t_near > 0) & (t_near < depth)
    hit_directions = directions[visible]
    entry_axis = t_entry[visible].argmax(axis=-1)
    rows = np.arange(len(entry_axis))
    normals = np.zeros_like(hit_directions)
    normals[rows, entry_axis] = -np.sign(hit_directions[rows, entry_axis])
    depth[visible] = t_near[visible]
    colour[visible] = _shade(base, normals)
