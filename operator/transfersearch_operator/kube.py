"""The few Kubernetes API calls the operator makes itself (kopf does the watching).

The official client is synchronous; each call runs in a worker thread so the
event loop (and every other search) never waits on the network. Errors are
sorted into what the caller can act on: it already exists, it is gone, someone
changed it first, the server refuses it for good.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from transfersearch_trainer.spec import API_GROUP, API_VERSION, PLURAL

MERGE_PATCH = "application/merge-patch+json"
TIMEOUT = (5.0, 30.0)  # connect, read


class Conflict(Exception):
    """The object changed since it was read (HTTP 409 on a resourceVersion precondition)."""


class Rejected(Exception):
    """The API server refuses the object as written (HTTP 400/422): retrying cannot help."""


def client_from_environment() -> client.ApiClient:
    """In a pod: the service account; elsewhere: $KUBECONFIG or ~/.kube/config."""
    cfg = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=cfg)
    except config.ConfigException:
        config.load_kube_config(client_configuration=cfg)
    return client.ApiClient(cfg)


def client_for(server: str) -> client.ApiClient:
    """An unauthenticated client for a local API (tests, emulators)."""
    cfg = client.Configuration(host=server)
    cfg.verify_ssl = False
    return client.ApiClient(cfg)


class Kube:
    def __init__(self, api_client: client.ApiClient) -> None:
        self._core = client.CoreV1Api(api_client)
        self._batch = client.BatchV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)

    async def create(self, body: dict[str, Any]) -> bool:
        """Create a ConfigMap or Job; False if it already exists (creation is idempotent)."""
        namespace = body["metadata"]["namespace"]
        if body["kind"] == "ConfigMap":
            call: Any = self._core.create_namespaced_config_map
        elif body["kind"] == "Job":
            call = self._batch.create_namespaced_job
        else:
            raise ValueError(f"cannot create a {body['kind']}")
        try:
            await asyncio.to_thread(
                call, namespace, body, _preload_content=False, _request_timeout=TIMEOUT
            )
        except ApiException as err:
            if err.status == 409:
                return False
            if err.status in (400, 422):
                raise Rejected(_reason(err)) from None
            raise
        return True

    async def delete(self, kind: str, namespace: str, name: str) -> bool:
        """Delete a ConfigMap or Job (a Job with its pods); False if it was gone."""
        if kind == "ConfigMap":
            call: Any = self._core.delete_namespaced_config_map
        elif kind == "Job":
            call = self._batch.delete_namespaced_job
        else:
            raise ValueError(f"cannot delete a {kind}")
        try:
            await asyncio.to_thread(
                call,
                name,
                namespace,
                propagation_policy="Background",
                _preload_content=False,
                _request_timeout=TIMEOUT,
            )
        except ApiException as err:
            if err.status == 404:
                return False
            raise
        return True

    async def patch_search_status(
        self, namespace: str, name: str, resource_version: str | None, status: dict[str, Any]
    ) -> bool:
        """Merge-patch the status; False if the search is gone, Conflict if it changed."""
        body: dict[str, Any] = {"status": status}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        try:
            await asyncio.to_thread(
                self._custom.patch_namespaced_custom_object_status,
                API_GROUP,
                API_VERSION,
                namespace,
                PLURAL,
                name,
                body,
                _content_type=MERGE_PATCH,
                _preload_content=False,
                _request_timeout=TIMEOUT,
            )
        except ApiException as err:
            if err.status == 404:
                return False
            if err.status == 409:
                raise Conflict(name) from None
            raise
        return True


def _reason(err: ApiException) -> str:
    """The server's one-line message from a Status body, else the HTTP reason."""
    try:
        message = json.loads(err.body or b"{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or err.reason or f"HTTP {err.status}")
