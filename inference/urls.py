from django.urls import path

from inference import apis, scoring

urlpatterns = [
    path("deployments/", apis.DeploymentListCreateApi.as_view(), name="deployment-list"),
    path("deployments/<str:endpoint>/", apis.DeploymentDetailApi.as_view(), name="deployment-detail"),
    path("predict", apis.UniversalPredictApi.as_view(), name="predict-universal"),
    path("predict/batch", apis.BatchPredictApi.as_view(), name="predict-batch"),
    path("predict/<str:endpoint>", apis.PredictApi.as_view(), name="predict"),
    path("predict/<str:endpoint>/explain", apis.ExplainApi.as_view(), name="predict-explain"),
    path("predict/<str:endpoint>/score", scoring.PredictScoreApi.as_view(), name="predict-score"),
    path("cache/stats", apis.CacheStatsApi.as_view(), name="cache-stats"),
    path("cache/clear", apis.CacheClearApi.as_view(), name="cache-clear"),
    path("config", apis.ConfigApi.as_view(), name="config"),
    path("metrics", apis.MetricsJsonApi.as_view(), name="metrics-json"),
]
