"""The few Kubernetes API calls the operator makes itself (kopf does the watching).

The official client finds the connection (in-cluster service account or
kubeconfig: server, TLS files, token and its refresh hook); the requests go
over aiohttp in the operator's event loop, as kopf's own do, with plain dict
bodies. The client's own transport is synchronous: run in worker threads, the
operator used 4.2 ms of CPU per new search instead of 3.0 ms (100 searches at
once on 2 cores: every Job after 0.53-0.57 s instead of 0.36-0.43 s), and its
typed methods validate every body into models first and drop fields the models lack.

Not kubernetes_asyncio (36.1.0, the async client made for this, same aiohttp
transport): measured side by side with this module in one alternating run
(docs/operator.md, Performance), the operator used about twice the CPU per
burst (0.57-0.80 s vs 0.27-0.34 s for 100 searches) and create->Job p50 doubled
(439-827 ms vs 200-367 ms on the shared machine; the goal is 200 ms idle). Its
typed calls walk every body to serialize it and read every answer into models;
without the models (`_preload_content=False`, status checked by hand) it still
used 0.52-0.67 s. The price of keeping this module: the auth header per request
(through the configuration's refresh hook) and the TLS context are done here, so
tests/operator/test_operator_kube.py checks them against a real HTTP(S) server.
"""

from __future__ import annotations

import json
import ssl
from typing import Any
from urllib.parse import quote

import aiohttp
from kubernetes import client, config
from kubernetes.client.rest import should_bypass_proxies

from transfersearch_trainer.api.spec import API_GROUP, API_VERSION, PLURAL

MERGE_PATCH = "application/merge-patch+json"
# The object's metadata only: labels are all the operator reads of a Secret.
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
TIMEOUT = aiohttp.ClientTimeout(total=35.0, sock_connect=5.0)
PATHS = {  # kind -> collection path in a namespace
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps",
    "Secret": "/api/v1/namespaces/{ns}/secrets",
    "Job": "/apis/batch/v1/namespaces/{ns}/jobs",
    "TransferSearch": f"/apis/{API_GROUP}/{API_VERSION}/namespaces/{{ns}}/{PLURAL}",
}


class ApiError(Exception):
    """The API server answered with an error status."""

    def __init__(self, status: int, reason: str, body: bytes) -> None:
        super().__init__(f"HTTP {status} {reason}")
        self.status, self.reason, self.body = status, reason, body


class ConflictError(Exception):
    """The object changed since it was read (HTTP 409 on a resourceVersion precondition)."""


class RejectedError(Exception):
    """The API server refuses the object as written (HTTP 400/422): retrying cannot help."""


class ForbiddenError(Exception):
    """HTTP 403: the operator may not (RBAC), or not now (a quota); a fix elsewhere helps."""


def config_from_environment() -> client.Configuration:
    """In a pod: the service account; elsewhere: $KUBECONFIG or ~/.kube/config."""
    cfg = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    return cfg


def config_for(server: str) -> client.Configuration:
    """An unauthenticated connection to a local API (tests, emulators)."""
    cfg = client.Configuration(host=server)
    cfg.verify_ssl = False
    return cfg


def _tls(cfg: client.Configuration) -> ssl.SSLContext | bool:
    """What the official client would verify and present, as an SSL context for aiohttp."""
    if not cfg.host.startswith("https:"):
        return True  # aiohttp's default; unused for http
    if not cfg.verify_ssl:
        return False
    context = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
    if cfg.cert_file:
        context.load_cert_chain(cfg.cert_file, cfg.key_file)
    if cfg.assert_hostname is False:
        context.check_hostname = False
    return context


class Kube:
    """One aiohttp session, opened on first use in the loop that uses it; `close()` at exit."""

    def __init__(self, cfg: client.Configuration) -> None:
        self._cfg = cfg
        self._session: aiohttp.ClientSession | None = None
        bypass = should_bypass_proxies(cfg.host, cfg.no_proxy or "")
        self._proxy = None if bypass else cfg.proxy

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(
        self, method: str, path: str, body: Any = None, content_type: str = "", accept: str = ""
    ) -> bytes:
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=_tls(self._cfg), limit=20)
            self._session = aiohttp.ClientSession(connector=connector, timeout=TIMEOUT)
        headers = {"Accept": accept or "application/json"}
        # Read per request: the service account token is rotated, and the
        # configuration's refresh hook rereads it when it is due.
        settings: dict[str, dict[str, str]] = dict(self._cfg.auth_settings())  # type: ignore[arg-type]
        for auth in settings.values():
            headers[auth["key"]] = auth["value"]
        data = None
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
            data = json.dumps(body)
        async with self._session.request(
            method,
            self._cfg.host + path,
            data=data,
            headers=headers,
            proxy=self._proxy,
            server_hostname=self._cfg.tls_server_name or None,
        ) as response:
            answer = await response.read()
            if not 200 <= response.status < 300:
                raise ApiError(response.status, response.reason or "", answer)
            return answer

    async def create(self, body: dict[str, Any]) -> bool:
        """Create a ConfigMap or Job; False if it already exists (creation is idempotent)."""
        path = PATHS[body["kind"]].format(ns=quote(body["metadata"]["namespace"]))
        try:
            await self._call("POST", path, body)
        except ApiError as err:
            if err.status == 409:
                return False
            if err.status in (400, 422):
                raise RejectedError(_reason(err)) from None
            if err.status == 403:
                raise ForbiddenError(_reason(err)) from None
            raise
        return True

    async def get(
        self, kind: str, namespace: str, name: str, metadata_only: bool = False
    ) -> dict[str, Any] | None:
        """The object (or only its metadata), None if there is none."""
        path = f"{PATHS[kind].format(ns=quote(namespace))}/{quote(name)}"
        try:
            answer = await self._call("GET", path, accept=METADATA_ONLY if metadata_only else "")
        except ApiError as err:
            if err.status == 404:
                return None
            if err.status == 403:
                raise ForbiddenError(_reason(err)) from None
            raise
        found: dict[str, Any] = json.loads(answer)
        return found

    async def delete(self, kind: str, namespace: str, name: str) -> bool:
        """Delete a ConfigMap or Job (a Job with its pods); False if it was gone."""
        path = f"{PATHS[kind].format(ns=quote(namespace))}/{quote(name)}"
        options = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        try:
            await self._call("DELETE", path, options)
        except ApiError as err:
            if err.status == 404:
                return False
            raise
        return True

    async def patch_search_status(
        self, namespace: str, name: str, resource_version: str | None, status: dict[str, Any]
    ) -> bool:
        """Merge-patch the status; False if the search is gone, ConflictError if it changed."""
        body: dict[str, Any] = {"status": status}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        path = f"{PATHS['TransferSearch'].format(ns=quote(namespace))}/{quote(name)}/status"
        try:
            await self._call("PATCH", path, body, MERGE_PATCH)
        except ApiError as err:
            if err.status == 404:
                return False
            if err.status == 409:
                raise ConflictError(name) from None
            raise
        return True


def _reason(err: ApiError) -> str:
    """The server's one-line message from a Status body, else the HTTP reason."""
    try:
        message = json.loads(err.body or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or err.reason or f"HTTP {err.status}")
