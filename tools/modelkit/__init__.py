"""Bring-your-own-model toolkit: manifest writer, INT8 Q/DQ quantizer, model-vs-model comparison.

``python -m tools.modelkit manifest ...`` writes a model folder's ``manifest.json`` for any ONNX
classifier or Ultralytics-layout YOLO detector; ``python -m tools.modelkit quantize ...`` adds the
INT8 Q/DQ file, calibrated on frames preprocessed by the runtime's own ``Preprocessor``. The
functions behind both (``write_manifest``, ``quantize_qdq``, ``compare_models``) are the API
other tools (tools/lung_detector, tools/trt_check.py) build on. See docs/bring-your-own-model.md.
"""
