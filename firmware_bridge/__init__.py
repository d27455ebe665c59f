"""Host side of the probe link (wire protocol, transports, virtual probe).

The protocol and transports arrive with the probe-link work; this package is importable
so the runtime's package layout is fixed from the start.
"""
