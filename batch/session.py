"""SparkSession factory from the batch settings."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from lambdastack.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def spark_session(
    settings: Settings, master: str | None = None, app: str = "lambdastack-batch"
) -> SparkSession:
    """A session on `master` (default: batch.spark_master), UTC, quiet, no UI."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    b = settings.batch
    builder = SparkSession.builder
    if b.jvm_opts:  # read when the JVM starts (the driver's: on the first session of a process)
        builder = builder.config("spark.driver.extraJavaOptions", b.jvm_opts).config(
            "spark.executor.extraJavaOptions", b.jvm_opts
        )
    spark = (
        builder.master(master or b.spark_master)
        .appName(app)
        .config("spark.driver.memory", b.driver_memory)
        .config("spark.sql.shuffle.partitions", str(b.shuffle_partitions))
        .config("spark.sql.adaptive.enabled", str(b.adaptive).lower())
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.sql.parquet.compression.codec", "zstd")
        # the master dataset has one directory per day: list them on the driver, not in a job
        .config("spark.sql.sources.parallelPartitionDiscovery.threshold", "100000")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark
