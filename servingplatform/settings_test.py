"""Test settings: the real settings, plus what only a test run needs.

DATABASE_URL / REDIS_URL come from the environment (CI points them at the real servers); when
REDIS_URL is unset the pytest plugin tests/services_plugin.py starts a private Redis first.
"""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("LOG_FORMAT", "text")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("MODEL_STORE_DIR", tempfile.mkdtemp(prefix="sp-test-models-"))
# Short and private: Unix socket paths are limited to ~100 bytes.
os.environ.setdefault("MODEL_SERVER_DIR", tempfile.mkdtemp(prefix="spms-", dir="/tmp"))

from servingplatform.settings import *
from servingplatform.settings import DATABASES, VAR_DIR

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not :memory:, so subprocesses (workers, the model server) see the same test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}
# Buffered monitoring figures are written when a test (or a reader) asks, inside the test's transaction, never by
# a background thread writing beside it. Live servers started by tests use the real settings.
PREDICTION_LOG_FLUSH_S = 0.0
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
