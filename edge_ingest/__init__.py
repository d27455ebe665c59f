"""The reference receiving side: results arriving at the MQTT broker, into SQLite, with receipts.

A separate package from the device runtime: ``edge`` never imports it."""
