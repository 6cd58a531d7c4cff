"""The job a data engineer would write by hand, the baseline of the whole-job benchmark (issue 16):
read one partition of the Delta input, apply the demo model's five preprocessing steps in Spark SQL,
drop the rows the model cannot take, score with ``mlflow.pyfunc.spark_udf``, write Parquet.

``spark-submit bench/bare_job.py --input PATH --partition 2024-06-01 --model URI --tracking-uri URI
--output PATH [--median X]``: no validation report, statistics, quarantine or ledger.
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bare_job", description=__doc__.split("\n")[0])
    p.add_argument("--input", required=True)
    p.add_argument("--partition", required=True, help="the ds value")
    p.add_argument("--model", required=True)
    p.add_argument("--tracking-uri", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--batch-size", type=int, default=100_000)
    args = p.parse_args(argv)

    import mlflow
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    mlflow.set_tracking_uri(args.tracking_uri)
    spark = SparkSession.builder.appName("bare-job").getOrCreate()
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(args.batch_size))
    # the model's training median for the one fill_null, as a hand-written job would hard-code it
    reference = json.loads(open(mlflow.artifacts.download_artifacts(f"{args.model}/lakescore/reference.json")).read())
    median = next(f["value"] for f in reference["fitted"] if f["column"] == "monthly_charges")

    rows = spark.read.format("delta").load(args.input).where(F.col("ds") == F.lit(args.partition).cast("date"))
    usable = (
        F.col("customer_id").isNotNull()
        & F.col("tenure_months").between(0, 1200)
        & (F.col("monthly_charges").isNull() | (F.col("monthly_charges") >= 0))
        & (F.col("total_charges") >= 0)
        & ~F.isnan("total_charges")
        & (F.col("total_charges") != float("inf"))
        & F.col("plan").isin("basic", "standard", "premium")
    )
    features = rows.where(usable).select(
        "customer_id",
        "ds",
        "region",
        F.col("tenure_months").cast("double").alias("tenure_months"),
        F.coalesce(F.col("monthly_charges"), F.lit(median)).alias("monthly_charges"),
        "total_charges",
        F.least(F.greatest(F.col("support_calls").cast("double"), F.lit(0.0)), F.lit(20.0)).alias("support_calls"),
        "plan",
        F.when(F.col("region").isin("north", "south", "east", "west"), F.col("region"))
        .otherwise(F.lit("other"))
        .alias("region_mapped"),
    )
    udf = mlflow.pyfunc.spark_udf(spark, args.model, result_type="probability double, label long", env_manager="local")
    inputs = [
        "tenure_months",
        "monthly_charges",
        "total_charges",
        "support_calls",
        "plan",
        F.col("region_mapped").alias("region"),
    ]
    scored = features.select("customer_id", "ds", "region", udf(F.struct(*inputs)).alias("p")).select(
        "customer_id", "ds", "region", "p.*"
    )
    scored.write.mode("overwrite").parquet(args.output)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
