"""Action chunking at the trajectory level, with OpenVLA-OFT's rule at episode ends.

OFT (`chunk_act_obs` with window 1 and `future_action_window_size = chunk - 1`) keeps only the start steps
t = 0 .. T - chunk, i.e. `T - (chunk - 1)` frames per trajectory of length T, and gathers actions
`t, t + 1, ..., t + chunk - 1`, each index clamped to the last step T - 1. With those start steps the clamp never
fires, so every chunk is a window of real, consecutive actions that ends at the latest on the final step;
trajectories shorter than `chunk` yield no frames.
"""

from __future__ import annotations

from rocket_openvla.data.tf_runtime import tf


def num_chunk_starts(traj_len, chunk_size: int):
    """How many frames a trajectory of `traj_len` steps yields: max(T - (chunk - 1), 0)."""
    return tf.maximum(traj_len - (chunk_size - 1), 0)


def chunk_actions(trajectory: dict, chunk_size: int) -> dict:
    """Trajectory (every value `[T, ...]`, with `action` `[T, A]`) -> frames (every value `[N, ...]`).

    Per-step values are kept for the N = max(T - (chunk - 1), 0) start steps; `action` becomes
    `actions [N, chunk, A]` (see the module docstring for the rule).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    action = trajectory["action"]
    traj_len = tf.shape(action)[0]
    num_starts = num_chunk_starts(traj_len, chunk_size)
    indices = tf.range(num_starts)[:, None] + tf.range(chunk_size)[None, :]
    indices = tf.minimum(indices, traj_len - 1)
    frames = {key: value[:num_starts] for key, value in trajectory.items() if key != "action"}
    frames["actions"] = tf.gather(action, indices)
    return frames
