"""Serving layer: FastAPI that merges the batch view and the speed view into feeds."""
