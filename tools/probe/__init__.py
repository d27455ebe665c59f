"""Probe-link tools: the codec fuzzer and benchmark (``fuzz``), the soak and cable-pull check over a
real pty (``soak``), and the fault soak of the real runtime under random link faults (``fault_soak``).
See firmware_bridge/PROTOCOL.md."""
