"""Writes of the monitoring app: the prediction log and its retention, feedback, per-minute history, drift,
alert rules and their evaluation, notifications, rollout guardrails."""
