"""One seeding for every training tool: a run repeats bit for bit for a seed and a thread count."""

from __future__ import annotations

import numpy as np
import torch


def set_determinism(seed: int, threads: int) -> None:
    """Seed torch and numpy's global state, fix the thread count and refuse nondeterministic kernels.

    The recipes draw their own randomness from seeded ``numpy.random.Generator`` objects; the global
    numpy seed only covers libraries that use the global state. The thread count is part of the
    result: a float sum split over other threads rounds differently.
    """
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
