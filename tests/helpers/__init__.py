"""Helpers shared by the tests: random batches, workflow copies, fixture sources in real formats."""
