"""The model file against its manifest, checked once at load: the input's shape and element type,
the outputs' names, and the shape of the output the task reads.

Without it a manifest that says 32x32 for a model exported at 64x64 loads fine and then fails on
every frame inside the backend (an ONNX Runtime traceback per frame, and with ``warmup_runs = 0``
not even at load). A session tells its shapes where it can (``input_shapes``, ``output_shapes``,
``input_dtypes``: dicts by tensor name); a dimension that is not a positive int is symbolic (a
name, None or -1: "any size") and matches anything. A session that tells nothing is not checked
here; the check run at load still catches what it would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from edge.errors import ModelError
from edge.inference.manifest import Manifest

Dim = int | str | None
Shape = Sequence[Dim]


class OutputChecker(Protocol):
    """What a Task may add (``check_output``) to say whether an output shape is one it can decode."""

    def check_output(self, name: str, shape: Shape) -> str | None: ...


def static(dim: Dim) -> int | None:
    """The dimension's size when it is fixed, None when symbolic."""
    return dim if isinstance(dim, int) and not isinstance(dim, bool) and dim > 0 else None


def fmt(shape: Shape) -> str:
    """``[1, 1, 'h', None]`` -> ``[1, 1, h, ?]``: how shapes appear in the messages."""
    dims = ("?" if d is None or (isinstance(d, int) and d < 0) else str(d) for d in shape)
    return "[" + ", ".join(dims) + "]"


def matches(expected: Sequence[int], actual: Shape) -> bool:
    """Same rank, and every fixed dimension of ``actual`` equal to ``expected``'s."""
    if len(expected) != len(actual):
        return False
    return all(static(a) is None or a == e for e, a in zip(expected, actual))


_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8"}


def element_type(name: str) -> str:
    """ONNX Runtime's ``tensor(float)`` -> ``float32``; numpy names pass through."""
    return _ORT_TYPES.get(name, name.removeprefix("tensor(").removesuffix(")"))


def check_session(folder: Path, model_file: Path, manifest: Manifest, session: object, task: object) -> None:
    """Raise ModelError naming ``folder``, the manifest's view and the model's when they disagree."""
    spec = manifest.input
    where = f"{folder}: model {manifest.name!r} ({model_file.name}) does not match its manifest"
    input_shapes: Mapping[str, Shape] = getattr(session, "input_shapes", None) or {}
    model_shape = input_shapes.get(spec.name)
    if model_shape is not None and not matches(spec.shape, model_shape):
        raise ModelError(
            f"{where}: the manifest's input {spec.name!r} has shape {fmt(spec.shape)} ({spec.layout}), "
            f"the model's is {fmt(model_shape)}; correct input.shape in the manifest or re-export the model"
        )
    dtypes: Mapping[str, str] = getattr(session, "input_dtypes", None) or {}
    model_dtype = dtypes.get(spec.name)
    if model_dtype is not None and element_type(model_dtype) != spec.dtype:
        raise ModelError(
            f"{where}: the manifest's input {spec.name!r} is {spec.dtype}, the model takes "
            f"{element_type(model_dtype)}"
        )
    output_names: Sequence[str] = tuple(getattr(session, "output_names", ()) or ())
    if not output_names:
        return
    missing = [o.name for o in manifest.outputs if o.name not in output_names]
    if missing:
        raise ModelError(
            f"{where}: the manifest's output(s) {missing} are not among the model's outputs "
            f"{list(output_names)}"
        )
    output_shapes: Mapping[str, Shape] = getattr(session, "output_shapes", None) or {}
    check = getattr(task, "check_output", None)
    first = output_names[0]  # the one the built-in tasks decode
    if check is not None and first in output_shapes:
        problem = check(first, output_shapes[first])
        if problem:
            raise ModelError(f"{where}: {problem}")
