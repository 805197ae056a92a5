"""Auth-matrix entries contributed per feature: each module here defines ROUTES [(method, path, scope)]
and optionally BODIES {(method, path): json_body}; test_auth_matrix checks them all, both ways.
Scopes: "manage", "predict", "public". Paths use the objects the matrix test creates (model "churn"
with version 1, endpoint "demo") or ones that simply do not exist (a 404 still proves access)."""

import importlib
import pkgutil

ROUTES: list[tuple[str, str, str]] = []
BODIES: dict[tuple[str, str], object] = {}
MULTIPART: set[tuple[str, str]] = set()

for _module in pkgutil.iter_modules(__path__):
    _loaded = importlib.import_module(f"{__name__}.{_module.name}")
    ROUTES.extend(getattr(_loaded, "ROUTES", []))
    BODIES.update(getattr(_loaded, "BODIES", {}))
    MULTIPART.update(getattr(_loaded, "MULTIPART", set()))
