"""Django's admin finds an app's `admin` module only: each concern registers its own pages."""

from inference.deployments import admin as deployments_admin
from inference.jobs import admin as jobs_admin

__all__ = ["deployments_admin", "jobs_admin"]
