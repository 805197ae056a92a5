from django.urls import path

from experiments import apis

urlpatterns = [
    path("experiments/", apis.ExperimentListCreateApi.as_view(), name="experiment-list"),
    path("experiments/<int:pk>/", apis.ExperimentDetailApi.as_view(), name="experiment-detail"),
    path("experiments/<int:pk>/start/", apis.ExperimentStartApi.as_view(), name="experiment-start"),
    path("experiments/<int:pk>/pause/", apis.ExperimentPauseApi.as_view(), name="experiment-pause"),
    path("experiments/<int:pk>/stop/", apis.ExperimentStopApi.as_view(), name="experiment-stop"),
    path("experiments/<int:pk>/promote/", apis.ExperimentPromoteApi.as_view(), name="experiment-promote"),
    path("experiments/<int:pk>/results/", apis.ExperimentResultsApi.as_view(), name="experiment-results"),
]
