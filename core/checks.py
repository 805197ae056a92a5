"""`manage.py check --deploy`: a Redis without a password is refused as a deployment setting."""

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.security, deploy=True)
def redis_has_a_password(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    # Anything that can write to Redis can queue jobs and poison caches: it must ask who is calling.
    url = settings.REDIS_URL
    if url.startswith("unix://") or urlsplit(url).password:
        return []
    return [checks.Warning("REDIS_URL carries no password: anything that reaches Redis could queue jobs.",
                           hint="Start Redis with requirepass (or an ACL user) and put it in REDIS_URL.",
                           id="core.W001")]
