"""Generated from contract/contract.json by sdk/python/scripts/generate_contract.py: do not edit.

Run `python sdk/python/scripts/generate_contract.py` after changing the contract; the test
tests/test_contract.py fails while this module is stale."""

from typing import Dict, Tuple

PROVIDERS: Tuple[str, ...] = ('aws', 'gcp', 'azure', 'llm')
CATALOG: Tuple[str, ...] = ('aws_s3',
 'aws_ec2',
 'aws_dynamodb',
 'aws_sqs',
 'aws_lambda',
 'aws_bedrock',
 'gcp_bigquery',
 'gcp_storage',
 'gcp_vertexai',
 'gcp_pubsub',
 'azure_storage',
 'azure_cosmosdb',
 'azure_openai',
 'llm_openai',
 'llm_anthropic')
AZURE_RESOURCES: Dict[str, str] = {'azure_storage': 'https://storage.azure.com',
 'azure_cosmosdb': 'https://cosmos.azure.com',
 'azure_openai': 'https://cognitiveservices.azure.com'}
DEFAULT_REGIONS: Dict[str, str] = {'aws': 'us-east-1', 'gcp': 'us-central1', 'azure': 'eastus', 'llm': 'global'}
REGIONS: Dict[str, Tuple[str, ...]] = {'aws': ('us-east-1',
         'us-east-2',
         'us-west-1',
         'us-west-2',
         'af-south-1',
         'ap-east-1',
         'ap-east-2',
         'ap-south-1',
         'ap-south-2',
         'ap-southeast-1',
         'ap-southeast-2',
         'ap-southeast-3',
         'ap-southeast-4',
         'ap-southeast-5',
         'ap-southeast-7',
         'ap-northeast-1',
         'ap-northeast-2',
         'ap-northeast-3',
         'ca-central-1',
         'ca-west-1',
         'eu-central-1',
         'eu-central-2',
         'eu-west-1',
         'eu-west-2',
         'eu-west-3',
         'eu-south-1',
         'eu-south-2',
         'eu-north-1',
         'il-central-1',
         'me-south-1',
         'me-central-1',
         'mx-central-1',
         'sa-east-1',
         'us-gov-east-1',
         'us-gov-west-1',
         'cn-north-1',
         'cn-northwest-1'),
 'gcp': ('global',
         'us-central1',
         'us-east1',
         'us-east4',
         'us-east5',
         'us-south1',
         'us-west1',
         'us-west2',
         'us-west3',
         'us-west4',
         'northamerica-northeast1',
         'northamerica-northeast2',
         'northamerica-south1',
         'southamerica-east1',
         'southamerica-west1',
         'europe-central2',
         'europe-north1',
         'europe-north2',
         'europe-southwest1',
         'europe-west1',
         'europe-west2',
         'europe-west3',
         'europe-west4',
         'europe-west6',
         'europe-west8',
         'europe-west9',
         'europe-west10',
         'europe-west12',
         'asia-east1',
         'asia-east2',
         'asia-northeast1',
         'asia-northeast2',
         'asia-northeast3',
         'asia-south1',
         'asia-south2',
         'asia-southeast1',
         'asia-southeast2',
         'australia-southeast1',
         'australia-southeast2',
         'me-central1',
         'me-central2',
         'me-west1',
         'africa-south1'),
 'azure': ('eastus',
           'eastus2',
           'centralus',
           'northcentralus',
           'southcentralus',
           'westcentralus',
           'westus',
           'westus2',
           'westus3',
           'canadacentral',
           'canadaeast',
           'brazilsouth',
           'brazilsoutheast',
           'mexicocentral',
           'chilecentral',
           'northeurope',
           'westeurope',
           'uksouth',
           'ukwest',
           'francecentral',
           'francesouth',
           'germanywestcentral',
           'germanynorth',
           'norwayeast',
           'norwaywest',
           'swedencentral',
           'switzerlandnorth',
           'switzerlandwest',
           'polandcentral',
           'italynorth',
           'spaincentral',
           'eastasia',
           'southeastasia',
           'japaneast',
           'japanwest',
           'koreacentral',
           'koreasouth',
           'centralindia',
           'southindia',
           'westindia',
           'australiaeast',
           'australiasoutheast',
           'australiacentral',
           'australiacentral2',
           'newzealandnorth',
           'indonesiacentral',
           'malaysiawest',
           'uaenorth',
           'uaecentral',
           'qatarcentral',
           'israelcentral',
           'southafricanorth',
           'southafricawest'),
 'llm': ('global',)}
SERVICE_SEPARATOR: str = '_'
SERVICE_NAME_FIRST: str = 'abcdefghijklmnopqrstuvwxyz0123456789'
SERVICE_NAME_REST: str = 'abcdefghijklmnopqrstuvwxyz0123456789_-'
SERVICE_NAME_MAX: int = 48
REGION_CHARS: str = 'abcdefghijklmnopqrstuvwxyz0123456789-'
REGION_MIN: int = 1
REGION_MAX: int = 32
TRUST_DOMAIN_CHARS: str = 'abcdefghijklmnopqrstuvwxyz0123456789._-'
TRUST_DOMAIN_MIN: int = 1
TRUST_DOMAIN_MAX: int = 255
PATH_SEGMENT_CHARS: str = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-'
PATH_SEGMENT_MIN: int = 1
PATH_SEGMENT_MAX: int = 128
PATH_SEGMENT_FORBIDDEN: Tuple[str, ...] = ('.', '..')
SPIFFE_SCHEME: str = 'spiffe://'
SPIFFE_KIND: str = 'agent'
SPIFFE_ID_MAX: int = 400
CREDENTIAL_KEY_PREFIX: str = 'cred:'
KEY_SEPARATOR: str = ':'
LOCK_KEY_PREFIX: str = 'lock:'
KEY_MAX_BYTES: int = 512
ERROR_TYPES: Tuple[str, ...] = ('BadRequest', 'AuthenticationError', 'CredentialError')
ERROR_STATUSES: Dict[str, Tuple[int, ...]] = {'BadRequest': (400, 404, 405, 409, 413, 415),
 'AuthenticationError': (401,),
 'CredentialError': (403, 429, 502, 503, 504)}
VAULT_SECRETS_PATH: str = '/v1/secrets'
VAULT_AUDIT_PATH: str = '/v1/audit'
VAULT_BATCH_NAME: str = '_batch'
VAULT_NAME_FIRST: str = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'
VAULT_NAME_CHARS: str = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-'
VAULT_NAME_MIN: int = 1
VAULT_NAME_MAX: int = 128
VAULT_MAX_VALUE_BYTES: int = 65536
VAULT_MAX_BATCH_NAMES: int = 64
LLM_PATH: str = '/v1/llm'
LLM_USAGE_PATH: str = '/v1/llm/usage'
LLM_USAGE_COUNTS: Tuple[str, ...] = ('requests',
 'input_tokens',
 'cached_input_tokens',
 'cache_write_tokens',
 'output_tokens',
 'cost_nanousd')
LLM_PROVIDERS: Tuple[str, ...] = ('openai', 'anthropic', 'azure_openai')
HEADERS: Dict[str, str] = {'prefix': 'x-hexr-',
 'spiffe_id': 'x-hexr-spiffe-id',
 'tenant': 'x-hexr-tenant',
 'agent': 'x-hexr-agent',
 'role': 'x-hexr-role',
 'identity_source': 'x-hexr-identity-source',
 'service': 'x-hexr-service',
 'region': 'x-hexr-region',
 'cache': 'x-hexr-cache',
 'expires_at': 'x-hexr-expires-at'}
CACHE_TIERS: Tuple[str, ...] = ('L1', 'L2', 'L3', 'L1-stale')
IDENTITY_SOURCES: Tuple[str, ...] = ('mtls', 'jwt', 'static')
