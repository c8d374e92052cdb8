"""Radiance fields and their hash-grid backends."""
