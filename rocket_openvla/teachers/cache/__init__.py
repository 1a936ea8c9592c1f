"""Precomputed teacher targets: the config (`TeacherCacheConfig`), the on-disk layout (`layout`), the reader
(`TeacherCache`) and the geometry that turns cached feature maps into a batch's targets (`geometry`). The job that
writes a cache is `rocket_openvla.training.precompute` (it needs the backbone and the data)."""

from rocket_openvla.teachers.cache.config import CACHE_DTYPES, TeacherCacheConfig
from rocket_openvla.teachers.cache.reader import CacheCorruptedError, CachedBatch, TeacherCache

__all__ = ["CACHE_DTYPES", "CacheCorruptedError", "CachedBatch", "TeacherCache", "TeacherCacheConfig"]
