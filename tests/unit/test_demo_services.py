"""The local gRPC character service and HTTP service (weather, fake provider API) of the reference app."""

from __future__ import annotations

import grpc
import httpx
import pytest

from otel_llm.demo.services import COMPLETIONS_PATH, character_stub, local_services


@pytest.fixture(scope="module")
def services():
    with local_services() as running:
        yield running


class TestServices:
    def test_grpc_character_lookup_over_json(self, services):
        """``/demo.Character/Get`` answers a JSON request with the character, no protoc needed."""
        with grpc.insecure_channel(services.grpc_target) as channel:
            assert character_stub(channel)({"name": "Eco"}, timeout=5)["role"] == "recycling guide"

    def test_grpc_unknown_character_is_not_found(self, services):
        """An unknown or malformed request gets NOT_FOUND, not a server crash."""
        with grpc.insecure_channel(services.grpc_target) as channel:
            for request in ({"name": "nobody"}, ["not", "a", "dict"]):
                with pytest.raises(grpc.RpcError) as error:
                    character_stub(channel)(request, timeout=5)
                assert error.value.code() == grpc.StatusCode.NOT_FOUND

    def test_http_weather_and_unknown_city(self, services):
        """``GET /weather/{city}`` returns the forecast; an unknown city is 404."""
        with httpx.Client(base_url=services.http_url) as client:
            assert client.get("/weather/Busan").json()["forecast"] == "rain"
            assert client.get("/weather/atlantis").status_code == 404

    def test_http_completions_acknowledge_the_model_and_refuse_a_bad_body(self, services):
        """``POST /v1/chat/completions`` echoes the model and stream flag; a body without a model is 422."""
        with httpx.Client(base_url=services.http_url) as client:
            response = client.post(COMPLETIONS_PATH, json={"model": "gpt-4o-mini", "stream": True})
            assert response.json() == {"object": "chat.completion", "model": "gpt-4o-mini", "stream": True}
            assert client.post(COMPLETIONS_PATH, json={"stream": True}).status_code == 422

    def test_http_app_can_be_prepared_before_serving(self):
        """``prepare_http_app`` sees the app before it serves (embedded mode instruments it there)."""
        prepared = []
        with local_services(prepare_http_app=prepared.append) as running:
            with httpx.Client(base_url=running.http_url) as client:
                assert client.get("/weather/seoul").status_code == 200
        assert [app.title for app in prepared] == ["demo HTTP service"]
