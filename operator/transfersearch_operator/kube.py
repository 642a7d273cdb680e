"""The few Kubernetes API calls the operator makes itself (kopf does the watching).

The official client provides the connection: in-cluster service account or
kubeconfig, TLS, token refresh. Requests go through its generic
`param_serialize`/`call_api` with plain dict bodies: the typed per-resource
methods validate every body into pydantic models first, which costs several
times the request itself and would silently drop fields the models lack.
Each call runs in a worker thread so the event loop never waits on the network.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from transfersearch_trainer.spec import API_GROUP, API_VERSION, PLURAL

MERGE_PATCH = "application/merge-patch+json"
TIMEOUT = (5.0, 30.0)  # connect, read
PATHS = {  # kind -> collection path in a namespace
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps",
    "Job": "/apis/batch/v1/namespaces/{ns}/jobs",
    "TransferSearch": f"/apis/{API_GROUP}/{API_VERSION}/namespaces/{{ns}}/{PLURAL}",
}


class ConflictError(Exception):
    """The object changed since it was read (HTTP 409 on a resourceVersion precondition)."""


class RejectedError(Exception):
    """The API server refuses the object as written (HTTP 400/422): retrying cannot help."""


def client_from_environment() -> client.ApiClient:
    """In a pod: the service account; elsewhere: $KUBECONFIG or ~/.kube/config."""
    cfg = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    return client.ApiClient(cfg)


def client_for(server: str) -> client.ApiClient:
    """An unauthenticated client for a local API (tests, emulators)."""
    cfg = client.Configuration(host=server)
    cfg.verify_ssl = False
    return client.ApiClient(cfg)


class Kube:
    def __init__(self, api_client: client.ApiClient) -> None:
        self._client = api_client

    def _request(self, method: str, path: str, body: Any = None, content_type: str = "") -> None:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        params = self._client.param_serialize(
            method=method,
            resource_path=path,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self._client.call_api(*params, _request_timeout=TIMEOUT)
        response.read()  # type: ignore[no-untyped-call]
        if not 200 <= response.status < 300:
            raise ApiException(http_resp=response)

    async def _call(self, method: str, path: str, body: Any = None, content_type: str = "") -> None:
        await asyncio.to_thread(self._request, method, path, body, content_type)

    async def create(self, body: dict[str, Any]) -> bool:
        """Create a ConfigMap or Job; False if it already exists (creation is idempotent)."""
        path = PATHS[body["kind"]].format(ns=quote(body["metadata"]["namespace"]))
        try:
            await self._call("POST", path, body)
        except ApiException as err:
            if err.status == 409:
                return False
            if err.status in (400, 422):
                raise RejectedError(_reason(err)) from None
            raise
        return True

    async def delete(self, kind: str, namespace: str, name: str) -> bool:
        """Delete a ConfigMap or Job (a Job with its pods); False if it was gone."""
        path = f"{PATHS[kind].format(ns=quote(namespace))}/{quote(name)}"
        options = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        try:
            await self._call("DELETE", path, options)
        except ApiException as err:
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
        except ApiException as err:
            if err.status == 404:
                return False
            if err.status == 409:
                raise ConflictError(name) from None
            raise
        return True


def _reason(err: ApiException) -> str:
    """The server's one-line message from a Status body, else the HTTP reason."""
    try:
        message = json.loads(err.body or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or err.reason or f"HTTP {err.status}")
