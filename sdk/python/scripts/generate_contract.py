"""Writes src/hexr/_contract.py from contract/contract.json, the project's one contract.

    python sdk/python/scripts/generate_contract.py            # (re)write the module
    python sdk/python/scripts/generate_contract.py --check    # exit 1 if the module is stale

The generated module is committed, so that `pip install ./sdk/python` works without the rest of
the repository; tests/test_contract.py fails when it no longer matches contract.json.
"""

from __future__ import annotations

import argparse
import json
import pprint
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONTRACT = HERE.parent.parent.parent / "contract" / "contract.json"
OUTPUT = HERE.parent / "src" / "hexr" / "_contract.py"


def expand_char_class(spec: str) -> str:
    """"a-z0-9_-" -> every character of the class, in order (ranges first, then single characters)."""
    chars = []
    i = 0
    while i < len(spec):
        if i + 2 < len(spec) and spec[i + 1] == "-":
            chars.extend(chr(c) for c in range(ord(spec[i]), ord(spec[i + 2]) + 1))
            i += 3
        else:
            chars.append(spec[i])
            i += 1
    return "".join(chars)


def strip_comments(value):
    if isinstance(value, dict):
        return {k: strip_comments(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [strip_comments(v) for v in value]
    return value


def render(contract: dict) -> str:
    c = strip_comments(contract)
    g = c["grammar"]
    v = c["vault"]

    def const(name: str, value) -> str:
        return "%s = %s\n" % (name, pprint.pformat(value, width=100, sort_dicts=False))

    out = [
        '"""Generated from contract/contract.json by sdk/python/scripts/generate_contract.py: do not edit.\n\n'
        "Run `python sdk/python/scripts/generate_contract.py` after changing the contract; the test\n"
        'tests/test_contract.py fails while this module is stale."""\n\n',
        "from typing import Dict, Tuple\n\n",
        const("PROVIDERS: Tuple[str, ...]", tuple(c["providers"])),
        const("CATALOG: Tuple[str, ...]", tuple(c["catalog"])),
        const("AZURE_RESOURCES: Dict[str, str]", c["azure_resources"]),
        const("DEFAULT_REGIONS: Dict[str, str]", c["default_regions"]),
        const("REGIONS: Dict[str, Tuple[str, ...]]", {p: tuple(v) for p, v in c["regions"].items()}),
        const("SERVICE_SEPARATOR: str", g["service"]["separator"]),
        const("SERVICE_NAME_FIRST: str", expand_char_class(g["service"]["name_first"])),
        const("SERVICE_NAME_REST: str", expand_char_class(g["service"]["name_rest"])),
        const("SERVICE_NAME_MAX: int", g["service"]["name_max"]),
        const("REGION_CHARS: str", expand_char_class(g["region"]["chars"])),
        const("REGION_MIN: int", g["region"]["min"]),
        const("REGION_MAX: int", g["region"]["max"]),
        const("TRUST_DOMAIN_CHARS: str", expand_char_class(g["trust_domain"]["chars"])),
        const("TRUST_DOMAIN_MIN: int", g["trust_domain"]["min"]),
        const("TRUST_DOMAIN_MAX: int", g["trust_domain"]["max"]),
        const("PATH_SEGMENT_CHARS: str", expand_char_class(g["path_segment"]["chars"])),
        const("PATH_SEGMENT_MIN: int", g["path_segment"]["min"]),
        const("PATH_SEGMENT_MAX: int", g["path_segment"]["max"]),
        const("PATH_SEGMENT_FORBIDDEN: Tuple[str, ...]", tuple(g["path_segment"].get("forbidden", []))),
        const("SPIFFE_SCHEME: str", g["agent_spiffe_id"]["scheme"]),
        const("SPIFFE_KIND: str", g["agent_spiffe_id"]["kind"]),
        const("SPIFFE_ID_MAX: int", g["agent_spiffe_id"]["max"]),
        const("CREDENTIAL_KEY_PREFIX: str", c["keys"]["credential_prefix"]),
        const("KEY_SEPARATOR: str", c["keys"]["separator"]),
        const("LOCK_KEY_PREFIX: str", c["keys"]["lock_prefix"]),
        const("KEY_MAX_BYTES: int", c["keys"]["max_bytes"]),
        const("ERROR_TYPES: Tuple[str, ...]", tuple(c["errors"]["types"])),
        const(
            "ERROR_STATUSES: Dict[str, Tuple[int, ...]]",
            {k: tuple(v) for k, v in c["errors"]["statuses"].items()},
        ),
        const("VAULT_SECRETS_PATH: str", v["secrets_path"]),
        const("VAULT_AUDIT_PATH: str", v["audit_path"]),
        const("VAULT_BATCH_NAME: str", v["batch_name"]),
        const("VAULT_NAME_FIRST: str", expand_char_class(v["name"]["first"])),
        const("VAULT_NAME_CHARS: str", expand_char_class(v["name"]["chars"])),
        const("VAULT_NAME_MIN: int", v["name"]["min"]),
        const("VAULT_NAME_MAX: int", v["name"]["max"]),
        const("VAULT_MAX_VALUE_BYTES: int", v["max_value_bytes"]),
        const("VAULT_MAX_BATCH_NAMES: int", v["max_batch_names"]),
        const("LLM_PATH: str", c["llm"]["path"]),
        const("LLM_USAGE_PATH: str", c["llm"]["usage_path"]),
        const("LLM_USAGE_COUNTS: Tuple[str, ...]", tuple(c["llm"]["usage_counts"])),
        const("LLM_PROVIDERS: Tuple[str, ...]", tuple(c["llm"]["providers"])),
        const("HEADERS: Dict[str, str]", c["headers"]),
        const("CACHE_TIERS: Tuple[str, ...]", tuple(c["cache_tiers"])),
        const("IDENTITY_SOURCES: Tuple[str, ...]", tuple(c["identity_sources"])),
    ]
    return "".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the module is stale")
    parser.add_argument("--contract", type=Path, default=CONTRACT)
    args = parser.parse_args(argv)
    text = render(json.loads(args.contract.read_text(encoding="utf-8")))
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print("%s is stale: run python %s" % (OUTPUT, Path(__file__).name), file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
