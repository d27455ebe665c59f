"""Host side of the probe link (wire protocol, transports, virtual probe).

Wire protocol v1 (specified in ``PROTOCOL.md``): ``framing`` (COBS + CRC-32 packets, the resynchronising
``Deframer``, ``SequenceTracker``), ``messages`` (typed messages, ``encode``/``decode``, version
negotiation) and ``reassembly`` (``FrameAssembler``: FRAME_CHUNKs to numpy frames). Transports and the
virtual probe build on these.
"""
