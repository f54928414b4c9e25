"""``name[key=value,...]`` selectors, as on the command line and in suite files.

A value may itself contain commas (``skimage[images=camera,coins,crop=128]``): a piece without
``=`` continues the previous value. Values stay strings here; the owning spec's ``Param``
coerces them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from evobench.errors import EvobenchError

_SELECTOR = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9_.-]*)\s*(?:\[(.*)\])?\s*$", re.S)


@dataclass(frozen=True)
class Selector:
    name: str
    params: dict[str, str] = field(default_factory=dict)

    def label(self) -> str:
        return format_label(self.name, self.params)


def format_label(name: str, params: dict) -> str:
    """``name[k=v,...]`` with keys sorted; ``name`` alone without parameters."""
    if not params:
        return name
    inner = ",".join(f"{k}={_fmt(v)}" for k, v in sorted(params.items()))
    return f"{name}[{inner}]"


def _fmt(value) -> str:
    if isinstance(value, tuple | list):
        return "-".join(str(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def parse_selector(text: str, kind: str = "item") -> Selector:
    """Parse one selector; a malformed one is a one-line error showing the expected form."""
    if not isinstance(text, str):
        raise EvobenchError(f"{kind} selector must be a string like 'name[key=value]', got {text!r}")
    match = _SELECTOR.match(text)
    if not match:
        raise EvobenchError(
            f"cannot parse {kind} selector {text!r}; write it as name or name[key=value,key2=value2]"
        )
    name, inner = match.group(1), match.group(2)
    params: dict[str, str] = {}
    last = None
    for piece in (inner or "").split(","):
        piece = piece.strip()
        if not piece:
            continue
        if "=" in piece:
            key, _, value = piece.partition("=")
            key = key.strip()
            if not key:
                raise EvobenchError(f"{kind} selector {text!r}: empty parameter name before '='")
            if key in params:
                raise EvobenchError(f"{kind} selector {text!r}: parameter {key!r} given twice")
            params[key] = value.strip()
            last = key
        elif last is None:
            raise EvobenchError(
                f"{kind} selector {text!r}: {piece!r} is not key=value (e.g. {name}[key={piece}])"
            )
        else:
            params[last] = f"{params[last]},{piece}"
    return Selector(name, params)


def split_list(text: str, what: str, cast=float, example: str = "15,25,50") -> list:
    """``"15,25,50"`` -> [15.0, 25.0, 50.0] with a one-line error (showing ``example``) on a
    bad item; an empty list (``''``, ``','``) is refused."""
    out = []
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            continue
        try:
            value = cast(item)
        except (ValueError, OverflowError):
            raise EvobenchError(f"{what}: {item!r} is not a number (expected e.g. {example})") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise EvobenchError(f"{what}: {item!r} is not a finite number (expected e.g. "
                                f"{example})")
        out.append(value)
    if not out:
        raise EvobenchError(f"{what}: give at least one value (e.g. {example}), or leave the "
                            "option out for the suite's values")
    return out
