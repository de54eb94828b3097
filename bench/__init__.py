"""Benchmarks: N active grants on one PostgreSQL target, timed through jitgrant's own functions.

Run `python -m bench --grants 1000,10000`; the figures go to docs/benchmarks.md."""
