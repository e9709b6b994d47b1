"""Batch layer (cold path): PySpark over the immutable master dataset."""
