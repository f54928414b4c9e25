"""Stable keys and seeds: SHA-256 of canonical JSON, never Python's ``hash()``.

``noise_seed`` depends on (base seed, dataset + its parameters, image, degradation + its
parameters, repetition) only, so every method sees the same corrupted input; ``method_seed``
adds the method and its resolved parameters.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, frozenset | set):
        return sorted(_plain(v) for v in value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)  # 25 and 25.0 are the same noise level
        return value
    if hasattr(value, "item") and not isinstance(value, str | bytes):  # numpy scalars
        return _plain(value.item())
    return value


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, integral floats as ints: equal configs give equal text."""
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), allow_nan=False)


def digest(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from SHA-256 of the parts (fits int64 columns, numpy and torch)."""
    return int(digest(list(parts))[:16], 16) >> 1


def noise_seed(base_seed: int, dataset: str, dataset_params: dict, image: str,
               degradation: str, deg_params: dict, rep: int) -> int:
    return derive_seed("noise", int(base_seed), dataset, dataset_params, image, degradation,
                       deg_params, int(rep))


def method_seed(noise: int, method: str, method_params: dict) -> int:
    return derive_seed("method", int(noise), method, method_params)
