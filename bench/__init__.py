"""Benchmarks: N active grants on one PostgreSQL or MySQL/MariaDB target, timed through
jitgrant's own functions.

Run `python -m bench --grants 1000,10000` (or `--engine mysql --grants 2000`); the figures go to
docs/benchmarks.md."""
