"""Reads of the monitoring app (history, the prediction log and quality, drift, alerts)."""
