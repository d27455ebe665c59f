"""Benchmark fixtures for ``edge bench``: the deliberately slow model of its slow-model scenario
(``slow_model``)."""
