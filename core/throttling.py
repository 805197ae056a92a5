import logging

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from core.models import ApiKey

logger = logging.getLogger(__name__)


def _view_scope(view) -> str:
    for permission in view.get_permissions():
        scope = getattr(permission, "scope", None)
        if scope:
            return str(scope)
    return "manage"


class ClientRateThrottle(SimpleRateThrottle):
    """One bucket per API key (or user); anonymous callers share per-address buckets.

    The address comes from DRF's get_ident, which trusts X-Forwarded-For only for
    REST_FRAMEWORK['NUM_PROXIES'] hops, so a client rotating that header stays in one bucket.
    """

    def allow_request(self, request, view) -> bool:
        self.scope = self._scope_for(request, view)
        self.rate = self.get_rate()
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        try:
            return super().allow_request(request, view)
        except Exception:  # the cache is Redis; when it is down, serve unthrottled rather than fail
            logger.warning("throttle cache unavailable; request not rate limited", exc_info=True)
            return True

    def _scope_for(self, request, view) -> str:
        scope = _view_scope(view)
        authenticated = bool(request.user and request.user.is_authenticated)
        # Anonymous callers only pass permissions on public routes, or on prediction routes
        # when REQUIRE_API_KEY is off: those get the predict rate, per address.
        if not authenticated and scope != "predict":
            return "anon"
        return "predict" if scope == "anon" else scope

    def get_rate(self):
        # Read at request time (not import time) so rate changes in settings take effect.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request, view) -> str:
        if isinstance(request.auth, ApiKey):
            ident = f"key:{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return f"throttle:{self.scope}:{ident}"
