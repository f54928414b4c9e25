"""evobench: benchmarking zero-shot image restoration around the evolutionary binary VAE.

Importing evobench is cheap on purpose: torch, bm3d and the plugins' implementations load only
when a method actually runs. Plugin authors and scripts use :mod:`evobench.api`.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("evobench")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
