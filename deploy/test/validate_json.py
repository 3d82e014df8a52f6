"""Validates JSON documents against JSON schemas (draft 2020-12) with the jsonschema package that
kubernetes-validate brings into .venv. Reads [{"label", "schema", "instance"}, ...] on stdin and
prints [{"label", "errors": ["path: message", ...]}, ...]."""
import json
import sys

from jsonschema import Draft202012Validator

results = []
for item in json.load(sys.stdin):
    validator = Draft202012Validator(item["schema"])
    errors = []
    for error in sorted(validator.iter_errors(item["instance"]), key=lambda e: list(map(str, e.absolute_path))):
        where = ".".join(str(part) for part in error.absolute_path) or "(root)"
        errors.append(f"{where}: {error.message}")
    results.append({"label": item["label"], "errors": errors})
json.dump(results, sys.stdout)
