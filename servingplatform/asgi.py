"""The web application that `make serve` runs (gunicorn with uvicorn workers).

The prediction fast lane (inference/fastlane.py) answers the prediction routes in the event loop;
every other request runs Django as WSGI in a thread pool (a2wsgi), with the same thread-per-request
semantics as before: database connections per thread, blocking views, no async-unsafe surprises.
"""

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "servingplatform.settings")
handler = get_wsgi_application()

from core.chunked import ChunkedBodies  # noqa: E402 - Django must be set up first

# Chunked request bodies (no Content-Length) reach Django read, under the same size limits.
django_application = ChunkedBodies(handler)

from a2wsgi import WSGIMiddleware  # noqa: E402 - Django must be set up first
from django.conf import settings  # noqa: E402

from inference.fastlane import FastLane  # noqa: E402

# The lane's database pool is as large as Django's: with connections kept per thread (CONN_MAX_AGE), a web
# process holds at most 2 x WEB_THREADS database connections.
# Django's handler returns its response, which is iterable as bytes; django-stubs types it HttpResponseBase.
application = FastLane(WSGIMiddleware(django_application, workers=settings.WEB_THREADS),  # type: ignore[arg-type]
                       threads=settings.PREDICT_THREADS, db_threads=settings.WEB_THREADS)

# Everything loaded so far (Django, the apps, their modules) lives as long as the process: out of the collector's
# reach, a full collection no longer walks it, which otherwise stalls every request in flight on this event
# loop for tens of milliseconds now and then (the tail of the latency, not its median).
gc.collect()
gc.freeze()
