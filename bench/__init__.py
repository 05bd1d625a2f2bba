"""Benchmarks (`python -m bench.<name>`), each printing ratios against a baseline measured in the same run."""
