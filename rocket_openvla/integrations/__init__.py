"""Adapters for VLAs that live in other frameworks, each tested in that framework's own environment.

    lerobot   lerobot's pi0 / pi0.5 / SmolVLA policies (`--backbone.type lerobot`)
"""
