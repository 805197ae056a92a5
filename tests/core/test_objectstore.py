"""core/objectstore.py against a real S3-compatible server (SeaweedFS): streamed multipart writes, streamed reads,
a missing object as FileNotFoundError, refused credentials and an unreachable store as a 503."""

import hashlib
import tempfile
import uuid

import pytest
from django.test import override_settings

from core import objectstore


@pytest.fixture
def store(s3_server):
    prefix = f"core-{uuid.uuid4().hex[:8]}"
    with override_settings(**s3_server.settings(prefix)):
        yield s3_server, prefix


def test_a_large_file_goes_up_in_parts_and_comes_back_in_chunks(store):
    server, prefix = store
    digest = hashlib.sha256()
    with tempfile.TemporaryFile() as source:
        for n in range(20):  # 20 MB: boto3 switches to multipart past 8 MB
            block = bytes([n]) * (1024 * 1024)
            digest.update(block)
            source.write(block)
        source.seek(0)
        objectstore.put("big/object.bin", source)
    head = server.client().head_object(Bucket=server.bucket, Key=f"{prefix}/big/object.bin")
    assert head["ContentLength"] == 20 * 1024 * 1024
    assert head["ETag"].strip('"').endswith("-3")  # three parts of 8 MB
    back = hashlib.sha256()
    sizes = set()
    for chunk in objectstore.chunks("big/object.bin"):
        sizes.add(len(chunk))
        back.update(chunk)
    assert back.hexdigest() == digest.hexdigest()
    assert max(sizes) <= objectstore.CHUNK
    assert b"".join(objectstore.chunks("big/object.bin", limit=5)) == b"\0" * 5
    assert objectstore.keys("big/") == [("big/object.bin", 20 * 1024 * 1024)]
    objectstore.delete_prefix("big/")
    assert not objectstore.exists("big/object.bin")


def test_a_missing_object_is_file_not_found(store):
    with pytest.raises(FileNotFoundError):
        objectstore.open_object("nothing/here")


def test_refused_credentials_and_an_unreachable_store_are_a_503(store):
    server, prefix = store
    with override_settings(**server.settings(prefix, secret_key="wrong")), pytest.raises(objectstore.StoreUnavailable):
        objectstore.keys("")
    with override_settings(**server.settings(prefix, endpoint_url="http://127.0.0.1:9")), \
            pytest.raises(objectstore.StoreUnavailable) as raised:
        objectstore.exists("x")
    assert raised.value.status_code == 503
    assert "127.0.0.1" not in raised.value.message
