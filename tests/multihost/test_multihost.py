"""The issue's "Run on many machines", done when: two web instances (SERVE_ROLES=web) behind HAProxy with health
checks on /health/ready, two model-server instances (SERVE_ROLES=model-server with MODEL_SERVER_LISTEN), one
jobs+scheduler instance, sharing the machine's PostgreSQL and Redis and a SeaweedFS S3 store, each with a VAR_DIR
and ports of its own, all on 127.0.0.1 (tests/multihost/cluster.py).

Opt-in (minutes, the machine's servers): `pytest -m multihost tests/multihost`, or MULTIHOST=1
(.ci/run). The steps share one cluster and
run in order; the SIGKILL comes last.
"""

import hashlib
import os
import time
import uuid

import pytest

from tests.conftest import skops_artifact
from tests.inference.live import wait_for
from tests.multihost.cluster import Cluster, missing_prerequisites

# The first step also starts the cluster: two collectstatic runs and five instances on a shared machine.
pytestmark = [pytest.mark.multihost, pytest.mark.timeout(1500)]
ROW = [0.1, 0.2, 0.3, 0.4]
_missing = missing_prerequisites()


@pytest.fixture(scope="module")
def cluster():
    if _missing:
        # Asked for by CI (MULTIHOST=1): a missing prerequisite is a failure there, not a skip.
        (pytest.fail if os.environ.get("MULTIHOST") == "1" else pytest.skip)(
            "the multi-host test needs: " + "; ".join(_missing))
    started = Cluster()
    try:
        yield started.start()
    finally:
        started.stop()


def predict(client, endpoint: str, **headers):
    return client.post(f"/api/v1/predict/{endpoint}", json={"inputs": [ROW]}, headers=headers)


def upload_version(client, model: str) -> dict:
    response = client.post(f"/api/v1/models/{model}/versions/", data={"flavor": "sklearn"},
                           files={"artifact": ("model.skops", skops_artifact(), "application/octet-stream")})
    assert response.status_code == 201, response.text
    return response.json()


def wait_version(client, model: str, version: int) -> dict:
    def validated():
        body = client.get(f"/api/v1/models/{model}/versions/{version}/").json()
        return body if body["status"] in ("ready", "failed") else None

    return wait_for(validated, timeout=300, interval=0.5, message=f"{model} v{version} validated")


def wait_instances(client, endpoint: str, names: set[str], timeout: float = 300) -> dict:
    def reached():
        response = client.get(f"/api/v1/deployments/{endpoint}/")
        assert response.status_code == 200, (response.status_code, response.text[:500])
        body = response.json()
        ready = {i["name"] for i in body.get("instances", []) if i["status"] == "ready"}
        return body if ready == names == {i["name"] for i in body["instances"]} else None

    return wait_for(reached, timeout=timeout, interval=0.25, message=f"{endpoint} ready on {sorted(names)}")


def test_instances_started_together_migrate_once(cluster):
    logs = {name: instance.log() for name, instance in cluster.instances.items()}
    applied = [name for name, log in logs.items() if "setup: applied" in log]
    assert len(applied) == 1, {name: log[-500:] for name, log in logs.items()}
    assert all("setup: no migration to apply" in log for name, log in logs.items() if name not in applied)


def test_a_model_uploaded_through_one_web_instance_is_validated_by_the_jobs_instance(cluster):
    web1 = cluster.client(cluster.instances["web-1"].url)
    assert web1.post("/api/v1/models/", json={"name": "mh", "task": "classification"}).status_code == 201
    uploaded = upload_version(web1, "mh")
    assert cluster.s3.read(f"{cluster.prefix}/{cluster.query(_ARTIFACT_PATH)}") == skops_artifact()
    version = wait_version(web1, "mh", uploaded["version"])
    assert version["status"] == "ready", version["status_reason"]
    sha256 = hashlib.sha256(skops_artifact()).hexdigest()
    # The sandbox ran where the jobs run: only that host fetched (and verified) a copy.
    holders = {name for name, instance in cluster.instances.items()
               if (instance.var_dir / "cache" / "artifacts" / sha256).exists()}
    assert holders == {"jobs-1"}


_ARTIFACT_PATH = """
from registry.models import ModelVersion
result = ModelVersion.objects.get(model__name="mh", version=1).artifact_path
"""


def test_deployed_through_the_other_web_instance_and_served_through_both_by_both_model_servers(cluster):
    web1, web2 = (cluster.client(cluster.instances[name].url) for name in ("web-1", "web-2"))
    created = web2.post("/api/v1/deployments/", json={"endpoint": "mh-a", "model": "mh", "version": 1,
                                                      "cache_enabled": False})
    assert created.status_code == 201, created.text
    body = wait_instances(web1, "mh-a", {"ms-1", "ms-2"})
    assert (body["status"], body["instances_ready"]) == ("ready", 2)
    before = cluster.instance_requests("mh-a")
    for client in (web1, web2):
        for _ in range(20):
            response = predict(client, "mh-a")
            assert response.status_code == 200, response.text
    wait_for(lambda: all(count > before.get(name, 0) for name, count in cluster.instance_requests("mh-a").items()
                         if name in ("ms-1", "ms-2")) and len(cluster.instance_requests("mh-a")) >= 2,
             timeout=30, interval=1, message="requests answered by both model servers")


def test_an_alias_move_is_served_by_every_web_instance(cluster):
    # A deployment made after the web instances started does not make them unready while it loads
    # (inference/modelserver/health.py): HAProxy keeps its servers throughout.
    web1 = cluster.client(cluster.instances["web-1"].url)
    second = upload_version(web1, "mh")
    assert wait_version(web1, "mh", second["version"])["status"] == "ready"
    created = web1.post("/api/v1/deployments/", json={"endpoint": "mh-b", "model": "mh", "version": 2})
    assert created.status_code == 201, created.text
    assert cluster.haproxy_answers()
    wait_instances(web1, "mh-b", {"ms-1", "ms-2"})
    through = cluster.client()
    webs = [cluster.client(cluster.instances[name].url) for name in ("web-1", "web-2")]

    def served_versions():
        answers = [web.post("/api/v1/predict", json={"model": "mh", "inputs": [ROW]}) for web in webs]
        assert all(answer.status_code == 200 for answer in answers), [a.text for a in answers]
        return [answer.json()["version"] for answer in answers]

    # Each web process learns of mh-b's instances from their announcements (refreshed every second): wait until
    # both can reach it, then every answer during the moves must be a 200.
    wait_for(lambda: all(web.post("/api/v1/predict/mh-b", json={"inputs": [ROW]}).status_code == 200
                         for web in webs), timeout=30, message="mh-b reachable from both web instances")
    assert through.put("/api/v1/models/mh/aliases/production/", json={"version": 1}).status_code in (200, 201)
    wait_for(lambda: served_versions() == [1, 1], timeout=30, message="production (v1) on both web instances")
    moved = through.put("/api/v1/models/mh/aliases/production/", json={"version": 2})
    assert moved.status_code in (200, 201), moved.text
    wait_for(lambda: served_versions() == [2, 2], timeout=10, message="the moved alias on both web instances")


def test_an_async_job_and_a_batch_job_submitted_through_haproxy_complete(cluster):
    through = cluster.client()
    accepted = through.post("/api/v1/predict/mh-a/async", json={"inputs": [ROW]})
    assert accepted.status_code == 202, accepted.text
    rows = "a,b,c,d\n" + "".join(f"{i % 3},{i % 5},{i % 7},{i % 2}\n" for i in range(120))
    batch = through.post("/api/v1/batch-jobs/", data={"endpoint": "mh-a"},
                         files={"file": ("rows.csv", rows.encode(), "text/csv")})
    assert batch.status_code == 202, batch.text

    def finished(url):
        body = through.get(url).json()
        return body if body["status"] not in ("queued", "running") else None

    job = wait_for(lambda: finished(accepted.json()["status_url"]), timeout=120, message="the async job")
    assert job["status"] == "succeeded", job
    done = wait_for(lambda: finished(f"/api/v1/batch-jobs/{batch.json()['id']}/"), timeout=180, message="batch")
    assert (done["status"], done["rows_done"], done["rows_failed"]) == ("succeeded", 120, 0), done
    result = through.get(f"/api/v1/batch-jobs/{batch.json()['id']}/result")
    assert result.status_code == 200
    assert len(result.text.splitlines()) == 121
    assert cluster.s3.keys(f"{cluster.prefix}/batch/{batch.json()['id']}/")  # its files live in the bucket


def test_an_experiments_assignment_is_the_same_through_both_web_instances(cluster):
    through = cluster.client()
    created = through.post("/api/v1/experiments/", json={
        "name": "mh-ab", "endpoint": "mh", "variants": [{"name": "control", "deployment": "mh-a", "weight": 50},
                                                      {"name": "treatment", "deployment": "mh-b", "weight": 50}]})
    assert created.status_code == 201, created.text
    assert through.post(f"/api/v1/experiments/{created.json()['id']}/start/").status_code in (200, 201)
    webs = [cluster.client(cluster.instances[name].url) for name in ("web-1", "web-2")]
    subjects = [f"user-{uuid.uuid4().hex[:6]}" for _ in range(12)]

    def variants(web):
        answers = [predict(web, "mh", **{"X-Subject-Id": subject}) for subject in subjects]
        assert all(answer.status_code == 200 for answer in answers), [a.text for a in answers]
        return [answer.json()["variant"] for answer in answers]

    first = wait_for(lambda: variants(webs[0]), timeout=30, message="the experiment live on web-1")
    assert variants(webs[1]) == first
    assert set(first) == {"control", "treatment"}  # 12 subjects at 50/50: both seen (p of not ~ 5e-4)


def test_a_model_server_given_the_wrong_secret_serves_nothing(cluster):
    cluster.add_model_server("ms-stranger", MODEL_SERVER_SECRET="not-the-platform-secret-at-all")
    through = cluster.client()
    wait_for(lambda: "ms-stranger" in {i["name"] for i in through.get("/api/v1/deployments/mh-a/").json()
                                       ["instances"] if i["status"] == "ready"},
             timeout=300, interval=0.5, message="the stranger announcing mh-a")
    time.sleep(3)  # a stats report after its warm-up
    before = cluster.instance_requests("mh-a").get("ms-stranger", 0)
    for _ in range(30):
        assert predict(through, "mh-a").status_code == 200
    time.sleep(3)
    assert cluster.instance_requests("mh-a").get("ms-stranger", 0) == before


def test_sigkill_of_a_model_server_leaves_the_status_within_15_s_and_no_request_fails_after(cluster):
    through = cluster.client()
    stranger = cluster.instances.pop("ms-stranger", None)
    if stranger is not None:
        stranger.stop()
        stranger.cleanup()
    wait_instances(through, "mh-a", {"ms-1", "ms-2"}, timeout=60)
    cluster.instances["ms-2"].kill()
    killed = time.monotonic()
    statuses = []

    def left():
        body = through.get("/api/v1/deployments/mh-a/").json()
        statuses.append(body["status"])
        return body if {i["name"] for i in body["instances"]} == {"ms-1"} else None

    body = wait_for(left, timeout=15, interval=0.25, message="ms-2 off the status")
    assert time.monotonic() - killed < 15
    assert set(statuses) == {"ready"}, statuses  # never anything but ready meanwhile
    assert (body["status"], body["instances_ready"]) == ("ready", 1)
    failures = [r.status_code for r in (predict(through, "mh-a") for _ in range(50)) if r.status_code != 200]
    assert failures == []
