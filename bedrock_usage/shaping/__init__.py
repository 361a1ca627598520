"""Turning CloudWatch data points into the daily usage table's rows, in SQL."""
