"""The providers' own Python clients, unchanged, against the sidecar's LLM route (e2e/llm.test.ts):
configured only as an agent developer would, with the sidecar as base URL and the agent's JWT-SVID
where the client wants a key. The sidecar strips that and adds the provider's key from the vault.

Inputs (environment): HEXR_SIDECAR_URL, AGENT_JWT_SVID. Prints one JSON object: per case, the text
and the usage as the client parsed them.
"""

import json
import os

import anthropic
import openai

SIDECAR = os.environ["HEXR_SIDECAR_URL"]
SVID = os.environ["AGENT_JWT_SVID"]


def dump(model):
    return model.model_dump(mode="json") if model is not None else None


def openai_client():
    return openai.OpenAI(base_url=f"{SIDECAR}/v1/llm/openai/v1", api_key=SVID, max_retries=0)


def anthropic_client():
    return anthropic.Anthropic(base_url=f"{SIDECAR}/v1/llm/anthropic", auth_token=SVID, max_retries=0)


def openai_chat():
    answer = openai_client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "python chat"}])
    return {"text": answer.choices[0].message.content, "usage": dump(answer.usage)}


def openai_stream():
    # No stream_options: the sidecar asks for the usage chunk, which the client passes over.
    text = ""
    for chunk in openai_client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "python stream"}], stream=True):
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
    return {"text": text}


def openai_responses_stream():
    usage = None
    with openai_client().responses.stream(model="gpt-4o", input="python responses") as stream:
        for _ in stream:
            pass
        usage = stream.get_final_response().usage
    return {"usage": dump(usage)}


def anthropic_message():
    answer = anthropic_client().messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "python message"}])
    return {"text": answer.content[0].text, "usage": dump(answer.usage)}


def anthropic_stream():
    with anthropic_client().messages.stream(model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "python message stream"}]) as stream:
        final = stream.get_final_message()
    return {"text": final.content[0].text, "usage": dump(final.usage)}


print(json.dumps({case.__name__: case() for case in (openai_chat, openai_stream, openai_responses_stream, anthropic_message, anthropic_stream)}))
