"""Tasks: one module per kind of model output, picked by the manifest's ``task``."""

from edge.inference.tasks.base import ImageTask, Task, TaskOutput
from edge.inference.tasks.registry import TaskFactory, known_tasks, register_task, task_factory, task_for

__all__ = [
    "ImageTask",
    "Task",
    "TaskFactory",
    "TaskOutput",
    "known_tasks",
    "register_task",
    "task_factory",
    "task_for",
]
