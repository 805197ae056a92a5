"""The image's HEALTHCHECK: GET /health/ready of the web process in this container.

Sent as a TLS-terminating proxy would send it (X-Forwarded-Proto: https), so it passes with
SECURE_SSL_REDIRECT=1 and SECURE_PROXY_SSL_HEADER=1 (docker/.env.example's production values), and with a Host
from ALLOWED_HOSTS, so it passes whatever host names the site serves. Exit 0 when ready, 1 otherwise.
"""

import http.client
import os
import sys


def probe_host() -> str:
    for host in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost").split(","):
        host = host.strip().lstrip(".")
        if host and host != "*":
            return host
    return "localhost"


def main() -> int:
    connection = http.client.HTTPConnection("127.0.0.1", int(os.environ.get("PORT", "8000")), timeout=5)
    try:
        connection.request("GET", "/health/ready", headers={"Host": probe_host(), "X-Forwarded-Proto": "https"})
        response = connection.getresponse()
        body = response.read(2000).decode(errors="replace")
    except OSError as exc:
        print(f"not ready: {exc}")
        return 1
    print(response.status, body)
    return 0 if response.status == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
