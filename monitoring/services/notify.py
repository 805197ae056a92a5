"""Telling people: a firing alert notifies once, then once more when it resolves, through its rule's webhook
(a JSON POST signed with HMAC-SHA256 of the body, `X-Signature: sha256=<hex>`, the secret per rule) and/or
e-mail (Django's mail backend). Each delivery is an RQ job retried with back-off; the Notification row says
how it went.

Webhook URLs are http(s) only, and a host that is (or resolves to) a loopback, private, link-local (the cloud
metadata service included), multicast, reserved or unspecified address is refused unless it is listed in
ALERT_WEBHOOK_ALLOWED_HOSTS: at creation, and again at each delivery, which connects to the address it checked
(so a name re-pointed in between cannot reach inside).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import socket
import ssl
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from inference.jobs.queue import get_queue
from monitoring.errors import InvalidAlertRule
from monitoring.models import Alert, AlertRule, Notification, NotificationStatus

DELIVER = "monitoring.tasks.deliver_notification"
QUEUE = "default"
USER_AGENT = "serving-platform-alerts/1"


class WebhookRefused(Exception):
    """The URL may not be called (scheme, or an address inside the network)."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    address: str


def webhook_target(url: str) -> Target:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise WebhookRefused("only http:// and https:// URLs are called")
    if not parts.hostname or parts.username or parts.password:
        raise WebhookRefused("needs a host name, and no user or password in the URL")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise WebhookRefused("has an invalid port") from None
    host = parts.hostname
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise WebhookRefused(f"host '{host}' could not be resolved") from None
    addresses = [str(info[4][0]) for info in infos]
    if host not in settings.ALERT_WEBHOOK_ALLOWED_HOSTS:
        for address in addresses:
            if inside(address):
                raise WebhookRefused(f"host '{host}' is an internal address ({address}); list it in "
                                     "ALERT_WEBHOOK_ALLOWED_HOSTS to allow it")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, host, port, path, addresses[0])


def inside(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved
            or ip.is_unspecified or not ip.is_global)


def webhook_url_check(url: str) -> None:
    """For rule writes: the problem as a 400 naming the field."""
    if url:
        try:
            webhook_target(url)
        except WebhookRefused as exc:
            raise InvalidAlertRule("webhook_url", str(exc)) from None


# --- what is sent ---------------------------------------------------------------------------------------------

def payload(alert: Alert, event: str) -> dict[str, Any]:
    rule = alert.rule
    return {
        "alert": alert.pk, "event": event, "state": event, "kind": alert.kind, "rule": alert.name,
        "rule_id": rule.pk if rule else None, "deployment": alert.endpoint, "metric": alert.metric,
        "op": rule.op if rule else None, "threshold": alert.threshold, "value": alert.value,
        "message": alert.message, "started_at": _iso(alert.started_at), "fired_at": _iso(alert.fired_at),
        "resolved_at": _iso(alert.resolved_at),
    }


def _iso(moment) -> str | None:
    return moment.isoformat() if moment else None


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# --- queueing and delivering ----------------------------------------------------------------------------------

def notifications_create(*, alert: Alert, event: str) -> list[Notification]:
    """Rows for each channel of the alert's rule, their deliveries queued once the transaction commits."""
    rule = alert.rule
    if rule is None or not rule.notify:
        return []
    rows = [Notification.objects.create(alert=alert, event=event, channel=channel, target=target)
            for channel, target in (("webhook", rule.webhook_url), ("email", rule.email)) if target]
    for row in rows:
        transaction.on_commit(partial(_enqueue, row.pk), robust=True)
    return rows


def _enqueue(pk: int) -> None:
    from rq import Retry

    retries = settings.ALERT_WEBHOOK_RETRIES
    backoff = [settings.ALERT_WEBHOOK_BACKOFF_S * 3 ** i for i in range(retries)]
    get_queue(QUEUE).enqueue(DELIVER, args=[pk], job_timeout=settings.ALERT_WEBHOOK_TIMEOUT_S * 4 + 30,
                             retry=Retry(max=retries, interval=backoff) if retries else None,
                             description=f"notification {pk}")


def notification_deliver(*, notification_id: int) -> str:
    """One attempt; raises while attempts are left (RQ retries it with back-off), records the outcome."""
    claimed = Notification.objects.filter(pk=notification_id, status=NotificationStatus.PENDING).update(
        attempts=F("attempts") + 1)
    if not claimed:
        return "skipped"
    row = Notification.objects.select_related("alert__rule").get(pk=notification_id)
    try:
        _send(row)
    except Exception as exc:
        last = row.attempts > settings.ALERT_WEBHOOK_RETRIES
        Notification.objects.filter(pk=row.pk).update(
            last_error=str(exc)[:1000], status=NotificationStatus.FAILED if last else NotificationStatus.PENDING)
        if last:
            return "failed"
        raise
    Notification.objects.filter(pk=row.pk).update(status=NotificationStatus.SENT, sent_at=timezone.now(),
                                                  last_error="")
    return "sent"


def _send(row: Notification) -> None:
    body = payload(row.alert, row.event)
    if row.channel == "email":
        subject = f"[{row.event}] {row.alert.name} on {row.alert.endpoint}"
        send_mail(subject, json.dumps(body, indent=2), settings.DEFAULT_FROM_EMAIL, [row.target])
        return
    rule: AlertRule | None = row.alert.rule
    post(row.target, json.dumps(body, separators=(",", ":")).encode(), rule.webhook_secret if rule else "")


def post(url: str, body: bytes, secret: str) -> int:
    try:
        target = webhook_target(url)
    except WebhookRefused as exc:
        raise RuntimeError(f"webhook refused: {exc}") from None
    connection = _connection(target)
    try:
        connection.request("POST", target.path, body=body, headers={
            "Content-Type": "application/json", "User-Agent": USER_AGENT, "X-Signature": signature(secret, body)})
        status = connection.getresponse().status
    finally:
        connection.close()
    if not 200 <= status < 300:
        raise RuntimeError(f"the webhook answered HTTP {status}")
    return status


def _connection(target: Target) -> http.client.HTTPConnection:
    timeout = settings.ALERT_WEBHOOK_TIMEOUT_S
    if target.scheme == "https":
        return _PinnedHTTPS(target.host, target.port, timeout=timeout, address=target.address)
    return _PinnedHTTP(target.host, target.port, timeout=timeout, address=target.address)


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to the address webhook_target checked, whatever the name resolves to by now."""

    def __init__(self, host: str, port: int, *, timeout: float, address: str) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, *, timeout: float, address: str) -> None:
        self.tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self.tls)
        self.address = address

    def connect(self) -> None:
        raw = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self.tls.wrap_socket(raw, server_hostname=self.host)  # certificate checked for the name
