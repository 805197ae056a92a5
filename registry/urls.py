from django.urls import path

from registry import apis

urlpatterns = [
    path("models/", apis.ModelListCreateApi.as_view(), name="model-list"),
    path("models/<str:name>/", apis.ModelDetailApi.as_view(), name="model-detail"),
    path("models/<str:name>/versions/", apis.VersionListCreateApi.as_view(), name="version-list"),
    path("models/<str:name>/versions/<str:version>/", apis.VersionDetailApi.as_view(), name="version-detail"),
    path("models/<str:name>/versions/<str:version>/validate/", apis.VersionValidateApi.as_view(),
         name="version-validate"),
    path("models/<str:name>/aliases/<str:alias>/", apis.AliasApi.as_view(), name="alias-detail"),
]
