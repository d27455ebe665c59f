"""Shared test harness code: plain functions and classes that tests import by name.

conftest.py files hold only fixture wiring; what a fixture builds lives here, so that a test module
(or a tool's test) can call it directly without importing a conftest.

- ``paths``: the repository's folders and the ``edge`` command as tests run it.
- ``onnx_models``: tiny real ONNX models built with ``onnx.helper``, and model folders with manifests.
- ``clips``: video clips and stills written into a temporary folder, with the values they hold.
- ``dicom``: real DICOM files from the installed packages, and synthetic ones.
- ``sources``: reading a source to its end.
- ``results``: result factories and the result schema's validator.
- ``polling``: waiting for a condition with a deadline and a message that says what was awaited.
- ``sync_helpers``: the sync tests' broker logins, ingest and filled outboxes.
"""
