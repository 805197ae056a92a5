from django.urls import path

from monitoring.apis import alerts, deployments

urlpatterns = [
    path("deployments/<str:endpoint>/predictions", deployments.PredictionListApi.as_view(), name="prediction-list"),
    path("deployments/<str:endpoint>/predictions.csv", deployments.PredictionCsvExportApi.as_view(),
         name="prediction-export-csv"),
    path("deployments/<str:endpoint>/predictions.jsonl", deployments.PredictionJsonlExportApi.as_view(),
         name="prediction-export-jsonl"),
    path("deployments/<str:endpoint>/quality", deployments.QualityApi.as_view(), name="deployment-quality"),
    path("deployments/<str:endpoint>/timeseries", deployments.TimeseriesApi.as_view(), name="deployment-timeseries"),
    path("deployments/<str:endpoint>/drift", deployments.DriftApi.as_view(), name="deployment-drift"),
    path("deployments/<str:endpoint>/drift/compute", deployments.DriftComputeApi.as_view(),
         name="deployment-drift-compute"),
    path("models/<str:name>/versions/<str:version>/reference", deployments.ReferenceApi.as_view(),
         name="model-version-reference"),
    path("alert-rules/", alerts.AlertRuleListCreateApi.as_view(), name="alert-rule-list"),
    path("alert-rules/<int:pk>/", alerts.AlertRuleDetailApi.as_view(), name="alert-rule-detail"),
    path("alerts/", alerts.AlertListApi.as_view(), name="alert-list"),
    path("feedback", alerts.FeedbackApi.as_view(), name="feedback"),
]
