"""The service as a real process on 127.0.0.1: /ready, exclusions, the batch endpoint and
worker processes sharing the memory-mapped arrays."""

from __future__ import annotations

import json
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from recomart_pipeline.deployment.registry import ModelRegistry
from recomart_pipeline_tests.deployment.conftest import Service, running_service
from recomart_pipeline_tests.helpers import wait_until
from recomart_pipeline_tests.serving.conftest import SMALL_K, served_registry

pytestmark = pytest.mark.slow


def _serve(registry: ModelRegistry, tmp_path: Path, *extra: str):
    command = [sys.executable, "-m", "recomart_pipeline.serving", "--registry", str(registry.root)]
    return running_service([*command, *extra], tmp_path)


def _post(service: Service, path: str, payload: object) -> tuple[int, dict]:
    request = urllib.request.Request(
        service.base + path,
        json.dumps(payload).encode(),
        {"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read())


def test_ready_means_loaded_warmed_and_verified(tmp_path):
    registry = served_registry(tmp_path, ["als", "popularity"])
    (registry.root / "champion.json").unlink()  # nothing promoted yet
    with _serve(registry, tmp_path) as service:
        status, ready = service.call("/ready")
        assert status == 503 and ready["ready"] is False and ready["model_version"] is None
        assert "no champion" in ready["reason"]
        assert service.call("/health")[0] == 503

        registry.promote("v0001")
        wait_until(lambda: service.call("/ready")[0] == 200, 30, "/ready to answer 200")
        status, ready = service.call("/ready")
        assert ready["model_version"] == "v0001" and ready["problem"] is None
        checks = ready["checks"]
        assert checks["arrays"] == "memory-mapped" and checks["precomputed_k"] == SMALL_K
        assert checks["warmed"] is True and checks["probe"]["users_checked"] >= 1
        assert checks["probe"]["user_id"].startswith("user-")

        # a champion whose arrays were altered is refused: ready stays with the held model
        scores = registry.root / "v0002" / "topk_scores.npy"
        data = bytearray(scores.read_bytes())
        data[-3] ^= 0x10
        scores.write_bytes(bytes(data))
        registry.promote("v0002")
        wait_until(lambda: service.call("/ready")[1]["problem"], 30, "the refusal")
        status, ready = service.call("/ready")
        assert status == 200 and ready["model_version"] == "v0001"
        assert ready["problem"]["version"] == "v0002"
        assert "topk_scores.npy" in ready["problem"]["reason"]
        assert service.call("/health")[1]["status"] == "degraded"


def test_exclusions_and_the_batch_endpoint_over_http(tmp_path):
    registry = served_registry(tmp_path, ["als"])
    with _serve(registry, tmp_path) as service:
        _, plain = service.call("/recommendations/user-4?k=5")
        assert (plain["strategy"], plain["source"]) == ("personalized", "precomputed")
        top = [item["item_id"] for item in plain["items"]]
        query = urllib.parse.urlencode([("k", 5), ("exclude", top[0]), ("exclude", top[2])])
        _, excluded = service.call(f"/recommendations/user-4?{query}")
        assert excluded["source"] == "live" and len(excluded["items"]) == 5
        ids = [item["item_id"] for item in excluded["items"]]
        assert top[0] not in ids and top[2] not in ids
        assert ids[:3] == [top[1], top[3], top[4]]  # the others keep their order

        users = ["user-4", "user-70", "stranger", "user-4"]
        status, batch = _post(service, "/recommendations", {"user_ids": users, "k": 5})
        assert status == 200 and batch["model_version"] == "v0001" and batch["k"] == 5
        assert [r["user_id"] for r in batch["results"]] == users
        for result in batch["results"]:
            _, single = service.call(f"/recommendations/{result['user_id']}?k=5")
            assert result == single
        assert batch["results"][2]["strategy"] == "popular"

        status, big = service.call(f"/recommendations/user-4?k={SMALL_K + 4}")
        assert status == 200 and big["source"] == "live" and len(big["items"]) == SMALL_K + 4


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _maps(pid: int, path: Path) -> bool:
    try:
        return str(path) in Path(f"/proc/{pid}/maps").read_text()
    except FileNotFoundError:
        return False


def _mapped_files(pid: int) -> set[str]:
    lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
    return {f[5] for f in (line.split(None, 5) for line in lines) if len(f) > 5}


# Shared libraries of what training needs and the request path does not (numba's LLVM,
# pyarrow, pandas, scipy): a worker mapping one has imported it, at ~10-70 MiB each.
HEAVY_LIBRARIES = ("libllvmlite", "libarrow", "/numba/", "/pandas/", "/pyarrow/", "/scipy/")


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc (Linux)")
def test_a_worker_maps_its_arrays_and_model_and_no_training_libraries(tmp_path):
    registry = served_registry(tmp_path, ["ease"])
    folder = (registry.root / "v0001").resolve()
    with _serve(registry, tmp_path) as service:
        assert service.call("/ready")[0] == 200
        _, plain = service.call("/recommendations/user-4?k=5")
        excluded = plain["items"][0]["item_id"]
        _, live = service.call(f"/recommendations/user-4?k=5&exclude={excluded}")
        assert live["source"] == "live"  # the live path ran too
        mapped = _mapped_files(service.process.pid)
        for name in ("topk_items.npy", "topk_scores.npy", "user_ids.npy", "model.npz"):
            assert str(folder / name) in mapped, name  # file-backed: shared, not copied
        heavy = sorted(p for p in mapped if any(h in p for h in HEAVY_LIBRARIES))
        assert heavy == []


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc (Linux)")
def test_workers_share_the_memory_mapped_arrays(tmp_path):
    registry = served_registry(tmp_path, ["als"])
    arrays = (registry.root / "v0001" / "topk_items.npy").resolve()
    with _serve(registry, tmp_path, "--workers", "2") as service:
        assert service.call("/ready")[0] == 200

        def workers_mapped() -> bool:
            return sum(_maps(pid, arrays) for pid in _children(service.process.pid)) == 2

        wait_until(workers_mapped, 60, "both workers to map the top-K arrays")
        assert not _maps(service.process.pid, arrays)  # the supervisor holds no model
