"""Benchmarks beside a bare Bolt app: `python -m bench <name>|all`; see docs/performance.md."""
