"""Sync tools: a real mosquitto for tests and benchmarks (``broker``), the kill -9 soak (``soak``),
drain throughput (``bench_drain``) and outbox put latency (``bench_outbox``). See docs/sync.md."""
