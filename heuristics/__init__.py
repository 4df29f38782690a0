"""Approximation algorithms and baselines, each in a module named after the algorithm."""
