"""``edge models``: list and verify model folders, build TensorRT engines for them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edge.config import load_config
from edge.errors import EdgeError


def add_parser(sub: Any) -> None:
    m = sub.add_parser("models", help="list or verify model folders")
    msub = m.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    ml = msub.add_parser("list", help="the configured models, their files and hash checks")
    ml.add_argument("--config", type=Path)
    ml.set_defaults(func=_cmd_models_list)
    mv = msub.add_parser("verify", help="check a model folder's manifest and every file's sha256")
    mv.add_argument("folder", type=Path)
    mv.set_defaults(func=_cmd_models_verify)
    mb = msub.add_parser(
        "build-engine",
        help="build and cache a TensorRT engine for a model folder (needs TensorRT and a CUDA GPU)",
    )
    mb.add_argument("folder", type=Path)
    mb.add_argument(
        "--precision",
        choices=["int8", "fp16", "fp32"],
        help="engine precision (default: the manifest's default; fp16 builds from the fp32 file)",
    )
    mb.add_argument(
        "--cache",
        type=Path,
        help="engine cache folder (default: $EDGE_ENGINE_CACHE or ~/.cache/scanner-edge/engines)",
    )
    mb.add_argument("--workspace-mb", type=int, default=1024, metavar="N", help="builder workspace (1024)")
    mb.set_defaults(func=_cmd_models_build_engine)


def _cmd_models_list(args: argparse.Namespace) -> int:
    from edge.inference.manifest import load_manifest, verify_folder
    from edge.inference.tasks import task_factory

    config = load_config(args.config)
    failed = 0
    for mc in config.models:
        folder = config.model_dir(mc)
        try:
            m = load_manifest(folder).manifest
            task_factory(m)  # a task no one registered cannot run
            verify_folder(folder)
            state = "ok"
        except EdgeError as exc:
            print(f"{mc.name:16s} {folder}  FAILED: {exc}")
            failed += 1
            continue
        files = ", ".join(
            f"{p}={f.path}" + (f" (CPU: {m.cpu_files[p].path})" if p in m.cpu_files else "")
            for p, f in m.files.items()
        )
        print(f"{m.name:16s} {m.version:8s} {m.task:14s} {files}  [{state}]")
    return 1 if failed else 0


def _cmd_models_verify(args: argparse.Namespace) -> int:
    from edge.inference.manifest import verify_folder

    hashes = verify_folder(args.folder)
    for precision, sha in hashes.items():
        print(f"{precision:5s} {sha}  ok")
    return 0


def _cmd_models_build_engine(args: argparse.Namespace) -> int:
    from edge.errors import BackendUnavailableError
    from edge.inference.base import ModelIdentity
    from edge.inference.engine_cache import build_engine, engine_files
    from edge.inference.manifest import load_manifest
    from edge.inference.tensorrt_backend import TensorRTBackend, device_info

    package = load_manifest(args.folder)
    m = package.manifest
    precision = args.precision or m.default_precision
    # fp16 has no file of its own: TensorRT builds it from the fp32 ONNX with the FP16 flag.
    source = precision if precision in m.files else "fp32"
    onnx_path, _, sha = package.verified_file(source)  # refuses a file whose sha256 changed
    ok, why = TensorRTBackend().is_available()
    if not ok:
        raise BackendUnavailableError(
            f"cannot build a TensorRT engine here: TensorRT is not available: {why}"
        )
    if args.workspace_mb < 1:
        raise EdgeError("--workspace-mb must be at least 1")
    identity = ModelIdentity.of(m, sha, precision)
    dev = device_info()
    files = engine_files(identity, dev, args.cache)  # args.cache None: $EDGE_ENGINE_CACHE or ~/.cache
    build_engine(
        onnx_path,
        files.engine,
        files.timing_cache,
        precision,
        args.workspace_mb,
        input_shapes=dict(identity.input_shapes),
    )
    print(
        f"{m.name} {precision} engine for {dev.gpu_name} (sm {dev.compute_capability}, TensorRT "
        f"{dev.trt_version}): {files.engine}"
    )
    return 0
