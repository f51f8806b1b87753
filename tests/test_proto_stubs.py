"""The committed stubs must be what `make proto` generates from nndl.proto today."""

from pathlib import Path

from tests.conftest import REPO


def test_generated_stubs_match_the_proto(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("generate", REPO / "proto" / "generate.py")
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    generate.generate(tmp_path)
    for name in ("nndl_pb2.py", "nndl_pb2.pyi", "nndl_pb2_grpc.py"):
        fresh = (tmp_path / "nndl" / "v1" / name).read_text()
        committed = (REPO / "proto" / "nndl" / "v1" / name).read_text()
        assert fresh == committed, f"proto/nndl/v1/{name} is stale: run `make proto`"
