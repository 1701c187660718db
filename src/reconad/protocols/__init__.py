"""Benchmark protocols beyond localization and speed (see reconad.benchmark)."""
