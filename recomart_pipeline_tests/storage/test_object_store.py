"""The object-store layer against a real S3-compatible server: round trips, atomic
downloads, and clear errors for an unreachable endpoint or a missing bucket."""

from __future__ import annotations

import pickle

import pytest

from recomart_pipeline.runtime.object_store import ObjectStore, ObjectStoreError
from recomart_pipeline_tests.notify.conftest import free_port
from recomart_pipeline_tests.storage.conftest import ACCESS_KEY, SECRET_KEY, S3Server


def _store(server: S3Server, bucket: str, prefix: str = "pipe") -> ObjectStore:
    options = {"endpoint_url": server.endpoint, "key": ACCESS_KEY, "secret": SECRET_KEY}
    return ObjectStore(f"s3://{bucket}/{prefix}", options)


def test_files_and_json_round_trip_under_the_prefix(s3_server, tmp_path):
    bucket = s3_server.new_bucket()
    store = _store(s3_server, bucket)
    source = tmp_path / "a.bin"
    source.write_bytes(b"\x00payload" * 1000)
    store.upload(source, "runs/r1/task/a.bin")
    store.write_json("latest/task.json", {"run_id": "r1"})
    assert s3_server.keys(bucket) == ["pipe/latest/task.json", "pipe/runs/r1/task/a.bin"]
    target = tmp_path / "copy" / "a.bin"
    assert store.download("runs/r1/task/a.bin", target)
    assert target.read_bytes() == source.read_bytes()
    assert store.read_json("latest/task.json") == {"run_id": "r1"}
    assert [str(k) for k in store.list("runs", "*/task/*")] == ["runs/r1/task/a.bin"]
    assert store.exists("latest/task.json") and not store.exists("latest/other.json")
    child = store.child("runs")
    assert child.url == f"s3://{bucket}/pipe/runs"
    assert [str(k) for k in child.list("r1", "*/*")] == ["r1/task/a.bin"]


def test_missing_object_leaves_nothing_behind(s3_server, tmp_path):
    store = _store(s3_server, s3_server.new_bucket())
    target = tmp_path / "out" / "missing.json"
    assert store.download("nope.json", target) is False
    assert store.read_json("nope.json") is None
    assert list((tmp_path / "out").iterdir()) == []  # no partial download left


def test_an_existing_local_file_is_replaced_only_by_a_complete_download(s3_server, tmp_path):
    store = _store(s3_server, s3_server.new_bucket())
    target = tmp_path / "state.json"
    target.write_text("old")
    assert store.download("absent.json", target) is False
    assert target.read_text() == "old"


def test_store_pickles_without_its_connection_and_hides_credentials(s3_server):
    store = _store(s3_server, s3_server.new_bucket())
    store.check()  # connection made
    clone = pickle.loads(pickle.dumps(store))
    clone.check()
    assert SECRET_KEY not in repr(store)


def test_unreachable_endpoint_is_a_clear_retryable_error_without_secrets():
    store = ObjectStore(
        "s3://bucket/pipe",
        {
            "endpoint_url": f"http://127.0.0.1:{free_port()}",
            "key": ACCESS_KEY,
            "secret": SECRET_KEY,
        },
    )
    with pytest.raises(ObjectStoreError) as caught:
        store.check()
    message = str(caught.value)
    assert "could not reach s3://bucket/pipe" in message
    assert "storage.object_store" in message and "endpoint_url" in message
    assert caught.value.error_class == "connection_error"
    assert SECRET_KEY not in message


def test_missing_bucket_says_so(s3_server):
    store = _store(s3_server, "no-such-bucket-recomart")
    with pytest.raises(
        ObjectStoreError, match="bucket or container 'no-such-bucket-recomart' does"
    ):
        store.check()
