"""Django's admin finds an app's `admin` module only: each concern registers its own pages."""

from inference.deployments import admin as deployments_admin
from inference.deployments import admin_instances
from inference.jobs import admin as jobs_admin

__all__ = ["admin_instances", "deployments_admin", "jobs_admin"]
