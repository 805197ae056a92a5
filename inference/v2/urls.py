from django.urls import path, re_path

from inference.v2 import apis as v2

_MODEL = "v2/models/<str:name>"
_VERSION = "v2/models/<str:name>/versions/<str:version>"

urlpatterns = [
    path("v2", v2.V2ServerMetadataApi.as_view(), name="v2-server-metadata"),
    path("v2/health/live", v2.V2HealthLiveApi.as_view(), name="v2-health-live"),
    path("v2/health/ready", v2.V2HealthReadyApi.as_view(), name="v2-health-ready"),
    path(_MODEL, v2.V2ModelMetadataApi.as_view(), name="v2-model-metadata"),
    path(_VERSION, v2.V2ModelMetadataApi.as_view(), name="v2-model-version-metadata"),
    path(f"{_MODEL}/ready", v2.V2ModelReadyApi.as_view(), name="v2-model-ready"),
    path(f"{_VERSION}/ready", v2.V2ModelReadyApi.as_view(), name="v2-model-version-ready"),
    path(f"{_MODEL}/infer", v2.V2ModelInferApi.as_view(), name="v2-model-infer"),
    path(f"{_VERSION}/infer", v2.V2ModelInferApi.as_view(), name="v2-model-version-infer"),
    # Last: the protocol's error shape for every other /v2 path, instead of the site-wide 404.
    re_path(r"^v2/(?P<rest>.*)$", v2.unknown_route, name="v2-unknown"),
]
