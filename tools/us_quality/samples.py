"""Rendering sets of labelled samples: a clean frame, a scanner look, a class's degradation, then the view.

Each sample has its own random generator seeded by ``(seed, stream, index)``, so a set is the
same for a seed whatever the number of worker processes. Samples are kept as the 128x128 uint8
output of :func:`view.to_input` (sector crop, normalisation, resize); :func:`preprocess.normalize`
turns them into model input.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tools.us_quality import LABELS
from tools.us_quality.data import ClipData
from tools.us_quality.looks import make_sample
from tools.us_quality.view import to_input

# Streams keep the sets of one seed independent of each other.
STREAM_TRAIN, STREAM_VAL, STREAM_TEST, STREAM_CALIB = 1, 2, 3, 4

_CLIPS: list[ClipData] = []  # set before forking workers (inherited, not pickled)


@dataclass(frozen=True)
class Job:
    index: int
    clip: int
    frame: int
    label: int


def _render(args: tuple[Job, int, int]) -> np.ndarray:
    job, seed, stream = args
    rng = np.random.default_rng([seed, stream, job.index])
    c = _CLIPS[job.clip]
    out, mask = make_sample(c.frames[job.frame], c.mask, LABELS[job.label], rng)
    return to_input(out, mask)


def render(
    clips: list[ClipData], jobs: Sequence[Job], seed: int, stream: int, workers: int = 1
) -> np.ndarray:
    """uint8 array (len(jobs), 128, 128) of rendered samples."""
    global _CLIPS
    _CLIPS = clips
    args = [(j, seed, stream) for j in jobs]
    if workers > 1 and len(jobs) > 64:
        with mp.get_context("fork").Pool(workers) as pool:
            out = pool.map(_render, args, chunksize=32)
    else:
        out = [_render(a) for a in args]
    _CLIPS = []
    return np.stack(out) if out else np.zeros((0, 128, 128), np.uint8)


def class_jobs(clips: list[ClipData], frames_per_clip: int, still_repeats: int) -> list[Job]:
    """Every class on evenly spaced frames of each clip (a still ``still_repeats`` times): balanced.

    Job indices (and so each sample's seed) depend only on the clips and these counts, so a sample
    is the same whichever subset of clips (a fold's training sources) it is later selected for.
    """
    jobs: list[Job] = []
    for ci, c in enumerate(clips):
        n = len(c.frames)
        idx = np.unique(np.linspace(0, n - 1, min(frames_per_clip, n)).astype(int))
        for fi in idx:
            for _ in range(still_repeats if n == 1 else 1):
                jobs.extend(Job(len(jobs) + k, ci, int(fi), k) for k in range(len(LABELS)))
    return jobs
