"""Tools on top of the platform: the CLI, the local stack, the evaluation harness and the
benchmarks. They may import every layer; nothing imports them."""
