"""Rendering sets of labelled samples: a clean frame, a class, a degradation, then the runtime's resize.

Each sample has its own random generator seeded by ``(seed, stream, index)``, so a set is the
same for a seed whatever the number of worker processes. Samples are kept as the 128x128 uint8
output of :func:`preprocess.resize`; :func:`preprocess.normalize` turns them into model input.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tools.us_quality import LABELS
from tools.us_quality.data import ClipData
from tools.us_quality.degrade import make_sample
from tools.us_quality.preprocess import resize

# Streams keep the sets of one seed independent of each other.
STREAM_TRAIN, STREAM_VAL, STREAM_TEST, STREAM_CALIB = 1, 2, 3, 4
STILL_WEIGHT = 10  # a still is one frame; count it as this many so stills are not drowned out

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
    out = make_sample(c.frames[job.frame], c.mask, LABELS[job.label], rng)
    return resize(out)


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


def _eligible(clips: list[ClipData], max_per_clip: int, diagnostic: bool) -> list[tuple[int, int]]:
    pool: list[tuple[int, int]] = []
    for ci, c in enumerate(clips):
        ok = c.diagnostic_ok if diagnostic else np.ones(len(c.frames), bool)
        if len(c.frames) == 1:
            pool += [(ci, 0)] * STILL_WEIGHT if ok[0] else []
            continue
        idx = np.unique(np.linspace(0, len(c.frames) - 1, min(max_per_clip, len(c.frames))).astype(int))
        pool += [(ci, int(i)) for i in idx if ok[i]]
    return pool


def random_jobs(clips: list[ClipData], n: int, seed: int, stream: int, max_per_clip: int) -> list[Job]:
    """``n`` jobs with classes in turn (balanced) and frames drawn at random from all clips.

    At most ``max_per_clip`` evenly spaced frames per clip are eligible, so long clips do not
    dominate; each still counts as ``STILL_WEIGHT`` frames. Diagnostic samples come only from
    frames without large natural shadows (``ClipData.diagnostic_ok``).
    """
    pools = {True: _eligible(clips, max_per_clip, True), False: _eligible(clips, max_per_clip, False)}
    rng = np.random.default_rng([seed, stream])
    jobs = []
    for i in range(n):
        label = i % len(LABELS)
        pool = pools[label == 0] or pools[False]
        ci, fi = pool[int(rng.integers(0, len(pool)))]
        jobs.append(Job(i, ci, fi, label))
    return jobs


def grid_jobs(clips: list[ClipData], frames_per_clip: int) -> list[Job]:
    """Every class on each of ``frames_per_clip`` evenly spaced frames of each clip (balanced).

    Where a frame has a large natural shadow, its diagnostic sample is taken from another frame
    fit to be diagnostic (spread over all clips), so classes stay balanced and labels consistent.
    """
    spare = _eligible(clips, frames_per_clip, True)
    jobs: list[Job] = []
    k = 0
    for ci, c in enumerate(clips):
        idx = np.unique(np.linspace(0, len(c.frames) - 1, min(frames_per_clip, len(c.frames))).astype(int))
        for fi in idx:
            for lab in range(len(LABELS)):
                src = (ci, int(fi))
                if lab == 0 and not c.diagnostic_ok[fi] and spare:
                    src = spare[(k * 7919) % len(spare)]  # a large prime strides evenly over the spares
                    k += 1
                jobs.append(Job(len(jobs), src[0], src[1], lab))
    return jobs
