"""The LLM backend of instruction data: an OpenAI-compatible chat-completions client (stdlib only),
tolerant JSON repair, schema validation, and LLark's prompt.

    export OPENAI_API_KEY=...   # optional: local servers (vLLM, llama.cpp, Ollama) usually need none
    python preprocessing/instruct.py --clips data/pipeline/clips.jsonl --out data/pipeline/qa.jsonl \\
        --backend llm --base-url http://127.0.0.1:8000/v1 --model NAME

    client = ChatClient(LLMConfig(base_url="http://127.0.0.1:8000/v1", model="NAME"))
    pairs = LLMGenerator(client).generate(clip)     # raw pairs; filter_pairs() applies LLark's filters

Connection errors, timeouts, HTTP 429 and 5xx are retried with exponential backoff (Retry-After is
honoured, capped); other HTTP errors fail at once. A reply that is not valid JSON is repaired where
that is unambiguous (code fences, text around the JSON, trailing commas, single or curly quotes,
bare keys, Python literals, raw newlines in strings); a reply that still fails the schema is asked
again, up to `attempts` times, then the clip fails with the reason.
"""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable

from llark.instructions import Facts, TemplateGenerator

LLM_FAMILIES = ("mir_qa", "captioning", "reasoning")  # transcriptions come verbatim from the label, never an LLM
_FAMILY_ALIASES = {"mir": "mir_qa", "mir_q_a": "mir_qa", "mirqa": "mir_qa", "qa": "mir_qa", "caption": "captioning",
                   "captions": "captioning", "reason": "reasoning"}


class LLMError(RuntimeError):
    """The endpoint could not be reached or answered with an error, after the retries."""


class JSONRepairError(ValueError):
    """Model output that no repair turns into JSON."""


class SchemaError(ValueError):
    """JSON that is not a list of {question, answer, family}."""


@dataclass
class LLMConfig:
    base_url: str  # e.g. http://127.0.0.1:8000/v1 (the /chat/completions path is appended)
    model: str
    api_key_env: str = "OPENAI_API_KEY"  # the key is read from this environment variable, never from a file
    timeout_s: float = 60.0  # per request
    max_retries: int = 4
    backoff_s: float = 1.0  # first wait; doubles per retry
    max_backoff_s: float = 30.0
    temperature: float = 0.7
    max_tokens: int = 2048
    seed: int | None = None


@dataclass
class ChatClient:
    config: LLMConfig
    sleep: Callable[[float], None] = time.sleep  # tests pass a recorder instead of waiting
    requests_sent: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if not self.config.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base URL must start with http:// or https://, got {self.config.base_url!r}")
        if not self.config.model:
            raise ValueError("an LLM model name is required (--model)")

    @property
    def url(self) -> str:
        return self.config.base_url.rstrip("/") + "/chat/completions"

    def complete(self, messages: list[dict[str, str]]) -> str:
        """The assistant's text for `messages`; raises LLMError when every attempt failed."""
        cfg = self.config
        body = {"model": cfg.model, "messages": messages, "temperature": cfg.temperature, "max_tokens": cfg.max_tokens}
        if cfg.seed is not None:
            body["seed"] = cfg.seed
        headers = {"Content-Type": "application/json"}
        if os.environ.get(cfg.api_key_env):
            headers["Authorization"] = f"Bearer {os.environ[cfg.api_key_env]}"
        data = json.dumps(body).encode()
        problem = ""
        for attempt in range(cfg.max_retries + 1):
            retry_after = None
            try:
                self.requests_sent += 1
                request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=cfg.timeout_s) as response:
                    return _content(response.read(), self.url)
            except urllib.error.HTTPError as err:  # before URLError: it is a subclass
                detail = err.read()[:200].decode("utf-8", "replace")
                if err.code != 429 and err.code < 500:
                    raise LLMError(f"{self.url}: HTTP {err.code} {err.reason}: {detail}") from None
                problem, retry_after = f"HTTP {err.code} {err.reason}", err.headers.get("Retry-After")
            except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as err:
                problem = f"{type(err).__name__}: {getattr(err, 'reason', err)}"
            if attempt < cfg.max_retries:
                self.sleep(self._delay(attempt, retry_after))
        raise LLMError(f"{self.url}: no answer after {cfg.max_retries + 1} attempts ({problem})")

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        # No jitter: one client runs at a time here, and fixed waits keep runs reproducible.
        wait = self.config.backoff_s * 2**attempt
        if retry_after is not None:
            try:
                wait = max(wait, float(retry_after))
            except ValueError:
                pass  # an HTTP-date Retry-After: keep the exponential wait
        return min(wait, self.config.max_backoff_s)


def _content(raw: bytes, url: str) -> str:
    try:
        content = json.loads(raw)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise LLMError(f"{url}: not a chat-completions response: {raw[:200]!r}") from None
    if not isinstance(content, str):
        raise LLMError(f"{url}: the response has no text content")
    return content


# ----------------------------------------------------------------------------- JSON repair

_OPEN_QUOTES = {'"': '"\u201d', "\u201c": '"\u201d', "'": "'\u2019", "\u2018": "'\u2019"}  # opener -> closers
_PY_LITERALS = {"True": "true", "False": "false", "None": "null"}


def repair_json(text: str) -> Any:
    """Parse model output as JSON, repairing the usual damage; JSONRepairError when nothing parses."""
    try:
        return json.loads(text, strict=False)  # strict=False: raw newlines inside strings are fine
    except json.JSONDecodeError:
        return _repaired(text)


def _repaired(text: str) -> Any:
    """The first parse of the text's JSON after undoing fences, prose, trailing commas, odd quotes ..."""
    starts = [i for i, c in enumerate(text) if c in "[{"][:50]  # prose around the JSON may hold brackets too
    problem = "no '[' or '{' in the output"
    for start in starts:
        fixed = _normalise(text, start)
        if fixed is None:
            problem = "the JSON is not closed (truncated output?)"
            continue
        try:
            return json.loads(fixed, strict=False)
        except json.JSONDecodeError as err:
            problem = f"{err.msg} at char {err.pos}"
    raise JSONRepairError(f"could not repair model output into JSON ({problem}): {text[:80]!r}")


def _closes(text: str, i: int) -> bool:
    """A quote closes a string when what follows it is JSON structure, not more words (an apostrophe)."""
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i == len(text) or text[i] in ",:]}"


def _normalise(text: str, start: int) -> str | None:
    """Rewrite the JSON value that opens at `start` into strict JSON; None when it never closes."""
    out, depth, i = [], 0, start
    while i < len(text):
        c = text[i]
        if c in _OPEN_QUOTES:  # a string with any quote style becomes a double-quoted one
            closers, j, chars = _OPEN_QUOTES[c], i + 1, []
            while j < len(text) and not (text[j] in closers and _closes(text, j + 1)):
                if text[j] == "\\" and j + 1 < len(text):
                    chars.append("'" if text[j + 1] == "'" else text[j : j + 2])  # \' is not a JSON escape
                    j += 2
                    continue
                chars.append('\\"' if text[j] == '"' else text[j])
                j += 1
            out.append('"' + "".join(chars) + '"')
            i = j + 1
            continue
        if c.isalpha() or c == "_":  # bare words: Python literals, unquoted keys, true/false/null
            j = i
            while j < len(text) and (text[j].isalnum() or text[j] == "_"):
                j += 1
            word = text[i:j]
            out.append(_PY_LITERALS.get(word) or (f'"{word}"' if _next_is_colon(text, j) else word))
            i = j
            continue
        if c == "," and _next_closes_container(text, i + 1):
            i += 1  # a trailing comma
            continue
        depth += c in "[{"
        depth -= c in "]}"
        out.append(c)
        i += 1
        if depth == 0:
            return "".join(out)
    return None


def _next_is_colon(text: str, i: int) -> bool:
    while i < len(text) and text[i] in " \t":
        i += 1
    return i < len(text) and text[i] == ":"


def _next_closes_container(text: str, i: int) -> bool:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i < len(text) and text[i] in "]}"


# ----------------------------------------------------------------------------- schema


def validate_pairs(value: Any, families: tuple[str, ...] = LLM_FAMILIES) -> list[dict[str, str]]:
    """A non-empty list of {question, answer, family} (a one-list wrapper object is unwrapped)."""
    if isinstance(value, dict):
        lists = [v for v in value.values() if isinstance(v, list)]
        value = lists[0] if len(lists) == 1 else [value] if "question" in value else value
    if not isinstance(value, list) or not value:
        raise SchemaError(f"expected a non-empty JSON list of {{question, answer, family}}, got {type(value).__name__}")
    pairs = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise SchemaError(f"item {index}: expected an object, got {type(item).__name__}")
        for name in ("question", "answer", "family"):
            if not isinstance(item.get(name), str) or not item[name].strip():
                raise SchemaError(f"item {index}: {name!r} must be a non-empty string")
        family = item["family"].strip().lower().replace(" ", "_").replace("/", "_").replace("-", "_")
        family = _FAMILY_ALIASES.get(family, family)
        if family not in families:
            raise SchemaError(f"item {index}: family {item['family']!r} is not one of {list(families)}")
        pairs.append({"question": item["question"].strip(), "answer": item["answer"].strip(), "family": family})
    return pairs


# ----------------------------------------------------------------------------- the backend

SYSTEM_PROMPT = (
    "You write instruction-tuning data for a model that listens to music clips. You are given facts about one "
    "clip as JSON and write question/answer pairs as a listener who hears the clip would answer them."
)
PROMPT = """Facts about a music clip (JSON):
{labels}

Write exactly {mir} MIR question/answer pairs, {captions} captioning pair(s) and {reasoning} reasoning pair(s).
- "mir_qa": factual questions with definite answers about the facts above (key, tempo, meter, instruments, genre, ...).
  State each value exactly as spelled above (a key like "F# minor"; a tempo as an integer, e.g. "about 96 BPM";
  a meter like "6/8"; instrument names as listed). Vary the phrasing of questions and answers.
- "captioning": one rich description of the clip combining all the audible facts (tempo feel, key and mode, meter,
  instrumentation, texture, dynamics, style).
- "reasoning": questions that need musical background knowledge beyond a single fact (mood, dancing, how to play
  along, arranging, listening scenarios); never a lookup of one attribute.
Rules: answer as someone hearing the music; never mention metadata, labels, JSON or "provided information"; never
refuse or hedge; never ask about the title, artist, composer, album, movement or duration.
Reply with only a JSON array of objects with the keys "question", "answer" and "family"."""
RETRY_PROMPT = "That reply was not usable ({error}). Reply again with only the JSON array, nothing else."


def prompt_labels(labels: dict[str, Any]) -> str:
    """The labels as compact JSON: without `abc` (its pair is added verbatim), times rounded to ms."""
    def rounded(value: Any) -> Any:
        if isinstance(value, float):
            return round(value, 3)
        if isinstance(value, list):
            return [rounded(v) for v in value]
        if isinstance(value, dict):
            return {k: rounded(v) for k, v in value.items()}
        return value

    return json.dumps({k: rounded(v) for k, v in labels.items() if k != "abc"}, ensure_ascii=False)


@dataclass
class LLMGenerator:
    """Q/A pairs for one clip from an LLM, re-asked up to `attempts` times until the reply validates."""

    client: ChatClient
    mir_per_clip: int = 6
    captions: int = 1
    reasoning: int = 1
    transcriptions: int = 1
    attempts: int = 3
    seed: int = 0

    def messages(self, labels: dict[str, Any]) -> list[dict[str, str]]:
        user = PROMPT.format(labels=prompt_labels(labels), mir=self.mir_per_clip, captions=self.captions,
                             reasoning=self.reasoning)
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]

    def generate(self, clip: dict[str, Any]) -> list[dict[str, str]]:
        labels = clip.get("labels") or {}
        if not Facts.from_labels(labels).audible():  # checks the labels too; nothing to ask an LLM about
            return []
        messages, problem = self.messages(labels), ""
        for _ in range(self.attempts):
            reply = self.client.complete(messages)
            try:
                pairs = validate_pairs(repair_json(reply))
                break
            except (JSONRepairError, SchemaError) as err:
                problem = str(err)
                messages = [*messages, {"role": "assistant", "content": reply},
                            {"role": "user", "content": RETRY_PROMPT.format(error=problem)}]
        else:
            raise SchemaError(f"no valid reply in {self.attempts} attempts; last: {problem}")
        transcription = TemplateGenerator(mir_per_clip=0, captions=0, reasoning=0, transcriptions=self.transcriptions,
                                          seed=self.seed)
        return pairs + transcription.generate(clip)
