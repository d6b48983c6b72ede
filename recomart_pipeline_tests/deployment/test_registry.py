"""Registry: idempotent registration, promotion, rollback, approvals."""

from __future__ import annotations

import pytest

from recomart_pipeline.deployment.registry import ModelRegistry, RegistryError


def _register(registry: ModelRegistry, tmp_path, content: bytes):
    model = tmp_path / f"m{len(content)}.npz"
    model.write_bytes(content)
    serving = {}
    for name in ("user_index.parquet", "item_index.parquet", "train_implicit.npz"):
        (tmp_path / name).write_bytes(b"x")
        serving[name] = tmp_path / name
    return registry.register(
        model, serving, model_type="als", metrics={"ndcg_at_10": 0.2}, data_hash="d", run_id="r"
    )


def test_register_is_idempotent_and_promote_rollback_work(tmp_path):
    registry = ModelRegistry(tmp_path / "registry")
    first, created = _register(registry, tmp_path, b"model-one")
    again, created_again = _register(registry, tmp_path, b"model-one")
    assert created and not created_again and again.version == first.version == "v0001"
    second, _ = _register(registry, tmp_path, b"model-two!")
    assert second.version == "v0002"
    with pytest.raises(RegistryError, match="nothing to roll back"):
        registry.rollback()
    registry.promote("v0001")
    registry.promote("v0002")
    assert registry.champion().version == "v0002"
    previous, restored = registry.rollback()
    assert (previous, restored.version) == ("v0002", "v0001")
    assert registry.champion().version == "v0001"


def test_approval_flow(tmp_path):
    registry = ModelRegistry(tmp_path / "registry")
    version, _ = _register(registry, tmp_path, b"model-one")
    with pytest.raises(RegistryError, match="not awaiting approval"):
        registry.approve(version.version)
    registry.request_approval(version.version, "ndcg 0.2")
    assert [p["version"] for p in registry.pending()] == ["v0001"]
    assert registry.champion() is None
    registry.approve("v0001")
    assert registry.champion().version == "v0001" and registry.pending() == []
