from django.urls import path

from inference.deployments import apis

urlpatterns = [
    path("deployments/", apis.DeploymentListCreateApi.as_view(), name="deployment-list"),
    path("deployments/<str:endpoint>/", apis.DeploymentDetailApi.as_view(), name="deployment-detail"),
    path("cache/stats", apis.CacheStatsApi.as_view(), name="cache-stats"),
    path("cache/clear", apis.CacheClearApi.as_view(), name="cache-clear"),
    path("config", apis.ConfigApi.as_view(), name="config"),
    path("metrics", apis.MetricsJsonApi.as_view(), name="metrics-json"),
]
