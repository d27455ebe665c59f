"""The one shared toolchain library: what every model recipe and a user's own model build on.

- ``manifest``: ``build_manifest`` / ``write_manifest`` / ``add_file``, validated by the runtime's
  ``Manifest``; the bundled recipes publish through it as ``python -m tools.modelkit manifest`` does.
- ``quantize``: INT8 Q/DQ (``quantize_qdq``), the portable and CPU forms, keeping nodes in float
  until INT8 is close enough, and the TensorRT parser check (``tensorrt_qdq_problems``).
- ``compare`` and ``trt_check``: one loaded model against another on the same frames (FP32 vs INT8,
  ONNX Runtime vs TensorRT on the device).
- ``training``: one ``set_determinism``, torch -> ONNX export and the ONNX Runtime vs torch parity
  check; ``sessions``: ONNX Runtime CPU sessions and interleaved latency.
- ``frames``: frames from any runtime source; ``pocus``: the pocus_dev clips (labels, gray frames,
  cache, attribution); ``cards``: writing a published folder's manifest, card and attribution.

``python -m tools.modelkit manifest|quantize ...`` is the bring-your-own-model command line; see
docs/bring-your-own-model.md and docs/model-toolchain.md.
"""
