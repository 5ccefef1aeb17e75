#!/usr/bin/env bash
# Regenerates the gRPC stubs in inlet/_proto/ from proto/proto/inlet/v1/inlet.proto with
# grpcio-tools (pip install "grpcio-tools==1.85.4"), and rewrites their one absolute import so
# they resolve inside this package (`inlet._proto`) instead of as a top-level `inlet.v1`,
# which would collide with the package's own name.
#
# Usage: ./regen.sh [OUT_DIR]   (default: inlet/_proto next to this script; the freshness
# test passes a temporary directory and compares).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
protos="$here/../../proto/proto"
out=${1:-"$here/inlet/_proto"}
python=${PYTHON:-python3}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$python" -m grpc_tools.protoc -I "$protos" \
  --python_out="$work" --pyi_out="$work" --grpc_python_out="$work" \
  "$protos/inlet/v1/inlet.proto"

mkdir -p "$out"
for file in inlet_pb2.py inlet_pb2.pyi inlet_pb2_grpc.py; do
  sed -e 's/^from inlet\.v1 import inlet_pb2 as/from inlet._proto import inlet_pb2 as/' \
    "$work/inlet/v1/$file" > "$out/$file"
done
if grep -q '^from inlet\.v1' "$out"/*.py; then
  echo "regen.sh: an import of inlet.v1 was left unrewritten in $out" >&2
  exit 1
fi
