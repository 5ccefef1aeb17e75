"""The client against a real `inlet serve` with TLS and with authentication.

TLS (mTLS, certificates made here): a client that trusts the CA and presents a certificate it
signed works, gRPC and HTTP; one without a certificate, with a certificate from another CA,
or in plaintext is refused with Unavailable, and changes nothing.

Authentication: a token from `inlet token create` listed in the tokens file works; none, an
unknown one, and one whose line was deleted (revoked) are Unauthenticated."""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
import time
import ssl
import urllib.request
from pathlib import Path

import pyarrow as pa
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import inlet
from conftest import INLET_BIN, Server


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None = None) -> None:
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.with_suffix(".key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


class Authority:
    """A CA in `directory` that issues certificates valid for 127.0.0.1 and localhost."""

    def __init__(self, directory: Path, name: str):
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self.name = _name(name)
        self.cert = (
            x509.CertificateBuilder().subject_name(self.name).issuer_name(self.name)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.path = directory / f"{name}.crt"
        _write(directory / name, self.cert)

    def issue(self, name: str) -> tuple[str, str]:
        """(certificate file, key file) of a new certificate for `name`."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder().subject_name(_name(name)).issuer_name(self.name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        _write(self.directory / name, cert, key)
        return str(self.directory / f"{name}.crt"), str(self.directory / f"{name}.key")


@pytest.fixture
def mtls(tmp_path):
    """A server that requires client certificates from `ca`; yields (server, ca, other CA)."""
    ca = Authority(tmp_path, "ca")
    other = Authority(tmp_path, "other-ca")
    cert, key = ca.issue("node")
    client_cert, client_key = ca.issue("client")
    env = {
        "INLET_TLS_CERT": cert, "INLET_TLS_KEY": key,
        "INLET_TLS_CLIENT_CA": str(ca.path), "INLET_TLS_CA": str(ca.path),
    }
    tls = inlet.TLS(ca_file=str(ca.path), cert_file=client_cert, key_file=client_key)
    srv = Server(tmp_path / "store", tmp_path / "serve.log", env=env, tls=tls)
    srv.start()
    yield srv, ca, other
    srv.stop()


def test_a_client_with_a_certificate_from_the_ca_works_and_others_are_refused(mtls, db):
    server, ca, other = mtls
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False), ("name", pa.string())])
    with inlet.connect(server.url, tls=server.tls) as client:
        assert client.http_url.startswith("https://")
        table = client.create_table(f"{db}.users", schema, buckets=2, bucket_key=["id"])
        table.append(pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"]}))
        assert sorted(table.scan(columns=["id"]).to_arrow().column("id").to_pylist()) == [1, 2, 3]

    stranger_cert, stranger_key = other.issue("stranger")
    refused = [
        ("no client certificate", server.url, inlet.TLS(ca_file=str(ca.path))),
        ("a certificate from another CA", server.url,
         inlet.TLS(ca_file=str(ca.path), cert_file=stranger_cert, key_file=stranger_key)),
        ("plaintext", server.url.replace("https://", "http://"), None),
    ]
    for what, url, tls in refused:
        with inlet.connect(url, tls=tls) as client:
            with pytest.raises(inlet.Unavailable):
                client.create_database(f"{db}_intruder")
            print(what, "refused")

    with inlet.connect(server.url, tls=server.tls) as client:
        assert f"{db}_intruder" not in [d.name for d in client.list_databases()]
        assert sum(b.latest for b in client.table(f"{db}.users").describe().buckets) == 3

    # The HTTP listener speaks the same TLS: health with the client certificate, not without.
    context = ssl.create_default_context(cafile=str(ca.path))
    context.load_cert_chain(server.tls.cert_file, server.tls.key_file)
    with urllib.request.urlopen(f"{server.http_url}/health", context=context, timeout=10) as response:
        assert response.status == 200
    anonymous = ssl.create_default_context(cafile=str(ca.path))
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{server.http_url}/health", context=anonymous, timeout=10).read()


def _token(principal: str) -> tuple[str, str]:
    """(token, tokens-file line) from `inlet token create`."""
    printed = subprocess.run([INLET_BIN, "token", "create", principal], check=True,
                             capture_output=True, text=True, timeout=30).stdout
    fields = dict(line.split(":", 1) for line in printed.splitlines())
    return fields["token"].strip(), fields["line"].strip()


def test_a_server_with_authentication_takes_the_clients_token_and_refuses_others(tmp_path, db):
    token, line = _token("alice")
    revoked, revoked_line = _token("mallory")
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{line}\n{revoked_line}\n")
    env = {"INLET_AUTH_ENABLED": "true", "INLET_AUTH_TOKENS_FILE": str(tokens),
           "INLET_AUTH_RELOAD_INTERVAL": "100ms", "INLET_AUTH_SUPERUSERS": "[alice, mallory]"}
    srv = Server(tmp_path / "store", tmp_path / "serve.log", env=env, token=token)
    srv.start()
    try:
        with inlet.connect(srv.url, token=token) as client:
            table = client.create_table(f"{db}.t", pa.schema([("x", pa.int64())]))
            table.append(pa.table({"x": [1, 2]}))
        for bad in (None, "inlet_" + "0" * 64):
            with inlet.connect(srv.url, token=bad) as client:
                with pytest.raises(inlet.Unauthenticated, match="missing or invalid credentials"):
                    client.list_databases()
        # Deleting mallory's line revokes the token within a reload interval.
        with inlet.connect(srv.url, token=revoked) as client:
            client.list_databases()
            tokens.write_text(f"{line}\n")
            deadline = time.monotonic() + 30
            with pytest.raises(inlet.Unauthenticated):
                while time.monotonic() < deadline:
                    client.list_databases()
                    time.sleep(0.05)
    finally:
        srv.stop()


def test_the_iceberg_catalog_of_a_secured_server_carries_the_token_and_ca(tmp_path, db, monkeypatch):
    ca = Authority(tmp_path, "ca")
    cert, key = ca.issue("node")
    token, line = _token("analyst")
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{line}\n")
    env = {"INLET_TLS_CERT": cert, "INLET_TLS_KEY": key, "INLET_AUTH_ENABLED": "true",
           "INLET_AUTH_TOKENS_FILE": str(tokens), "INLET_AUTH_SUPERUSERS": "[analyst]"}
    tls = inlet.TLS(ca_file=str(ca.path))
    srv = Server(tmp_path / "store", tmp_path / "serve.log", env=env, tls=tls, token=token)
    srv.start()
    try:
        with inlet.connect(srv.url, tls=tls, token=token, http_url=srv.http_url) as client:
            table = client.create_table(f"{db}.clicks", pa.schema([("user", pa.int64())]),
                                        options={"lake.enabled": True, "lake.freshness": "200ms"})
            table.append(pa.table({"user": list(range(100))}))
            deadline = time.monotonic() + 60
            while table.lake_status().file_rows < 100:
                assert time.monotonic() < deadline, "not tiered"
                time.sleep(0.2)
            catalog = table.iceberg_catalog()
            assert catalog.uri.startswith("https://") and catalog.token == token
            assert catalog.pyiceberg_properties["ssl"] == {"cabundle": str(ca.path)}
            sql = catalog.duckdb_attach_sql("lake")
            assert f"TOKEN '{token}'" in sql and "SET ca_cert_file" in sql and "SECRET lake_catalog" in sql
            # requests lets these override the CA bundle pyiceberg sets (see IcebergCatalog).
            monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
            monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
            rows = catalog.load_table().scan().to_arrow()
            assert sorted(rows.column("user").to_pylist()) == list(range(100))
    finally:
        srv.stop()
