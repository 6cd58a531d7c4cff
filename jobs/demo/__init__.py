"""The embedded default: a demo input Delta table and a demo churn model in a local MLflow registry."""
