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


def test_zero_copy_fetch_reader_agrees_with_the_generated_parser():
    import pytest

    from inlet._fetch import parse_fetch_response
    from inlet._proto import inlet_pb2 as pb
    from inlet.errors import Corruption

    message = pb.FetchResponse(bucket=7, batch_ipc=b"\x01\x02" * 1000, high_watermark=2**40).SerializeToString()
    parsed = parse_fetch_response(message)
    assert (parsed.bucket, bytes(parsed.batch_ipc), parsed.high_watermark) == (7, b"\x01\x02" * 1000, 2**40)
    assert parse_fetch_response(b"").bucket == 0
    # An unknown field of each wire type is skipped.
    extra = message + b"\x20\x05" + b"\x29" + b"\x00" * 8 + b"\x32\x01x" + b"\x3d" + b"\x00" * 4
    assert bytes(parse_fetch_response(extra).batch_ipc) == b"\x01\x02" * 1000
    for broken in (message[:-1], b"\x12\x05ab", b"\x08\xff", b"\x0f"):
        with pytest.raises(Corruption):
            parse_fetch_response(broken)
