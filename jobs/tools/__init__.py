"""Commands around the job: SQL over its tables, the analysts' notebook, spark-submit command lines."""
