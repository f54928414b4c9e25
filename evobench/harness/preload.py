"""Imported once by the forkserver that forks every cell's worker: whatever is imported (and
lazily initialised) here is paid for once per run instead of once per cell.

scikit-image loads its submodules lazily, so the metric functions are touched, not just the
package; torch is optional (a run without torch methods still works).
"""

from __future__ import annotations

import os

from evobench.harness import lifeline

if os.environ.get(lifeline.PARENT_ENV):  # in the forkserver (isolate's subprocess pops it):
    # die with ``evobench run``; its cells die with the forkserver
    lifeline.die_with_parent(int(os.environ[lifeline.PARENT_ENV]))
    os.environ["EVOBENCH_FORKSERVER_PID"] = str(os.getpid())

import numpy as np  # noqa: E402
import scipy.ndimage  # noqa: F401
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import evobench.api  # noqa: F401
import evobench.harness.worker  # noqa: F401
import evobench.registry  # noqa: F401

try:
    import torch  # noqa: F401
except ImportError:  # pragma: no cover - torch is a dependency, but a broken install must not
    pass            # stop non-torch cells

_a = np.linspace(0.0, 1.0, 64).reshape(8, 8)
peak_signal_noise_ratio(_a, _a + 0.01, data_range=1.0)
structural_similarity(_a, _a + 0.01, data_range=1.0)
