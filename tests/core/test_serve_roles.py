"""SERVE_ROLES: two scripts/serve.py instances started at once against one database set it up exactly once (a
database lock), and each starts only the processes of its roles. SQLite, and PostgreSQL where PROCESS_PG_URL (or
the default local server) answers."""

import os
import subprocess
import sys

import pytest
from django.conf import settings

from tests.core.platform_live import Platform
from tests.paths import REPO_ROOT as ROOT

pytestmark = pytest.mark.timeout(900)

PG_URL = os.environ.get("PROCESS_PG_URL", "postgres://postgres@127.0.0.1:5432/process")
PROCESS_NAMES = {"model-server": "models", "web": "web", "jobs": "jobs", "scheduler": "scheduler"}


def _fresh_postgres() -> str:
    psycopg = pytest.importorskip("psycopg")
    base, _, name = PG_URL.rpartition("/")
    try:
        with psycopg.connect(f"{base}/postgres", autocommit=True, connect_timeout=3) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at {base}: {exc}")
    return PG_URL


def _start_two_at_once(tmp_path, database_url: str | None) -> tuple[Platform, Platform]:
    shared = {"REDIS_URL": settings.REDIS_URL, "SHUTDOWN_DRAIN_DELAY_S": "0"}
    first = Platform(tmp_path / "a", database_url=database_url or f"sqlite:///{tmp_path}/shared.sqlite3",
                     SERVE_ROLES="model-server", **shared)
    second = Platform(tmp_path / "b", database_url=first.env["DATABASE_URL"], SERVE_ROLES="scheduler,jobs", **shared)
    for instance in (first, second):
        instance.start()
    return first, second


def _assert_set_up_once_and_only_their_processes(first: Platform, second: Platform) -> None:
    try:
        first.wait_log("[platform] roles model-server up", timeout=600)
        second.wait_log("[platform] roles jobs, scheduler up", timeout=600)
        logs = first.log() + second.log()
        assert logs.count("setup: applied ") == 1, logs  # migrations: one instance, the whole plan
        assert logs.count("setup: no migration to apply") == 1, logs
        assert logs.count("4 default alert rule(s) created, 0 already there") == 1
        assert logs.count("0 default alert rule(s) created, 4 already there") == 1
        assert set(first.children()) == {"models"}
        assert set(second.children()) == {"jobs", "scheduler"}
        assert "collectstatic" not in logs  # no web role here: no static files needed
        for instance in (first, second):
            assert instance.process.poll() is None
    finally:
        for instance in (first, second):
            instance.stop()


def test_two_instances_on_one_sqlite_database_set_it_up_once(tmp_path):
    _assert_set_up_once_and_only_their_processes(*_start_two_at_once(tmp_path, None))


def test_two_instances_on_one_postgresql_database_set_it_up_once(tmp_path):
    _assert_set_up_once_and_only_their_processes(*_start_two_at_once(tmp_path, _fresh_postgres()))


def test_an_unknown_role_is_refused_at_start_with_the_known_ones_named(tmp_path):
    env = {**os.environ, "SERVE_ROLES": "web,gpu", "VAR_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "scripts/serve.py"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert "SERVE_ROLES: unknown role(s) gpu; choose among model-server, web, jobs, scheduler" in done.stdout
    assert not (tmp_path / "run" / "redis.url").exists()  # refused before anything started
