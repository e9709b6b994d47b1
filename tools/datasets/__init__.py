"""Data sources that feed the master dataset: MovieLens imports and a synthetic world."""
