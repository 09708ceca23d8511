"""Benchmarks for stigmem-snapshots; see bench/README.md."""
