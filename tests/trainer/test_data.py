"""MNIST loading: verified sources only, the same arrays from each."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from nndl.trainer import data
from nndl.trainer.errors import DataError


def _write_idx(folder: Path, mnist: data.Mnist) -> None:
    """The canonical IDX files, rebuilt from the verified pickle's pixels."""
    x = np.concatenate([mnist.training[0], mnist.validation[0]])
    y = np.concatenate([mnist.training[1], mnist.validation[1]])
    for prefix, images, labels in (("train", x, y), ("t10k", *mnist.test)):
        pixels = (images * 256).astype(np.uint8).tobytes()
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(struct.pack(">IIII", 2051, len(images), 28, 28) + pixels, 1))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(
            gzip.compress(struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8)
                          .tobytes(), 1))


def test_idx_mirror_gives_the_pickles_arrays_and_fills_the_cache(mnist, tmp_path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    _write_idx(mirror, mnist)
    got = data.load_mnist(cache_dir=tmp_path / "cache", mirrors=[mirror.as_uri()])
    for split in ("training", "validation", "test"):
        np.testing.assert_array_equal(getattr(got, split)[0], getattr(mnist, split)[0])
        np.testing.assert_array_equal(getattr(got, split)[1], getattr(mnist, split)[1])
    cached = data.load_mnist(cache_dir=tmp_path / "cache", download=False)
    np.testing.assert_array_equal(cached.test[0], mnist.test[0])


def test_a_tampered_mirror_is_refused(mnist, tmp_path) -> None:
    _write_idx(tmp_path, mnist)
    labels = tmp_path / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(labels.read_bytes()))
    raw[8] = (raw[8] + 1) % 10  # one label changed
    labels.write_bytes(gzip.compress(bytes(raw)))
    assert data._from_mirrors([tmp_path.as_uri()]) is None


def test_a_pickle_with_the_wrong_hash_is_never_unpickled(tmp_path) -> None:
    evil = tmp_path / "mnist.pkl.gz"
    evil.write_bytes(gzip.compress(b"cos\nsystem\n(S'echo owned'\ntR."))
    with pytest.raises(DataError, match="SHA-256"):
        data.load_mnist(evil)


def test_the_unpickler_admits_only_arrays() -> None:
    import io
    import pickle

    payload = pickle.dumps(print)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        data._ArraysOnly(io.BytesIO(payload)).load()


def test_no_cache_and_no_download_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(DataError, match="not in the cache"):
        data.load_mnist(cache_dir=tmp_path, download=False)
