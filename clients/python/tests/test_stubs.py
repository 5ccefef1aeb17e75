"""The committed gRPC stubs are what regen.sh makes from the proto today: if the proto
changed, rerun clients/python/regen.sh."""

import filecmp
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
STUBS = ["inlet_pb2.py", "inlet_pb2.pyi", "inlet_pb2_grpc.py"]


def test_committed_stubs_match_the_proto(tmp_path):
    subprocess.run(
        ["bash", str(PACKAGE / "regen.sh"), str(tmp_path)],
        check=True, timeout=60, env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
    )
    for name in STUBS:
        committed = PACKAGE / "inlet" / "_proto" / name
        assert filecmp.cmp(committed, tmp_path / name, shallow=False), (
            f"inlet/_proto/{name} is stale: run clients/python/regen.sh and commit the result"
        )


def test_stubs_import_inside_the_package():
    from inlet._proto import inlet_pb2, inlet_pb2_grpc

    assert inlet_pb2_grpc.InletStub.__module__ == "inlet._proto.inlet_pb2_grpc"
    assert inlet_pb2.DESCRIPTOR.name == "inlet/v1/inlet.proto"
