import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "servingplatform.settings")
handler = get_wsgi_application()

from core.chunked import ChunkedBodies  # noqa: E402 - Django must be set up first

# Chunked request bodies (no Content-Length) reach Django read, under the same size limits.
application = ChunkedBodies(handler)
