from django.urls import path

from inference.predict import apis

urlpatterns = [
    path("predict", apis.UniversalPredictApi.as_view(), name="predict-universal"),
    path("predict/batch", apis.BatchPredictApi.as_view(), name="predict-batch"),
    path("predict/<str:endpoint>", apis.PredictApi.as_view(), name="predict"),
    path("predict/<str:endpoint>/explain", apis.ExplainApi.as_view(), name="predict-explain"),
    path("predict/<str:endpoint>/score", apis.PredictScoreApi.as_view(), name="predict-score"),
]
