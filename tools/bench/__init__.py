"""Benchmarks of each layer (`lambdastack bench ...`), writing JSON."""
