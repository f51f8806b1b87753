"""Regenerates the Python stubs of the wire API (`make proto`).

The stubs are committed so that installing the package needs no code generator;
`tests/test_proto_stubs.py` fails when they no longer match `nndl.proto`.
Usage: python proto/generate.py [OUTPUT_ROOT]   (default: the proto/ folder itself)
"""

import sys
from pathlib import Path

from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parent
SOURCES = ["nndl/v1/nndl.proto"]


def generate(out_root: Path) -> None:
    """Writes nndl_pb2.py, nndl_pb2.pyi and nndl_pb2_grpc.py under out_root/nndl/v1."""
    (out_root / "nndl" / "v1").mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *SOURCES,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else PROTO_ROOT)
