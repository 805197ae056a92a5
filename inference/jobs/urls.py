from django.urls import path

from inference.jobs import apis as job_apis

urlpatterns = [
    path("predict/<str:endpoint>/async", job_apis.AsyncPredictApi.as_view(), name="predict-async"),
    path("jobs", job_apis.JobListApi.as_view(), name="inference-job-list"),
    path("jobs/<uuid:pk>", job_apis.JobDetailApi.as_view(), name="inference-job-detail"),
    path("batch-jobs/", job_apis.BatchJobListCreateApi.as_view(), name="batch-job-list"),
    path("batch-jobs/<uuid:pk>/", job_apis.BatchJobDetailApi.as_view(), name="batch-job-detail"),
    path("batch-jobs/<uuid:pk>/result", job_apis.BatchJobResultApi.as_view(), name="batch-job-result"),
]
