"""All settings, read from the environment (see docker/.env.example for every variable)."""

import socket
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from core.env import (
    env_bool,
    env_choice,
    env_database,
    env_float,
    env_int,
    env_list,
    env_model_store,
    env_rate,
    env_redis_url,
    env_str,
)
from core.redis_clients import rq_connection

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
_EMBEDDED_SECRET = VAR_DIR / "secret_key"
if not SECRET_KEY and _EMBEDDED_SECRET.exists():
    # Written once by `make serve` (scripts/serve.py) for the embedded default, so manage.py
    # commands run beside it sign sessions and tokens with the same key.
    SECRET_KEY = _EMBEDDED_SECRET.read_text().strip()
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY is required when DEBUG is off (or set SECRET_KEY_FILE)")
    SECRET_KEY = "insecure-dev-only-key-never-use-in-production-0123456789abcdef"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS")
CORS_ALLOW_HEADERS = (
    "accept", "authorization", "content-type", "x-api-key", "x-request-id", "x-subject-id",
    "idempotency-key", "inference-header-content-length",
)

# Behind a TLS-terminating proxy these are switched on through the environment; the embedded
# default serves plain HTTP on loopback, so they are off unless asked for.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "rest_framework_api_key",
    "rest_framework_simplejwt",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc as static files: the docs work without internet
    "django_rq",
    "core",
    "registry",
    "inference",
    "experiments",
    "monitoring",
    "demo",
]

MIDDLEWARE = [
    "core.middleware.RequestIdMiddleware",
    "core.middleware.ApiSlashMiddleware",
    "core.middleware.BodySizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.gzip.GZipMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "servingplatform.urls"
WSGI_APPLICATION = "servingplatform.wsgi.application"
ASGI_APPLICATION = "servingplatform.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env_database("DATABASE_URL", VAR_DIR / "servingplatform.sqlite3")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (web, RQ workers, model server) write at once: WAL lets readers run beside
    # the writer, IMMEDIATE takes the write lock at BEGIN so two writers queue on the busy timeout
    # instead of failing mid-transaction with 'database is locked'.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": env_int("SQLITE_BUSY_TIMEOUT_S", 30, minimum=1),
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
    }
# Reused per thread, SQLite included: opening one (with the PRAGMAs above) costs ~1 ms of CPU, more than
# the query of a universal prediction; PostgreSQL's costs a round trip and a backend process.
DATABASES["default"]["CONN_MAX_AGE"] = env_int("DB_CONN_MAX_AGE", 60, minimum=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def _redis_url_fallback() -> str:
    # `make serve` starts a private Redis and records its URL here, so management commands run
    # from another terminal find it; without it, the conventional local Redis.
    url_file = VAR_DIR / "run" / "redis.url"
    return url_file.read_text().strip() if url_file.exists() else "redis://127.0.0.1:6379/0"


REDIS_URL = env_redis_url("REDIS_URL", _redis_url_fallback())  # or REDIS_SENTINELS + REDIS_SERVICE
DRAIN_FILE = env_str("DRAIN_FILE", "")  # scripts/serve.py's: readiness answers 503 while the file exists
REDIS_SOCKET_TIMEOUT_S = env_int("REDIS_SOCKET_TIMEOUT_MS", 1000, minimum=10) / 1000

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "sp",
        "OPTIONS": {  # the pool class understands a Sentinel service too
            "pool_class": "core.redis_clients.UrlConnectionPool",
            "socket_connect_timeout": REDIS_SOCKET_TIMEOUT_S, "socket_timeout": REDIS_SOCKET_TIMEOUT_S,
        },
    }
}

RQ_QUEUES = {
    name: {
        **rq_connection(REDIS_URL, REDIS_SOCKET_TIMEOUT_S),
        "DEFAULT_TIMEOUT": env_int("RQ_DEFAULT_TIMEOUT_S", 600, minimum=1),
        # Jobs carry IDs only, and JSON cannot smuggle code the way pickle can.
        "SERIALIZER": "rq.serializers.JSONSerializer",
    }
    for name in ("high", "default", "low")
}
RQ_SHOW_ADMIN_LINK = True

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- Model registry -------------------------------------------------------------------------
MODEL_STORE_URL, MODEL_STORE_DIR, MODEL_STORE_S3, ARTIFACT_CACHE_DIR = env_model_store(VAR_DIR)  # a folder or s3://
ALLOW_PICKLE_ARTIFACTS = env_bool("ALLOW_PICKLE_ARTIFACTS", False)
MAX_ARTIFACT_BYTES = env_int("MAX_ARTIFACT_MB", 512, minimum=1) * 1024 * 1024
# An input example is a few rows kept in the database and shown in the API: small on purpose.
MAX_INPUT_EXAMPLE_BYTES = env_int("MAX_INPUT_EXAMPLE_KB", 256, minimum=1, maximum=10240) * 1024
INPUT_EXAMPLE_MAX_ROWS = env_int("INPUT_EXAMPLE_MAX_ROWS", 1000, minimum=1, maximum=100_000)
VALIDATION_TIMEOUT_S = env_int("VALIDATION_TIMEOUT_S", 120, minimum=1)
VALIDATION_MEMORY_MB = env_int("VALIDATION_MEMORY_MB", 4096, minimum=256)

# --- Model server ---------------------------------------------------------------------------
# Worker sockets and the routing table live here (0700): the channel is private to this user.
# Unix socket paths are limited to ~100 bytes, so keep this short.
MODEL_SERVER_DIR = Path(env_str("MODEL_SERVER_DIR", str(VAR_DIR / "run" / "ms")))
MODEL_SERVER_POLL_S = env_int("MODEL_SERVER_POLL_MS", 500, minimum=50, maximum=2000) / 1000
MODEL_SERVER_MAX_CRASHES = env_int("MODEL_SERVER_MAX_CRASHES", 5, minimum=1)
MODEL_LOAD_TIMEOUT_S = env_int("MODEL_LOAD_TIMEOUT_S", 300, minimum=1)
# Many hosts (README "Many hosts"): this model server's name and pool (run_model_server checks it), its TCP
# listener for other hosts, the address they reach it at, the shared secret, TLS, and when an instance is dead.
INSTANCE_NAME = env_str("INSTANCE_NAME", socket.gethostname())[:64]
MODEL_SERVER_POOL = env_str("MODEL_SERVER_POOL", "default")
MODEL_SERVER_LISTEN = env_str("MODEL_SERVER_LISTEN", "")
MODEL_SERVER_ADVERTISE = env_str("MODEL_SERVER_ADVERTISE", "")
MODEL_SERVER_SECRET = env_str("MODEL_SERVER_SECRET", "")
MODEL_SERVER_TLS_CERT = env_str("MODEL_SERVER_TLS_CERT", "")
MODEL_SERVER_TLS_KEY = env_str("MODEL_SERVER_TLS_KEY", "")
MODEL_SERVER_TLS_CA = env_str("MODEL_SERVER_TLS_CA", "")
MODEL_SERVER_HEARTBEAT_TTL_S = env_int("MODEL_SERVER_HEARTBEAT_TTL_S", 10, minimum=3, maximum=300)
# Per-process caches on the prediction hot path (core/invalidation.py): verified API keys, and the model
# version a universal prediction names. A change (revocation, alias move) reaches every process at once
# through Redis; these bound how long an entry lives if that announcement is lost or Redis is down
# (API keys are kept then, registry answers are not). 0 turns a cache off.
API_KEY_CACHE_S = env_int("API_KEY_CACHE_S", 60, minimum=0, maximum=300)
REGISTRY_CACHE_S = env_int("REGISTRY_CACHE_S", 60, minimum=0, maximum=3600)
PROMETHEUS_MULTIPROC_DIR = env_str("PROMETHEUS_MULTIPROC_DIR", "")

# Web processes (gunicorn + uvicorn, servingplatform/asgi.py): threads running Django for every route but
# the prediction fast lane (and as many for the lane's database lookups), and threads for the lane's blocking
# work (prediction cache calls, wakes from zero); predictions themselves run in the event loop.
WEB_THREADS = env_int("WEB_THREADS", 8, minimum=1, maximum=256)
PREDICT_THREADS = env_int("PREDICT_THREADS", 32, minimum=1, maximum=1024)
# Threads per web process that run the deployments of a POST /api/v1/predict/batch (and its items an experiment
# routes) side by side; they keep database connections (for the rare item that needs one) like WEB_THREADS.
PREDICT_BATCH_THREADS = env_int("PREDICT_BATCH_THREADS", 8, minimum=1, maximum=256)

# --- HTTP limits ----------------------------------------------------------------------------
MAX_REQUEST_BYTES = env_int("MAX_REQUEST_MB", 10, minimum=1) * 1024 * 1024
MAX_JSON_DEPTH = env_int("MAX_JSON_DEPTH", 32, minimum=4, maximum=512)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
FILE_UPLOAD_TEMP_DIR = str(VAR_DIR / "uploads")
Path(FILE_UPLOAD_TEMP_DIR).mkdir(parents=True, exist_ok=True)

# --- API ------------------------------------------------------------------------------------
REQUIRE_API_KEY = env_bool("REQUIRE_API_KEY", True)
API_KEY_CUSTOM_HEADER = "HTTP_X_API_KEY"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "core.auth.ApiKeyAuthentication",
        "core.auth.JwtAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["core.permissions.ManageScope"],
    "DEFAULT_THROTTLE_CLASSES": ["core.throttling.ClientRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "predict": env_rate("THROTTLE_RATE_PREDICT", "6000/min"),
        "manage": env_rate("THROTTLE_RATE_MANAGE", "600/min"),
        "anon": env_rate("THROTTLE_RATE_ANON", "60/min"),
    },
    # X-Forwarded-For is trusted only for this many proxies in front of us; with 0 the socket
    # address is used, so rotating the header cannot escape the rate limit.
    "NUM_PROXIES": env_int("TRUSTED_PROXY_COUNT", 0, minimum=0, maximum=10),
    "DEFAULT_PARSER_CLASSES": [
        "core.parsers.SafeJSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PAGINATION_CLASS": "core.pagination.Pagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_int("JWT_ACCESS_MINUTES", 15, minimum=1)),
    "REFRESH_TOKEN_LIFETIME": timedelta(hours=env_int("JWT_REFRESH_HOURS", 24, minimum=1)),
    "SIGNING_KEY": SECRET_KEY,
    "AUTH_HEADER_TYPES": ("Bearer",),
}

SPECTACULAR_SETTINGS: dict[str, Any] = {
    "TITLE": "Serving Platform API",
    "DESCRIPTION": "Register models, deploy versions to endpoints, serve predictions, run experiments.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # "Authorize" once (X-API-Key) and keep it across reloads of the docs page.
    "SWAGGER_UI_SETTINGS": {"persistAuthorization": True, "deepLinking": True},
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "core.openapi.add_request_examples"],
}
# The browsable API's login link (/api-auth/login/) comes back here when it was not given a ?next=.
LOGIN_REDIRECT_URL = "/api/v1/"

# --- Logging --------------------------------------------------------------------------------
LOG_LEVEL = env_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"))
LOG_FORMAT = env_choice("LOG_FORMAT", "json", ("json", "text"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "core.logging.RequestIdFilter"}},
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(process)d",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "text": {"format": "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "WARNING"},
        "rq.worker": {"level": LOG_LEVEL},
    },
}

# --- Async inference and batch jobs ---------------------------------------------------------
# A job still queued this long after submission is expired by the sweeper instead of run: its caller
# has long stopped waiting. RQ's own copy of a queued job gets the same TTL.
JOB_TTL_SECONDS = env_int("JOB_TTL_SECONDS", 86_400, minimum=60)
JOB_DEFAULT_TIMEOUT_S = env_int("JOB_DEFAULT_TIMEOUT_S", 300, minimum=1)
JOB_MAX_TIMEOUT_S = env_int("JOB_MAX_TIMEOUT_S", 3600, minimum=1)
# Executions per job, counting those lost to a dead worker; RQ's Retry gets one fewer.
JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 3, minimum=1, maximum=20)
# How long RQ keeps a job's return value; the database keeps the result regardless.
JOB_RESULT_TTL_S = env_int("JOB_RESULT_TTL_S", 3600, minimum=1)
# How long one job keeps retrying a deployment that is loading or at capacity before it fails.
JOB_UNAVAILABLE_RETRY_S = env_int("JOB_UNAVAILABLE_RETRY_S", 60, minimum=0)
JOB_SWEEP_INTERVAL_S = env_int("JOB_SWEEP_INTERVAL_S", 60, minimum=5)
# Active jobs younger than this are left alone by the reconciler: their enqueue may still be in flight.
JOB_RECONCILE_GRACE_S = env_int("JOB_RECONCILE_GRACE_S", 120, minimum=1)
# Finished jobs (and batch files) older than this are deleted by the sweeper; 0 keeps them forever.
JOB_RETENTION_DAYS = env_int("JOB_RETENTION_DAYS", 30, minimum=0)
BATCH_DIR = Path(env_str("BATCH_DIR", str(VAR_DIR / "batch")))
BATCH_MAX_FILE_BYTES = env_int("BATCH_MAX_FILE_MB", 100, minimum=1) * 1024 * 1024
BATCH_MAX_ROWS = env_int("BATCH_MAX_ROWS", 1_000_000, minimum=1)
BATCH_CHUNK_SIZE = env_int("BATCH_CHUNK_SIZE", 500, minimum=1, maximum=100_000)
BATCH_JOB_TIMEOUT_S = env_int("BATCH_JOB_TIMEOUT_S", 6 * 3600, minimum=60)
# Queued + running batch jobs one caller may have at once (each holds a worker for a long time).
BATCH_MAX_ACTIVE_PER_OWNER = env_int("BATCH_MAX_ACTIVE_PER_OWNER", 5, minimum=1)
# Job statuses share the field name "status" with deployments and versions: name their enum explicitly.
SPECTACULAR_SETTINGS.setdefault("ENUM_NAME_OVERRIDES", {}).update({
    "JobStatusEnum": "inference.models.JobStatus",
    "JobPriorityEnum": "inference.models.JobPriority",
    "DeploymentStatusEnum": "inference.models.DeploymentStatus",
})

# --- Experiments ----------------------------------------------------------------------------
# How long a routed request's record (experiment, variant, prediction) waits in Redis for its feedback.
EXPERIMENT_FEEDBACK_TTL_S = env_int("EXPERIMENT_FEEDBACK_TTL_S", 7 * 86_400, minimum=60)
# How long promote waits for the endpoint to serve the winner before answering 503 (call it again to finish).
EXPERIMENT_PROMOTE_WAIT_S = env_int("EXPERIMENT_PROMOTE_WAIT_S", 120, minimum=1)
# Threads per web process sending shadow copies; twice as many copies may wait, more are dropped.
EXPERIMENT_SHADOW_THREADS = env_int("EXPERIMENT_SHADOW_THREADS", 4, minimum=1, maximum=64)

# --- Monitoring -----------------------------------------------------------------------------
# Logged predictions (a deployment's `log_predictions` share) are kept this many days, and at most this many
# rows per endpoint (the newest); the scheduler deletes the rest every MONITORING_RETENTION_S.
PREDICTION_LOG_DAYS = env_int("PREDICTION_LOG_DAYS", 30, minimum=1)
PREDICTION_LOG_MAX_ROWS = env_int("PREDICTION_LOG_MAX_ROWS", 1_000_000, minimum=1)
# How often each web process writes what it buffered (logged predictions, per-minute figures); 0: only when
# asked (the test process, which writes inside each test's transaction).
PREDICTION_LOG_FLUSH_S = env_int("PREDICTION_LOG_FLUSH_MS", 1000, minimum=0, maximum=60_000) / 1000
# Logged rows wait in Redis (at most this many flushes' batches: the oldest give way) until the scheduler writes
# them to the database every PREDICTION_LOG_WRITE_S, or a reader of the log does.
PREDICTION_LOG_BUFFER_BATCHES = env_int("PREDICTION_LOG_BUFFER_BATCHES", 3600, minimum=1)
PREDICTION_LOG_WRITE_S = env_int("PREDICTION_LOG_WRITE_S", 5, minimum=1)
# Per-minute figures per deployment and version (requests, errors, latency quantiles...) are kept this long.
METRICS_HISTORY_DAYS = env_int("METRICS_HISTORY_DAYS", 14, minimum=1)
MONITORING_RETENTION_S = env_int("MONITORING_RETENTION_S", 3600, minimum=1)
# Alert rules (and rollout guardrails) are evaluated this often by the scheduler.
ALERT_EVAL_S = env_int("ALERT_EVAL_S", 30, minimum=1)
# Webhook hosts allowed although they are loopback, private, link-local or metadata addresses (names or IPs).
ALERT_WEBHOOK_ALLOWED_HOSTS = env_list("ALERT_WEBHOOK_ALLOWED_HOSTS")
ALERT_WEBHOOK_TIMEOUT_S = env_int("ALERT_WEBHOOK_TIMEOUT_S", 5, minimum=1, maximum=60)
# Deliveries after the first, each ALERT_WEBHOOK_BACKOFF_S x 3^n later (10 s, 30 s, 90 s, 4.5 min, 13.5 min).
ALERT_WEBHOOK_RETRIES = env_int("ALERT_WEBHOOK_RETRIES", 5, minimum=0, maximum=10)
ALERT_WEBHOOK_BACKOFF_S = env_int("ALERT_WEBHOOK_BACKOFF_S", 10, minimum=1)
# A new version reached by a follow_alias roll is watched against its guardrails this long.
GUARDRAIL_WATCH_S = env_int("GUARDRAIL_WATCH_S", 3600, minimum=1)
# Drift: computed every DRIFT_EVAL_S over the last DRIFT_WINDOW_ROWS logged rows of each deployment's version,
# once DRIFT_MIN_ROWS exist, against the version's reference (an uploaded training sample, else the first
# DRIFT_REFERENCE_ROWS logged rows). A feature drifts when PSI > DRIFT_PSI_THRESHOLD and p < DRIFT_P_VALUE.
DRIFT_EVAL_S = env_int("DRIFT_EVAL_S", 300, minimum=1)
DRIFT_WINDOW_ROWS = env_int("DRIFT_WINDOW_ROWS", 1000, minimum=10, maximum=100_000)
DRIFT_REFERENCE_ROWS = env_int("DRIFT_REFERENCE_ROWS", 500, minimum=10, maximum=100_000)
DRIFT_MIN_ROWS = env_int("DRIFT_MIN_ROWS", 100, minimum=10, maximum=100_000)
DRIFT_PSI_THRESHOLD = env_float("DRIFT_PSI_THRESHOLD", 0.2, minimum=0.0)
DRIFT_P_VALUE = env_float("DRIFT_P_VALUE", 0.01, minimum=0.0, maximum=1.0)

# Alert e-mails go through Django's mail backend (SMTP in production; the console backend prints them).
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT_S", 10, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "serving-platform@localhost")
