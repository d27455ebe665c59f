"""The reference receiving side: results arriving at the MQTT broker, into SQLite, with receipts.

A separate package from the device runtime: ``edge`` never imports it (the layering contract in
``.importlinter`` checks this). It shares with the device only the message schema and wire format
(``edge.sync.policy``, ``edge.sync.credentials``, ``edge.errors``).

- ``store``: the SQLite database, one row per result id, and the counts.
- ``client``: the MQTT side, a shared subscription committing and acking in batches, and receipts.
- ``cli``: the ``edge-ingest`` command (also ``python -m edge_ingest`` and ``edge ingest``).
"""

from edge_ingest.client import BrokerLogin, Ingest
from edge_ingest.store import IngestCounts, IngestError, IngestStore, parse_message

__all__ = ["BrokerLogin", "Ingest", "IngestCounts", "IngestError", "IngestStore", "parse_message"]
