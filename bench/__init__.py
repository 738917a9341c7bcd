"""Benchmarks, side by side with Feast in the same run. `make bench` runs them all."""
