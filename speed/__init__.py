"""Speed layer (hot path): a PyFlink job over Kafka that keeps fresh signals in Redis."""
