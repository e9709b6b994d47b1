"""Offline evaluation: a prequential replay of a MovieLens-format dataset through the real batch,
speed and serving code, its metrics, and the benchmark report."""
