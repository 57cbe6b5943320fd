"""Bearer API keys for the OpenAI-compatible routes, and OpenAI's error shape."""

from __future__ import annotations

import json

import pytest

from shared.errors import AuthenticationError, ConfigurationError, NotFoundError, TooBusyError
from shared.http.api_keys import accepted_keys, bearer_token, require_api_key
from shared.http.errors import openai_response, reply_for


def test_api_keys_win_over_the_local_hosts_keys() -> None:
    env = {"API_KEYS": " k1 ,k2,", "LOCAL_FUNCTION_KEYS": "local", "LOCAL_MASTER_KEY": "m"}
    assert accepted_keys(env) == (b"k1", b"k2")


def test_without_api_keys_the_local_hosts_keys_are_accepted() -> None:
    env = {"LOCAL_FUNCTION_KEYS": "a, b", "LOCAL_MASTER_KEY": "m"}
    assert accepted_keys(env) == (b"a", b"b", b"m")


def test_no_key_at_all_is_a_configuration_error_naming_the_setting() -> None:
    with pytest.raises(ConfigurationError) as err:
        accepted_keys({"API_KEYS": " , "})
    assert err.value.field == "API_KEYS"


def test_an_unresolved_key_vault_reference_is_never_a_key() -> None:
    ref = "@Microsoft.KeyVault(VaultName=kv-abc;SecretName=api-key)"
    for value in (ref, ref.lower(), f"  {ref}"):
        with pytest.raises(ConfigurationError) as err:
            accepted_keys({"API_KEYS": value, "LOCAL_FUNCTION_KEYS": "local"})
        assert err.value.field == "API_KEYS" and "kv-abc" not in err.value.message


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer   abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("Bearer  ", None),
        ("", None),
    ],
)
def test_the_bearer_token_is_read_from_the_authorization_header(header, token) -> None:
    assert bearer_token({"Authorization": header}) == token


def test_a_missing_or_wrong_key_is_refused_and_never_echoed() -> None:
    keys = (b"right-key", b"other")
    require_api_key({"Authorization": "Bearer other"}, keys)
    with pytest.raises(AuthenticationError) as missing:
        require_api_key({}, keys)
    assert "Authorization: Bearer" in missing.value.message
    with pytest.raises(AuthenticationError) as wrong:
        require_api_key({"Authorization": "Bearer right-ke"}, keys)
    assert "right-ke" not in wrong.value.message and "right-key" not in wrong.value.message


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        (AuthenticationError("no key"), 401, "invalid_request_error"),
        (NotFoundError("x", field="model", code="model_not_found"), 404, "invalid_request_error"),
        (TooBusyError("busy"), 429, "rate_limit_error"),
        (RuntimeError("boom"), 500, "server_error"),
    ],
)  # fmt: skip
def test_errors_take_openais_shape_with_the_one_status_mapping(error, status, kind) -> None:
    response = openai_response(reply_for(error, "test"))
    assert response.status_code == status
    body = json.loads(response.get_body())
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == kind
    if status == 404:
        assert body["error"]["param"] == "model" and body["error"]["code"] == "model_not_found"
    if status == 500:
        assert "boom" not in body["error"]["message"]  # internals stay in the log
    if status == 429:
        assert response.headers["Retry-After"] == "1"
