from django.contrib import admin
from django.contrib.auth.views import LoginView
from django.urls import URLPattern, URLResolver, include, path

from core import health
from core.auth_apis import TokenObtainApi, TokenRefreshApi
from core.docs import RedocView, SchemaView, SwaggerView
from core.index import ApiIndexApi, RootIndexApi
from core.login import ApiLoginForm
from inference.deployments.apis import PrometheusMetricsApi
from inference.overview.views import overview

api_v1: list[URLPattern | URLResolver] = [
    path("", ApiIndexApi.as_view(), name="api-index"),
    path("", include("registry.urls")),
    path("", include("inference.predict.urls")),
    path("", include("inference.deployments.urls")),
    path("", include("inference.jobs.urls")),
    path("", include("experiments.urls")),
    path("", include("monitoring.urls")),
    path("auth/token/", TokenObtainApi.as_view(), name="token-obtain"),
    path("auth/token/refresh/", TokenRefreshApi.as_view(), name="token-refresh"),
]

urlpatterns = [
    path("", RootIndexApi.as_view(), name="root-index"),
    path("health", health.live, name="health"),
    path("health/ready", health.ready, name="health-ready"),
    path("metrics", PrometheusMetricsApi.as_view(), name="metrics"),
    path("api/v1/", include(api_v1)),
    path("", include("inference.v2.urls")),
    path("api/schema/", SchemaView.as_view(), name="schema"),
    path("api/docs/", SwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", RedocView.as_view(url_name="schema"), name="redoc"),
    # The browsable API's login with the admin's lockout (core/lockout.py); the same path as the one included
    # next, which keeps its logout and the `rest_framework:login` name its pages link to.
    path("api-auth/login/", LoginView.as_view(template_name="rest_framework/login.html",
                                              authentication_form=ApiLoginForm)),
    path("api-auth/", include("rest_framework.urls")),  # the browsable API's login and logout
    path("admin/rq/", include("django_rq.urls")),
    path("admin/overview/", admin.site.admin_view(overview), name="admin-overview"),
    path("admin/", admin.site.urls),
]

handler400 = "core.errors.handler400"
handler403 = "core.errors.handler403"
handler404 = "core.errors.handler404"
handler500 = "core.errors.handler500"
