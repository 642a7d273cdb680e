"""The operator's own API calls over a real HTTP(S) server: auth header, token refresh, TLS.

In a cluster the operator talks HTTPS to the API server with the service
account's CA and a token that the kubelet rotates; these tests serve a small
aiohttp app on 127.0.0.1 with a certificate made here and check what arrives.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client

from tests.conftest import free_port
from transfersearch_operator.kube import ForbiddenError, Kube, RejectedError, config_for

pytestmark = pytest.mark.asyncio

CONFIG_MAP = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "c", "namespace": "ns"},
    "data": {"job.json": "{}"},
}


def self_signed(tmp: Path, name: str) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that is its own CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / f"{name}.crt", tmp / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class ApiServer:
    """Answers POSTs like an API server and remembers the Authorization headers."""

    def __init__(self) -> None:
        self.auth: list[str | None] = []
        self.status = 201
        self.accept: list[str | None] = []
        self.secrets: dict[str, dict[str, Any]] = {}

    async def create(self, request: web.Request) -> web.Response:
        self.auth.append(request.headers.get("Authorization"))
        body: dict[str, Any] = await request.json()
        if self.status == 201:
            return web.json_response(body, status=201)
        status = {"kind": "Status", "message": "spec.template: Invalid value"}
        return web.json_response(status, status=self.status)

    async def get_secret(self, request: web.Request) -> web.Response:
        """As a server answers `as=PartialObjectMetadata`: the metadata, never the data."""
        self.accept.append(request.headers.get("Accept"))
        if self.status == 403:
            message = 'secrets "s3" is forbidden: User "system:serviceaccount:ts:op" cannot get'
            return web.json_response({"kind": "Status", "message": message}, status=403)
        secret = self.secrets.get(request.match_info["name"])
        if secret is None:
            return web.json_response({"kind": "Status", "reason": "NotFound"}, status=404)
        if "as=PartialObjectMetadata" in (request.headers.get("Accept") or ""):
            meta = {"kind": "PartialObjectMetadata", "metadata": secret["metadata"]}
        return web.json_response(meta)
        return web.json_response(secret)


@pytest_asyncio.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Any]:
    runners: list[web.AppRunner] = []

    async def start(tls: ssl.SSLContext | None = None) -> tuple[ApiServer, str]:
        api = ApiServer()
        app = web.Application()
        app.router.add_post("/api/v1/namespaces/{ns}/configmaps", api.create)
        app.router.add_get("/api/v1/namespaces/{ns}/secrets/{name}", api.get_secret)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=tls).start()
        return api, f"{'https' if tls else 'http'}://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_bearer_token_is_sent_and_refreshed(serve: Any) -> None:
    """The in-cluster configuration rereads the rotated token through its refresh hook."""
    api, url = await serve()
    cfg = client.Configuration(host=url)
    cfg.api_key = {"authorization": "token-1"}
    cfg.api_key_prefix = {"authorization": "Bearer"}
    kube = Kube(cfg)
    try:
        assert await kube.create(CONFIG_MAP)
        cfg.refresh_api_key_hook = lambda c: c.api_key.update(authorization="token-2")
        assert await kube.create(CONFIG_MAP)
    finally:
        await kube.close()
    assert api.auth == ["Bearer token-1", "Bearer token-2"]


async def test_no_credentials_no_header(serve: Any) -> None:
    api, url = await serve()
    kube = Kube(config_for(url))
    try:
        assert await kube.create(CONFIG_MAP)
    finally:
        await kube.close()
    assert api.auth == [None]


async def test_a_refused_object_is_a_rejection_with_the_servers_message(serve: Any) -> None:
    api, url = await serve()
    api.status = 422
    kube = Kube(config_for(url))
    try:
        with pytest.raises(RejectedError, match=r"spec\.template: Invalid value"):
            await kube.create(CONFIG_MAP)
    finally:
        await kube.close()


async def test_tls_with_the_clusters_ca_and_not_without(serve: Any, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, "apiserver")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    api, url = await serve(tls)

    trusted = client.Configuration(host=url)
    trusted.ssl_ca_cert = str(cert)
    kube = Kube(trusted)
    try:
        assert await kube.create(CONFIG_MAP)
    finally:
        await kube.close()

    other_ca, _ = self_signed(tmp_path, "someone-else")
    untrusted = client.Configuration(host=url)
    untrusted.ssl_ca_cert = str(other_ca)
    kube = Kube(untrusted)
    try:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await kube.create(CONFIG_MAP)
    finally:
        await kube.close()
    assert len(api.auth) == 1  # the untrusted server never saw the request


async def test_a_secret_is_read_as_metadata_only(serve: Any) -> None:
    """The admission policy needs a Secret's labels; its keys are never asked for."""
    api, url = await serve()
    labels = {"transfersearch.io/credentials": "true"}
    api.secrets["s3"] = {
        "kind": "Secret",
        "metadata": {"name": "s3", "namespace": "ns", "labels": labels},
        "data": {"AWS_SECRET_ACCESS_KEY": "c2VjcmV0"},
    }
    kube = Kube(config_for(url))
    try:
        found = await kube.get("Secret", "ns", "s3", metadata_only=True)
        assert await kube.get("Secret", "ns", "missing", metadata_only=True) is None
        api.status = 403
        with pytest.raises(ForbiddenError, match="cannot get"):
            await kube.get("Secret", "ns", "s3", metadata_only=True)
    finally:
        await kube.close()
    assert found == {"kind": "PartialObjectMetadata", "metadata": api.secrets["s3"]["metadata"]}
    assert all(
        a is not None and a.startswith("application/json;as=PartialObjectMetadata;")
        for a in api.accept
    )


async def test_a_forbidden_creation_is_its_own_error(serve: Any) -> None:
    api, url = await serve()
    api.status = 403
    kube = Kube(config_for(url))
    try:
        with pytest.raises(ForbiddenError):
            await kube.create(CONFIG_MAP)
    finally:
        await kube.close()
