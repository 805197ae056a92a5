"""Who gets the browsable API: staff signed in to a session (which DRF's SessionAuthentication holds to CSRF),
and nobody else. API keys, bearer tokens, anonymous callers and non-staff sessions get JSON whatever their
Accept header says, so no machine credential is ever answered with a page of HTML forms."""

from __future__ import annotations

from collections.abc import Iterable

from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer, BrowsableAPIRenderer
from rest_framework.request import Request

_CREDENTIAL_HEADERS = ("HTTP_X_API_KEY", "HTTP_AUTHORIZATION")


def browsable_api_allowed(request: Request) -> bool:
    if any(request.META.get(header) for header in _CREDENTIAL_HEADERS):
        return False
    # The session's user from Django's middleware: reading DRF's request.user here would run every
    # authenticator before the view does.
    user = getattr(request._request, "user", None)  # noqa: SLF001 - as DRF's SessionAuthentication reads it
    return bool(user is not None and user.is_authenticated and user.is_active and user.is_staff)


class StaffBrowsableNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request: Request, renderers: Iterable[BaseRenderer],
                        format_suffix: str | None = None) -> tuple[BaseRenderer, str]:
        every = list(renderers)
        if browsable_api_allowed(request):
            allowed: tuple[BaseRenderer, str] = super().select_renderer(request, every, format_suffix)
            return allowed
        kept = [renderer for renderer in every if not isinstance(renderer, BrowsableAPIRenderer)]
        try:
            chosen: tuple[BaseRenderer, str] = super().select_renderer(request, kept, format_suffix)
        except NotAcceptable:
            if len(kept) == len(every) or not kept:
                raise
            # Accept: text/html alone (a browser) on a JSON route: JSON rather than a 406.
            return kept[0], kept[0].media_type
        return chosen
