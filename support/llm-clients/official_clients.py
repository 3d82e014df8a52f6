"""The providers' official Python clients (openai, anthropic) against the loopback LLM provider
emulator (support/llm-provider.ts), as support/llm-provider.test.ts runs them: each case is what an
agent does with a stock client, and the test compares what the client parsed with what the
emulator recorded and predicts.

Inputs (environment):
    LLM_URL            the emulator, http://127.0.0.1:PORT
    OPENAI_API_KEY     a key the emulator accepts for OpenAI
    ANTHROPIC_API_KEY  ... for Anthropic
    AZURE_API_KEY      ... for Azure OpenAI
    AZURE_TOKEN        an Entra token the emulator accepts for Azure OpenAI

Prints one JSON object on stdout: per case, the reply text and the usage as the client parsed it
(its model dumped to JSON), or {"error": <class>, "status": <HTTP status>, "body": <error body>}.
Every prompt names its case, so the test can find the call the emulator recorded.
"""

import json
import os

import anthropic
import openai

URL = os.environ["LLM_URL"]
AZURE_API_VERSION = "2024-10-21"


def dump(model):
    return model.model_dump(mode="json") if model is not None else None


def ask(case):
    return [{"role": "system", "content": "You are terse."}, {"role": "user", "content": f"case {case}: say hello"}]


def openai_client(key=None):
    return openai.OpenAI(base_url=f"{URL}/v1", api_key=key or os.environ["OPENAI_API_KEY"], max_retries=0)


def anthropic_client(key=None):
    return anthropic.Anthropic(base_url=URL, api_key=key or os.environ["ANTHROPIC_API_KEY"], max_retries=0)


def azure_client(**auth):
    return openai.AzureOpenAI(azure_endpoint=URL, api_version=AZURE_API_VERSION, max_retries=0, **auth)


def openai_chat():
    answer = openai_client().chat.completions.create(model="gpt-4o-mini", messages=ask("openai_chat"), prompt_cache_key="tenant-a")
    return {"text": answer.choices[0].message.content, "finish_reason": answer.choices[0].finish_reason, "usage": dump(answer.usage)}


def openai_chat_stream():
    stream = openai_client().chat.completions.create(
        model="gpt-4o", messages=ask("openai_chat_stream"), stream=True, stream_options={"include_usage": True}
    )
    text, usage, chunks = "", None, 0
    for chunk in stream:
        chunks += 1
        text += "".join(choice.delta.content or "" for choice in chunk.choices)
        usage = chunk.usage or usage
    return {"text": text, "chunks": chunks, "usage": dump(usage)}


def openai_responses():
    answer = openai_client().responses.create(model="gpt-4o", instructions="Be brief.", input="case openai_responses: say hello", metadata={"agent": "probe"})
    return {"text": answer.output_text, "status": answer.status, "metadata": answer.metadata, "usage": dump(answer.usage)}


def openai_responses_stream():
    with openai_client().responses.stream(model="gpt-4o-mini", input="case openai_responses_stream: say hello") as stream:
        final = stream.get_final_response()
    return {"text": final.output_text, "status": final.status, "usage": dump(final.usage)}


def openai_responses_incomplete():
    # Cut by max_output_tokens, the stream ends in response.incomplete, which the stream() helper's
    # get_final_response() refuses: read the raw events, as an agent must.
    stream = openai_client().responses.create(
        model="gpt-4o-mini", input="case openai_responses_incomplete: say hello", max_output_tokens=5, stream=True
    )
    events = list(stream)
    last = events[-1]
    return {"types": [event.type for event in events], "status": last.response.status, "usage": dump(last.response.usage)}


def anthropic_message():
    answer = anthropic_client().messages.create(
        model="claude-haiku-4-5",
        max_tokens=256,
        system=[{"type": "text", "text": "You are terse. " * 20, "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "case anthropic_message: say hello"}],
    )
    return {"text": answer.content[0].text, "stop_reason": answer.stop_reason, "usage": dump(answer.usage)}


def anthropic_stream():
    with anthropic_client().messages.stream(
        model="claude-sonnet-4-5", max_tokens=5, messages=[{"role": "user", "content": "case anthropic_stream: say hello"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    return {"text": text, "stop_reason": final.stop_reason, "usage": dump(final.usage)}


def azure_key_chat():
    answer = azure_client(api_key=os.environ["AZURE_API_KEY"]).chat.completions.create(model="gpt-4o", messages=ask("azure_key_chat"))
    return {"text": answer.choices[0].message.content, "usage": dump(answer.usage)}


def azure_key_stream():
    stream = azure_client(api_key=os.environ["AZURE_API_KEY"]).chat.completions.create(
        model="gpt-4o-mini", messages=ask("azure_key_stream"), stream=True, stream_options={"include_usage": True}
    )
    text, usage, empty = "", None, 0
    for chunk in stream:
        empty += 0 if chunk.choices else 1
        text += "".join(choice.delta.content or "" for choice in chunk.choices)
        usage = chunk.usage or usage
    return {"text": text, "choiceless_chunks": empty, "usage": dump(usage)}


def azure_token_chat():
    client = azure_client(azure_ad_token_provider=lambda: os.environ["AZURE_TOKEN"])
    answer = client.chat.completions.create(model="gpt-4o", messages=ask("azure_token_chat"), max_tokens=3)
    return {"text": answer.choices[0].message.content, "finish_reason": answer.choices[0].finish_reason, "usage": dump(answer.usage)}


def openai_wrong_key():
    openai_client("sk-wrong-key-from-python").chat.completions.create(model="gpt-4o", messages=ask("openai_wrong_key"))


def anthropic_wrong_key():
    anthropic_client("sk-ant-wrong-key-from-python").messages.create(
        model="claude-haiku-4-5", max_tokens=8, messages=[{"role": "user", "content": "case anthropic_wrong_key"}]
    )


def anthropic_unknown_model():
    anthropic_client().messages.create(model="claude-unknown-9", max_tokens=8, messages=[{"role": "user", "content": "case anthropic_unknown_model"}])


def azure_wrong_key():
    azure_client(api_key="wrong-azure-key").chat.completions.create(model="gpt-4o", messages=ask("azure_wrong_key"))


CASES = [
    openai_chat,
    openai_chat_stream,
    openai_responses,
    openai_responses_stream,
    openai_responses_incomplete,
    anthropic_message,
    anthropic_stream,
    azure_key_chat,
    azure_key_stream,
    azure_token_chat,
    openai_wrong_key,
    anthropic_wrong_key,
    anthropic_unknown_model,
    azure_wrong_key,
]


def run(case):
    try:
        return case()
    except (openai.APIStatusError, anthropic.APIStatusError) as error:
        return {"error": type(error).__name__, "status": error.status_code, "body": error.body}
    except Exception as error:  # noqa: BLE001 - the test shows whatever went wrong
        return {"error": type(error).__name__, "message": str(error)}


if __name__ == "__main__":
    print(json.dumps({case.__name__: run(case) for case in CASES}))
