"""Inference: manifests, preprocessing, backends (ONNX Runtime, TensorRT), tasks and loaded models.

Submodules are imported by name (``edge.inference.model``, ``edge.inference.tasks``); nothing is
imported here, so importing one does not load the others (TensorRT and ONNX Runtime included).
"""
