"""Probe-link tools: the codec fuzzer and benchmark (``fuzz``) and the soak and cable-pull check over
a real pty (``soak``). See firmware_bridge/PROTOCOL.md."""
