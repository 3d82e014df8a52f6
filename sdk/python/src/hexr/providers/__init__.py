"""The clients hexr_tool() returns, one module per cloud, each imported only when used."""

from __future__ import annotations

import importlib
from typing import Any, Callable, Dict, Optional, Tuple

from ..errors import BadRequestError, MissingDependencyError

#: The seeds' table: service -> (how, what) for the 13 catalogued services.
AWS_CLIENTS: Dict[str, Tuple[str, str]] = {
    "aws_s3": ("client", "s3"),
    "aws_ec2": ("client", "ec2"),
    "aws_dynamodb": ("resource", "dynamodb"),
    "aws_sqs": ("client", "sqs"),
    "aws_lambda": ("client", "lambda"),
    "aws_bedrock": ("client", "bedrock-runtime"),
}
GCP_CLIENTS = ("gcp_bigquery", "gcp_storage", "gcp_vertexai", "gcp_pubsub")
AZURE_CLIENTS = ("azure_storage", "azure_cosmosdb", "azure_openai")

#: module that must import -> the extra that installs it
_NEEDS: Dict[str, Tuple[str, str]] = {
    "aws": ("boto3", "aws"),
    "gcp_bigquery": ("google.cloud.bigquery", "gcp"),
    "gcp_storage": ("google.cloud.storage", "gcp"),
    "gcp_vertexai": ("google.genai", "gcp"),
    "gcp_pubsub": ("google.cloud.pubsub_v1", "gcp"),
    "gcp": ("google.auth", "gcp"),
    "azure_storage": ("azure.storage.blob", "azure"),
    "azure_cosmosdb": ("azure.cosmos", "azure"),
    "azure_openai": ("openai", "azure"),
    "azure": ("azure.core", "azure"),
}


def require(key: str, service: str) -> Any:
    module, extra = _NEEDS[key]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(
            "hexr_tool(%r) needs the package that provides %s: pip install 'hexr[%s]'" % (service, module, extra)
        ) from None


#: builder(credential, fetch, region, region_given, kwargs) -> client
Builder = Callable[..., Any]


def builder_for(service: str, provider: str, name: str) -> Builder:
    """The function that builds `service`'s client; checks (before any network call) that the
    service has one and that its SDK is installed."""
    if provider == "aws":
        require("aws", service)
        from . import aws

        how, what = AWS_CLIENTS.get(service) or ("client", aws.boto3_service_name(service, name))
        return lambda credential, fetch, region, region_given, kwargs: aws.build(how, what, credential, fetch, region, kwargs)
    if provider == "gcp" and service in GCP_CLIENTS:
        require("gcp", service)
        require(service, service)
        from . import gcp

        return lambda credential, fetch, region, region_given, kwargs: gcp.build(service, credential, fetch, region, region_given, kwargs)
    if provider == "azure" and service in AZURE_CLIENTS:
        require("azure", service)
        require(service, service)
        from . import azure

        return lambda credential, fetch, region, region_given, kwargs: azure.build(service, credential, fetch, region, kwargs)
    raise BadRequestError(
        "hexr_tool has no client for %r (only AWS services beyond the catalog); "
        "use hexr.get_credentials(%r) and build the client yourself" % (service, service)
    )


def describe(service: str) -> Optional[str]:
    """What hexr_tool(service) returns, as the seeds' table says it."""
    if service in AWS_CLIENTS:
        how, what = AWS_CLIENTS[service]
        return "boto3.%s(%r)" % (how, what)
    return {
        "gcp_bigquery": "google.cloud.bigquery.Client",
        "gcp_storage": "google.cloud.storage.Client",
        "gcp_vertexai": "google.genai.Client(vertexai=True)",
        "gcp_pubsub": "google.cloud.pubsub_v1.PublisherClient",
        "azure_storage": "azure.storage.blob.BlobServiceClient",
        "azure_cosmosdb": "azure.cosmos.CosmosClient",
        "azure_openai": "openai.AzureOpenAI",
    }.get(service)
