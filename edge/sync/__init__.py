"""Results leaving the device: the outbox (SQLite), the run's recorder, thumbnails, the MQTT uplink,
its policy (topics, backoff, HUD text) and credentials."""
