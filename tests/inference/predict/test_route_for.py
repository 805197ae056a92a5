"""route_for on a host with no model server of its own (a web-only instance): a route another host announces
as loading is a 503 saying so, not "the model server is not running" from a wake that cannot happen here."""

from unittest import mock

import pytest
from django.test import override_settings

from inference.errors import DeploymentNotReady
from inference.predict import dispatch
from inference.runtime.contract.routes import Route


def loading_route(status: str) -> Route:
    return Route(endpoint="remote", deployment_id=1, model="m", version=1, model_version_id=1, sha256="0" * 64,
                 generation=1, status=status, sockets=())


@pytest.mark.parametrize(("status", "message"), [("loading", "Endpoint 'remote' is loading."),
                                                 ("scaled_to_zero", "The model server is not running.")])
def test_a_route_without_sockets_and_no_local_model_server(tmp_path, status, message):
    router = mock.Mock()
    router.endpoint.return_value = loading_route(status)
    with override_settings(MODEL_SERVER_DIR=tmp_path), mock.patch.object(dispatch, "routes", return_value=router):
        with pytest.raises(DeploymentNotReady) as raised:
            dispatch.route_for("remote")
    assert str(raised.value) == message
