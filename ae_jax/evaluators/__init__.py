"""Evaluators over a trained run, chosen by name: one module each, and the registry that runs them."""
