"""Every route x every kind of caller, both ways: who gets in, and who is kept out."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import TestCase, override_settings
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from registry.services import model_version_create
from tests import auth_routes as feature_routes
from tests.conftest import skops_artifact, upload
from tests.factories import make_model, principals

UUID = "00000000-0000-0000-0000-000000000001"
MANAGE = "manage"
PREDICT = "predict"
PUBLIC = "public"

# (method, path, scope). Paths use the objects made in setUp.
ROUTES = [
    ("GET", "/api/v1/models/", MANAGE),
    ("POST", "/api/v1/models/", MANAGE),
    ("GET", "/api/v1/models/churn/", MANAGE),
    ("PATCH", "/api/v1/models/churn/", MANAGE),
    ("DELETE", "/api/v1/models/other/", MANAGE),
    ("GET", "/api/v1/models/churn/versions/", MANAGE),
    ("POST", "/api/v1/models/churn/versions/", MANAGE),
    ("GET", "/api/v1/models/churn/versions/1/", MANAGE),
    ("DELETE", "/api/v1/models/churn/versions/9/", MANAGE),
    ("POST", "/api/v1/models/churn/versions/1/validate/", MANAGE),
    ("PUT", "/api/v1/models/churn/aliases/staging/", MANAGE),
    ("DELETE", "/api/v1/models/churn/aliases/staging/", MANAGE),
    ("GET", "/api/v1/deployments/", MANAGE),
    ("POST", "/api/v1/deployments/", MANAGE),
    ("GET", "/api/v1/deployments/demo/", MANAGE),
    ("PATCH", "/api/v1/deployments/demo/", MANAGE),
    ("DELETE", "/api/v1/deployments/demo/", MANAGE),
    ("GET", "/api/v1/cache/stats", MANAGE),
    ("POST", "/api/v1/cache/clear", MANAGE),
    ("GET", "/api/v1/config", MANAGE),
    ("PATCH", "/api/v1/config", MANAGE),
    ("GET", "/api/v1/metrics", MANAGE),
    ("GET", "/metrics", MANAGE),
    ("POST", "/api/v1/predict/demo", PREDICT),
    ("POST", "/api/v1/predict/demo/explain", PREDICT),
    ("POST", "/api/v1/predict", PREDICT),
    ("POST", "/api/v1/predict/batch", PREDICT),
    ("POST", "/api/v1/auth/token/", PUBLIC),
    ("POST", "/api/v1/auth/token/refresh/", PUBLIC),
    ("GET", "/health", PUBLIC),
    ("GET", "/health/ready", PUBLIC),
    ("GET", "/api/schema/", PUBLIC),
    ("GET", "/api/docs/", PUBLIC),
    ("GET", "/api/redoc/", PUBLIC),
    ("GET", "/api/v1/", PUBLIC),
    ("GET", "/", PUBLIC),
    ("GET", "/api-auth/login/", PUBLIC),
]
BODIES = {
    ("POST", "/api/v1/models/"): {"name": "new-model"},
    ("PATCH", "/api/v1/models/churn/"): {"description": "x"},
    ("PUT", "/api/v1/models/churn/aliases/staging/"): {"version": 1},
    ("POST", "/api/v1/deployments/"): {"endpoint": "x", "model": "churn", "version": 1},
    ("PATCH", "/api/v1/config"): {"cache_ttl_s": 60},
    ("POST", "/api/v1/predict/demo"): {"inputs": [[1, 2, 3, 4]]},
    ("POST", "/api/v1/predict/demo/explain"): {"inputs": [[1, 2, 3, 4]]},
    ("POST", "/api/v1/predict"): {"model": "churn", "inputs": [[1, 2, 3, 4]]},
    ("POST", "/api/v1/predict/batch"): {"requests": [{"endpoint": "demo", "inputs": [[1, 2, 3, 4]]}]},
}
ROUTES += feature_routes.ROUTES
BODIES.update(feature_routes.BODIES)
DENIED = (401, 403)


def _route_patterns(resolver=None, prefix="") -> set[str]:
    patterns = set()
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            patterns |= _route_patterns(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            patterns.add(prefix + str(entry.pattern))
    return patterns


class AuthMatrixTests(TestCase):
    def setUp(self):
        self.callers = principals()
        model = make_model("churn")
        make_model("other")
        model_version_create(model=model, artifact=upload("a", skops_artifact()), flavor="sklearn")

    def call(self, client: APIClient, method: str, path: str):
        body = BODIES.get((method, path))
        if (method, path) in feature_routes.MULTIPART:
            return client.post(path, body or {}, format="multipart")
        if method == "POST" and path.endswith("/versions/"):
            return client.post(path, {"artifact": upload("a", skops_artifact()), "flavor": "sklearn"},
                               format="multipart")
        return client.generic(method, path, data=__import__("json").dumps(body) if body else "",
                              content_type="application/json")

    def expect(self, client, scope, *, allowed_scopes):
        for method, path, route_scope in ROUTES:
            if route_scope != scope:
                continue
            with self.subTest(method=method, path=path):
                status = self.call(client, method, path).status_code
                if route_scope in allowed_scopes:
                    self.assertNotIn(status, DENIED, f"{method} {path} refused")
                    self.assertLess(status, 500)
                else:
                    self.assertIn(status, DENIED, f"{method} {path} let in")

    def test_every_api_route_is_in_the_matrix(self):
        known = {path for _, path, _ in ROUTES}
        api_patterns = {p for p in _route_patterns() if p.startswith(("api/v1/", "v2")) or p == "metrics"}
        for pattern in api_patterns:
            concrete = "/" + pattern.replace("<str:name>", "churn").replace("<str:version>", "1") \
                .replace("<str:alias>", "staging").replace("<str:endpoint>", "demo").replace("<uuid:pk>", UUID) \
                .replace("<int:pk>", "1")
            covered = concrete in known or concrete.replace("/churn/", "/other/") in known \
                or concrete.replace("versions/1/", "versions/9/") in known
            self.assertTrue(covered, f"route {pattern} has no auth matrix entry")

    def test_anonymous_reaches_only_public_routes(self):
        for scope in (MANAGE, PUBLIC):
            self.expect(self.callers.anonymous, scope, allowed_scopes={PUBLIC})

    def test_anonymous_cannot_predict_while_keys_are_required(self):
        self.expect(self.callers.anonymous, PREDICT, allowed_scopes=set())

    def test_a_predict_key_predicts_but_cannot_manage(self):
        for scope in (MANAGE, PREDICT, PUBLIC):
            self.expect(self.callers.predict, scope, allowed_scopes={PREDICT, PUBLIC})

    def test_a_manage_key_reaches_everything(self):
        for scope in (MANAGE, PREDICT, PUBLIC):
            self.expect(self.callers.manage, scope, allowed_scopes={MANAGE, PREDICT, PUBLIC})

    def test_a_staff_session_reaches_everything(self):
        for scope in (MANAGE, PREDICT, PUBLIC):
            self.expect(self.callers.staff, scope, allowed_scopes={MANAGE, PREDICT, PUBLIC})

    def test_a_non_staff_user_without_permissions_cannot_manage_or_predict(self):
        self.expect(self.callers.user, MANAGE, allowed_scopes=set())
        self.expect(self.callers.user, PREDICT, allowed_scopes=set())

    def test_a_user_with_the_predict_permission_may_predict_only(self):
        user = get_user_model().objects.get(username="member")
        user.user_permissions.add(Permission.objects.get(codename="use_predict"))
        self.expect(self.callers.user, PREDICT, allowed_scopes={PREDICT})
        self.expect(self.callers.user, MANAGE, allowed_scopes=set())

    @override_settings(REQUIRE_API_KEY=False)
    def test_turning_keys_off_opens_prediction_and_never_management(self):
        self.expect(APIClient(), MANAGE, allowed_scopes=set())
        self.expect(APIClient(), PREDICT, allowed_scopes={PREDICT})

    def test_a_revoked_key_is_refused(self):
        from core.models import ApiKey

        ApiKey.objects.filter(scope="manage").update(revoked=True)
        self.assertEqual(self.callers.manage.get("/api/v1/models/").status_code, 401)

    def test_jwt_tokens_carry_the_users_permissions(self):
        user = get_user_model().objects.create_user("jwt-user", password="s3cret-pass!")
        token = lambda: APIClient().post("/api/v1/auth/token/", {"username": "jwt-user",
                                                                 "password": "s3cret-pass!"}).json()["access"]
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token()}")
        self.assertEqual(client.get("/api/v1/models/").status_code, 403)
        user.user_permissions.add(Permission.objects.get(codename="use_manage"))
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token()}")
        self.assertEqual(client.get("/api/v1/models/").status_code, 200)

    def test_wrong_password_gets_no_token(self):
        get_user_model().objects.create_user("jwt-user", password="s3cret-pass!")
        response = APIClient().post("/api/v1/auth/token/", {"username": "jwt-user", "password": "nope"})
        self.assertEqual(response.status_code, 401)
        self.assertIn("error", response.json())

    def test_admin_and_rq_dashboard_are_staff_only(self):
        for path in ("/admin/", "/admin/rq/"):
            self.assertEqual(self.callers.staff.get(path).status_code, 200, path)
            self.assertEqual(self.callers.user.get(path).status_code, 302, path)
            self.assertEqual(self.callers.manage.get(path).status_code, 302, path)
