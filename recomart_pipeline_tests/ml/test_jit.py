"""Kernels compile with an on-disk cache when possible and without one on read-only installs."""

from __future__ import annotations

from types import SimpleNamespace

import numba
from numba.core.caching import FunctionCache

from recomart_pipeline.ml import _jit


def _double(x: float) -> float:
    return 2 * x


def test_falls_back_to_no_cache_when_numba_cannot_cache(monkeypatch):
    calls = []

    def njit(**options):
        calls.append(options["cache"])
        if options["cache"]:
            raise RuntimeError("cannot cache function '_double': no locator available")
        return numba.njit(**options)

    monkeypatch.setattr(_jit, "numba", SimpleNamespace(njit=njit))
    compiled = _jit.kernel(_double)
    assert calls == [True, False]
    assert compiled(2.5) == 5.0


def test_caches_when_a_cache_location_is_writable(monkeypatch, tmp_path):
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path))
    compiled = _jit.kernel(_double)
    assert compiled(1.0) == 2.0
    assert isinstance(compiled._cache, FunctionCache)
    assert any(tmp_path.rglob("*.nbi"))  # the index of the compiled code was written
