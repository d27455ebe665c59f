"""Tasks by the manifest's ``task``: the built-in classification and detection, and any a user
registers (``register_task("segmentation", SegmentationTask)``) before loading a model."""

from __future__ import annotations

from collections.abc import Callable

from edge.errors import ManifestError
from edge.inference.manifest import Manifest
from edge.inference.tasks.base import Task
from edge.inference.tasks.classification import ClassificationTask
from edge.inference.tasks.detection import DetectionTask

# A factory makes one Task per loaded model (a task may keep per-model buffers).
TaskFactory = Callable[[Manifest], Task]

_TASKS: dict[str, TaskFactory] = {
    "classification": ClassificationTask,
    "detection": DetectionTask,
}


def register_task(name: str, factory: TaskFactory) -> None:
    """Serve manifests whose ``task`` is ``name`` with ``factory(manifest)``; a task of that name
    already registered (a built-in too) is replaced."""
    _TASKS[name] = factory


def known_tasks() -> tuple[str, ...]:
    return tuple(sorted(_TASKS))


def task_factory(manifest: Manifest) -> TaskFactory:
    """The factory serving this manifest's ``task``; an unknown task names the known ones."""
    factory = _TASKS.get(manifest.task)
    if factory is None:
        raise ManifestError(
            f"model {manifest.name!r}: unknown task {manifest.task!r}; known tasks: "
            f"{', '.join(known_tasks())} (a new one is added with edge.inference.tasks.register_task)"
        )
    return factory


def task_for(manifest: Manifest) -> Task:
    """A new Task for this model."""
    return task_factory(manifest)(manifest)
