"""The native local stack: Kafka (KRaft) from Maven Central jars and Debian's redis-server."""
