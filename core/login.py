"""The login pages' forms (/admin/login/, the browsable API's /api-auth/login/), with core.lockout's
per-address and per-username lockout: a locked-out attempt is refused with a message before the password
is checked, and every wrong password counts."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm

from core.lockout import SignIn, lockout_message, username_credential
from core.throttling import client_address


class LockoutMixin(AuthenticationForm):
    def clean(self) -> dict[str, Any]:
        attempt = SignIn(client_address(self.request.META if self.request else {}),
                         username_credential(self.cleaned_data.get("username")))
        wait = attempt.locked_for()
        if wait > 0:
            raise forms.ValidationError(lockout_message(wait), code="locked_out")
        try:
            return super().clean()
        except forms.ValidationError as error:
            if error.code == "invalid_login":  # a wrong username or password (admin: or not staff)
                attempt.failed()
            raise


class AdminLoginForm(LockoutMixin, AdminAuthenticationForm):
    pass


class ApiLoginForm(LockoutMixin, AuthenticationForm):
    pass
