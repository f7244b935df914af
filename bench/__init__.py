"""Benchmarks of inspector against the anchors operators know (py-spy,
pystack, pyrasite). Run ``python bench/run.py`` (see README, "Performance")."""
