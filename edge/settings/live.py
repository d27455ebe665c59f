"""``[live]``: how old a live frame may be when it reaches the screen (docs/performance.md).

On a live source (a probe, a paced replay) a frame that has waited longer than ``max_age_ms``
since its capture is dropped before it is drawn: at acquisition (the probe's buffer, the link),
again at the display, and inference skips it. Counted (``stale_dropped``, ``stale_skipped``),
shown on the HUD ("stale N") and in the run report. When the box keeps up nothing is dropped and
every frame is shown; when it falls behind (other jobs on the cores, a slow disk) the screen
stays fresh at the cost of frames, rather than every frame shown ever later. A recording analysed
as fast as possible (inference policy "every") never drops a frame for age.
"""

from __future__ import annotations

from pydantic import Field

from edge.settings import Section


class LiveSettings(Section):
    # 0 turns it off (every frame shown, however late). 50 ms: on a quiet 2-core box capture to
    # screen is p99 ~13 ms, so nothing is dropped there; under load, 1.5 frame intervals at 30 fps.
    max_age_ms: float = Field(50.0, ge=0, le=10_000)
