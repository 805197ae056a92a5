"""The admin's overview page: every deployment's health and the recent failures, on one page."""
