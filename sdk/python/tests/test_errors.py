"""Errors: classes, statuses and types from the sidecar's answers, and never a secret in a message."""

import json
import pickle

import pytest

from hexr import AccessDeniedError, AuthenticationError, BadRequestError, CredentialError, HexrError, SecretNotFoundError
from hexr.errors import from_response, from_vault_response, scrub

TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzcGlmZmU6Ly9oZXhyLmxvY2FsL2FnZW50L3QvYS9yIn0.c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJl"
AWS_KEY = "ASIAEXAMPLEEXAMPLE12"
SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEYxxxxxx"


def body(type_, message):
    return json.dumps({"error": {"type": type_, "message": message}}).encode()


@pytest.mark.parametrize(
    "status,type_,cls",
    [
        (400, "BadRequest", BadRequestError),
        (409, "BadRequest", BadRequestError),
        (413, "BadRequest", BadRequestError),
        (415, "BadRequest", BadRequestError),
        (401, "AuthenticationError", AuthenticationError),
        (403, "CredentialError", CredentialError),
        (429, "CredentialError", CredentialError),
        (502, "CredentialError", CredentialError),
        (503, "CredentialError", CredentialError),
        (504, "CredentialError", CredentialError),
    ],
)
def test_contract_errors_map_to_classes(status, type_, cls):
    error = from_response(status, body(type_, "the message"))
    assert type(error) is cls
    assert (error.status, error.type, error.message) == (status, type_, "the message")
    assert isinstance(error, HexrError)
    assert str(error) == "%d %s: the message" % (status, type_)


@pytest.mark.parametrize("status,cls", [(401, AuthenticationError), (403, CredentialError), (500, CredentialError), (503, CredentialError), (404, BadRequestError)])
def test_non_contract_bodies_get_fixed_messages(status, cls):
    error = from_response(status, b"<html>" + TOKEN.encode() + b"</html>")
    assert type(error) is cls and error.status == status
    assert TOKEN not in repr(error) and "html" not in str(error)


def test_no_secret_in_message_str_or_repr_even_if_upstream_put_one_there():
    error = from_response(403, body("CredentialError", "denied for %s with %s and %s" % (TOKEN, AWS_KEY, SECRET)))
    for text in (error.message, str(error), repr(error), str(error.args)):
        assert TOKEN not in text and AWS_KEY not in text and SECRET not in text
        assert TOKEN.split(".")[2] not in text
    assert "denied for" in error.message


def test_scrub_keeps_ordinary_text_and_spiffe_ids():
    text = "the service is not in this agent's resources: spiffe://hexr.local/agent/acme-corp/research-analyst/main"
    assert scrub(text) == text
    assert scrub("a\nb\x00c") == "a b c"


def test_errors_pickle_and_bad_request_is_a_value_error():
    error = pickle.loads(pickle.dumps(CredentialError("x", status=429)))
    assert (type(error), error.status, error.type, error.message) == (CredentialError, 429, "CredentialError", "x")
    assert isinstance(BadRequestError("bad"), ValueError)
    assert AuthenticationError("none").status == 401


@pytest.mark.parametrize(
    "status,type_,cls",
    [
        (400, "BadRequest", BadRequestError),
        (401, "AuthenticationError", AuthenticationError),
        (403, "CredentialError", AccessDeniedError),
        (404, "BadRequest", SecretNotFoundError),
        (405, "BadRequest", BadRequestError),
        (409, "BadRequest", BadRequestError),
        (413, "BadRequest", BadRequestError),
        (503, "CredentialError", CredentialError),
    ],
)
def test_vault_errors_map_to_classes(status, type_, cls):
    error = from_vault_response(status, body(type_, "the vault's message"))
    assert type(error) is cls and (error.status, error.type, error.message) == (status, type_, "the vault's message")
    generic = from_vault_response(status, b"")
    assert type(generic) is cls and generic.type == type_ and generic.message


def test_vault_error_classes():
    denied = AccessDeniedError("outside the secret's scope")
    assert isinstance(denied, CredentialError) and (denied.status, denied.type) == (403, "CredentialError")
    missing = SecretNotFoundError("no such secret: A")
    assert isinstance(missing, BadRequestError) and isinstance(missing, LookupError) and isinstance(missing, HexrError)
    assert (missing.status, missing.type, str(missing)) == (404, "BadRequest", "404 BadRequest: no such secret: A")
    for error in (denied, missing):
        again = pickle.loads(pickle.dumps(error))
        assert (type(again), again.status, again.message) == (type(error), error.status, error.message)
