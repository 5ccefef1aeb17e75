"""Reads one Inlet lake table with outside engines and checks every one returns exactly the
expected rows. Run by `server/tests/lake_engines.rs` with the interpreter `.ci/run` installs
the engines into (`INLET_TEST_PYTHON`):

  read_lake.py --uri http://127.0.0.1:PORT/iceberg --namespace db --table events \
      --metadata /abs/lake/db/events-3/metadata/00002-....metadata.json \
      --table-dir /abs/lake/db/events-3 --expected rows.json

`rows.json` is a list of `[bucket, offset, id, name, timestamp_micros]`, each followed by
the value of `--extra-column NAME` when that is given. The readers:

- DuckDB through the REST catalog: `ATTACH ... (TYPE iceberg, ENDPOINT ...)`;
- DuckDB `iceberg_scan` of the metadata file, and of the table directory (`version-hint.text`);
- pyiceberg `RestCatalog` (`load_table`, then a scan);
- pyiceberg `StaticTable.from_metadata`.

On S3 (`s3://` paths) the catalog readers open the files with the settings the catalog hands
out with the table (`config` of LoadTableResult); the path readers are given the same ones.

With `--token` (and `--ca-cert` for an `https://` catalog) the catalog readers authenticate
as Iceberg REST clients do (DuckDB's iceberg secret `TOKEN`, pyiceberg's `token`), the load
response must not contain any `--secret`, and a reader without the token must be refused.
Run with REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE unset: requests lets them override the CA
bundle pyiceberg sets on its session.

DuckDB's extensions are loaded from the files of the pinned `duckdb-extension-*` wheels, with
autoinstall and autoload off, so nothing is downloaded at test time.
"""

import argparse
import importlib.util
import json
import pathlib
import sys
import time
import urllib.parse
import urllib.request

Row = tuple  # (bucket, offset, id, name, timestamp_micros)


def duckdb_connection():
    import duckdb

    con = duckdb.connect(
        config={
            "autoinstall_known_extensions": "false",
            "autoload_known_extensions": "false",
        }
    )
    # Dependencies first: iceberg reads manifests with avro and talks to the catalog (and S3)
    # with httpfs.
    for name in ("avro", "httpfs", "iceberg"):
        con.execute(f"LOAD '{extension_file(name, duckdb.__version__)}'")
    return con


def extension_file(name: str, version: str) -> str:
    package = f"duckdb_extension_{name}"
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"python package `{package}` is not installed (see .ci/run)")
    root = pathlib.Path(list(spec.submodule_search_locations)[0])
    path = root / "extensions" / f"v{version}" / f"{name}.duckdb_extension"
    if not path.is_file():
        found = sorted(str(p) for p in root.rglob("*.duckdb_extension"))
        sys.exit(f"no {name} extension for duckdb {version} at {path}; found {found}")
    return str(path)


def duckdb_rows(con, relation: str, extra: list) -> list:
    columns = "".join(f", {column}" for column in extra)
    return [
        tuple(row)
        for row in con.execute(
            f"SELECT _bucket, _offset, id, name, epoch_us(_timestamp){columns} FROM {relation}"
        ).fetchall()
    ]


def load_response(uri: str, ns: str, table: str, token, ca) -> bytes:
    """The REST catalog's LoadTableResult of the table, as sent."""
    import ssl

    url = f"{uri}/v1/namespaces/{urllib.parse.quote(ns)}/tables/{urllib.parse.quote(table)}"
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    context = ssl.create_default_context(cafile=ca) if ca else None
    with urllib.request.urlopen(request, timeout=30, context=context) as response:
        return response.read()


def table_config(uri: str, ns: str, table: str, token=None, ca=None) -> dict:
    """The client settings the REST catalog hands out with the table."""
    return json.loads(load_response(uri, ns, table, token, ca)).get("config", {})


def rest_catalog(uri: str, token, ca):
    """pyiceberg's RestCatalog on `uri`, with the token and CA when given."""
    from pyiceberg.catalog.rest import RestCatalog

    properties = {"uri": uri}
    if token:
        properties["token"] = token
    if ca:
        properties["ssl"] = {"cabundle": ca}
    return RestCatalog("inlet", **properties)


def create_duckdb_s3_secret(con, config: dict) -> None:
    endpoint = urllib.parse.urlparse(config["s3.endpoint"])
    options = {
        "KEY_ID": config["s3.access-key-id"],
        "SECRET": config["s3.secret-access-key"],
        "REGION": config["s3.region"],
        "ENDPOINT": endpoint.netloc,
        "URL_STYLE": "path" if config.get("s3.path-style-access") == "true" else "vhost",
    }
    rendered = ", ".join(f"{key} {quote(value)}" for key, value in options.items())
    use_ssl = "true" if endpoint.scheme == "https" else "false"
    con.execute(f"CREATE SECRET lake_files (TYPE s3, {rendered}, USE_SSL {use_ssl})")


def quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def arrow_rows(table, extra: list) -> list:
    import pyarrow as pa

    columns = [
        table.column("_bucket").to_pylist(),
        table.column("_offset").to_pylist(),
        table.column("id").to_pylist(),
        table.column("name").to_pylist(),
        # Integers, so no timezone library is needed to turn them into Python values.
        table.column("_timestamp").cast(pa.int64()).to_pylist(),
    ] + [table.column(column).to_pylist() for column in extra]
    return list(zip(*columns))


def check(reader: str, rows: list, expected: list, started: float) -> bool:
    elapsed = time.monotonic() - started
    pairs = [(r[0], r[1]) for r in rows]
    problems = []
    if len(rows) != len(expected):
        problems.append(f"{len(rows)} rows, expected {len(expected)}")
    if len(set(pairs)) != len(pairs):
        problems.append(f"{len(pairs) - len(set(pairs))} duplicate (_bucket, _offset) pairs")
    got, want = sorted(rows), sorted(expected)
    if got != want:
        missing = sorted(set(want) - set(got))[:3]
        extra = sorted(set(got) - set(want))[:3]
        problems.append(f"rows differ: missing e.g. {missing}, unexpected e.g. {extra}")
    status = "ok" if not problems else "FAILED: " + "; ".join(problems)
    print(f"{reader}: {len(rows)} rows in {elapsed:.2f}s: {status}", flush=True)
    return not problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", required=True, help="REST catalog base URI")
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--metadata", required=True, help="path of the metadata JSON file")
    parser.add_argument("--table-dir", required=True, help="directory of the lake table")
    parser.add_argument("--expected", required=True, help="JSON file of the expected rows")
    parser.add_argument(
        "--extra-column", action="append", default=[], help="a column read after the others"
    )
    parser.add_argument("--token", help="bearer token of the catalog")
    parser.add_argument("--ca-cert", help="CA certificate of an https:// catalog")
    parser.add_argument(
        "--secret", action="append", default=[], help="must not appear in a load response"
    )
    args = parser.parse_args()
    extra = args.extra_column
    expected = [tuple(row) for row in json.loads(pathlib.Path(args.expected).read_text())]
    ns, table = args.namespace, args.table
    ok = True

    started = time.monotonic()
    con = duckdb_connection()
    print(f"duckdb setup: {time.monotonic() - started:.2f}s", flush=True)

    started = time.monotonic()
    if args.ca_cert:
        con.execute(f"SET ca_cert_file = {quote(args.ca_cert)}")
    if args.token:
        con.execute(f"CREATE SECRET catalog (TYPE iceberg, TOKEN {quote(args.token)})")
        authorization = "SECRET catalog"
    else:
        authorization = "AUTHORIZATION_TYPE 'none'"
    con.execute(
        f"ATTACH '' AS lake (TYPE iceberg, ENDPOINT {quote(args.uri)}, {authorization})"
    )
    ok &= check("duckdb rest catalog", duckdb_rows(con, f"lake.{ns}.{table}", extra), expected, started)

    # Path readers know no catalog: give them the settings the catalog hands out.
    on_s3 = args.metadata.startswith("s3://")
    config = table_config(args.uri, ns, table, args.token, args.ca_cert) if on_s3 else {}
    if on_s3:
        create_duckdb_s3_secret(con, config)

    started = time.monotonic()
    relation = f"iceberg_scan({quote(args.metadata)})"
    ok &= check("duckdb iceberg_scan(metadata)", duckdb_rows(con, relation, extra), expected, started)

    started = time.monotonic()
    relation = f"iceberg_scan({quote(args.table_dir)})"
    ok &= check("duckdb iceberg_scan(version hint)", duckdb_rows(con, relation, extra), expected, started)

    from pyiceberg.exceptions import NoSuchTableError, UnauthorizedError
    from pyiceberg.table import StaticTable

    if args.token:
        loaded = load_response(args.uri, ns, table, args.token, args.ca_cert)
        leaked = [secret for secret in args.secret if secret.encode() in loaded]
        if leaked:
            print(f"load table response: FAILED: it contains {len(leaked)} secret(s)")
            ok = False
        try:
            rest_catalog(args.uri, None, args.ca_cert).list_namespaces()
            print("pyiceberg without a token: FAILED: the catalog answered")
            ok = False
        except UnauthorizedError:
            print("pyiceberg without a token: refused: ok")

    started = time.monotonic()
    catalog = rest_catalog(args.uri, args.token, args.ca_cert)
    namespaces = catalog.list_namespaces()
    tables = catalog.list_tables(ns)
    if (ns,) not in namespaces or (ns, table) not in tables:
        print(f"pyiceberg rest catalog: FAILED: namespaces {namespaces}, tables {tables}")
        ok = False
    exists = [
        catalog.namespace_exists(ns),
        catalog.table_exists((ns, table)),
        not catalog.namespace_exists("no_such_db"),
        not catalog.table_exists((ns, "no_such_table")),
    ]
    if not all(exists):
        print(f"pyiceberg rest catalog: FAILED: existence checks {exists}")
        ok = False
    # pyiceberg reports a missing namespace of a table as a missing table.
    for missing in [(ns, "no_such_table"), ("no_such_db", table)]:
        try:
            catalog.load_table(missing)
            print(f"pyiceberg rest catalog: FAILED: loading {missing} succeeded")
            ok = False
        except NoSuchTableError:
            pass
    rows = arrow_rows(catalog.load_table((ns, table)).scan().to_arrow(), extra)
    ok &= check("pyiceberg rest catalog", rows, expected, started)

    started = time.monotonic()
    static = StaticTable.from_metadata(args.metadata, properties=config)
    rows = arrow_rows(static.scan().to_arrow(), extra)
    ok &= check("pyiceberg StaticTable", rows, expected, started)

    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
