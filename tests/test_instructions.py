"""Instruction data: template families, label spelling, leakage filters, JSON repair, the LLM client against a
local canned server (127.0.0.1 only), and preprocessing/instruct.py end to end with resume."""

import importlib.util
import json
import random
import re
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from llark.instructions import (
    BANNED_PHRASES, CAPTION_QUESTIONS, INAUDIBLE_QUESTION, MIR_ASKS, ClipsFormatError, Facts, LabelError,
    TemplateGenerator, filter_pairs, read_clips, scale_notes,
)
from llark.jsonl import sole_writer
from llark.llm_client import (
    ChatClient, JSONRepairError, LLMConfig, LLMError, LLMGenerator, SchemaError, repair_json, validate_pairs,
)
from tests.conftest import REPO

FULL = {"key": "F# minor", "tempo": 96.0, "meter": "6/8", "instruments": ["Acoustic Grand Piano", "Fretless Bass", "Drums"],
        "beats": [0.0, 0.625], "downbeats": [0.0, 1.875], "chords": [{"start": 0.0, "end": 1.875, "chord": "F#:min"}],
        "genre": "waltz", "dynamics": "medium", "abc": "X:1\nM:6/8\nL:1/8\nK:D\nA2B c2d|e3 d3|]",
        "melody_instrument": "Flute"}
GM = ("Acoustic Grand Piano", "Fretless Bass", "Drums", "Violin", "Flute", "Trumpet", "Acoustic Guitar (nylon)", "Cello",
      "Alto Sax", "Electric Piano 1", "String Ensemble 1", "Choir Aahs", "Marimba", "Lead 1 (square)")
KEY_IN_TEXT = re.compile(r"\b([A-G][#b]?) (major|minor)\b", re.IGNORECASE)  # how a lenient key evaluator reads
NUMBER = re.compile(r"\d+(?:\.\d+)?")
METER_IN_TEXT = re.compile(r"\b\d+/\d+\b")


def clip(labels, clip_id="t-start0.000-end25.000"):
    return {"clip_id": clip_id, "labels": labels}


def random_labels(rng):
    labels = {"key": f"{rng.choice(['C', 'C#', 'Db', 'D', 'Eb', 'E', 'F', 'F#', 'G', 'Ab', 'A', 'Bb', 'B'])} "
                     f"{rng.choice(['major', 'minor'])}",
              "tempo": round(rng.uniform(50, 200), 2),
              "meter": rng.choice(["2/4", "3/4", "4/4", "6/8", "9/8", "12/8", "5/4"]),
              "instruments": rng.sample(GM, rng.randint(1, 5))}
    for name, values in (("genre", ["waltz", "jig", "reel", "rock", "jazz"]),
                         ("dynamics", ["soft", "medium", "loud", "crescendo", "diminuendo"]),
                         ("melody_instrument", ["Flute", "Violin", "Trumpet"])):
        if rng.random() < 0.5:
            labels[name] = rng.choice(values)
    if rng.random() < 0.3:
        labels["abc"] = "X:1\nM:4/4\nL:1/8\nK:G\nGABc d2B2|"
    return {k: v for k, v in labels.items() if rng.random() < 0.85}  # any label may be missing


@pytest.fixture(scope="module")
def many():
    rng = random.Random(0)
    return [clip(random_labels(rng), f"r{i:03d}-start0.000-end25.000") for i in range(300)]


def questions_of(*facts):
    return {q for fact in facts for ask in MIR_ASKS[fact] for q in ask.questions}


# ----------------------------------------------------------------------------- template generator


def test_every_family_from_full_labels_and_counts_configurable():
    pairs = TemplateGenerator(seed=0).generate(clip(FULL))
    families = [p["family"] for p in pairs]
    assert families.count("mir_qa") == 6 and families.count("captioning") == 1
    assert families.count("reasoning") == 1 and families.count("transcription") == 1
    assert all(p["question"] and p["answer"] for p in pairs)
    assert all(set(p) == ({"question", "answer", "family", "topic"} if p["family"] == "mir_qa"
                          else {"question", "answer", "family"}) for p in pairs)
    more = TemplateGenerator(mir_per_clip=10, captions=2, reasoning=3, seed=0).generate(clip(FULL))
    assert [p["family"] for p in more].count("mir_qa") == 10 and [p["family"] for p in more].count("reasoning") == 3
    assert len({p["question"] for p in more}) == len(more)  # no question twice in one clip
    mir = [p for p in pairs if p["family"] == "mir_qa"]
    for fact in ("key", "tempo", "meter", "instruments", "genre"):  # the scored facts come first in every clip
        assert any(p["question"] in questions_of(fact) for p in mir), fact
    for pair in mir:  # the topic is the fact the question asks about (what a curriculum selects)
        assert pair["question"] in questions_of(pair["topic"]), pair


def test_key_answers_spell_the_key_and_parse():
    for key in ("F# minor", "Bb major", "A minor", "Eb major", "C# minor"):
        for seed in range(15):
            for pair in TemplateGenerator(mir_per_clip=4, seed=seed).generate(clip({"key": key})):
                found = KEY_IN_TEXT.search(pair["answer"])
                assert found and found.group(0).lower() == key.lower(), pair
                if pair["family"] == "mir_qa":
                    assert key in pair["answer"], pair  # exactly as the label spells it


def test_tempo_answers_lead_with_the_integer_bpm():
    for tempo, bpm in ((96.0, "96"), (95.7, "96"), (96.5, "97"), (139.5, "140"), (60, "60")):
        for seed in range(15):
            for pair in TemplateGenerator(mir_per_clip=3, seed=seed).generate(clip({"tempo": tempo})):
                if pair["family"] == "mir_qa":
                    assert NUMBER.search(pair["answer"]).group(0) == bpm and ("BPM" in pair["answer"]
                                                                             or "beats per minute" in pair["answer"]), pair


def test_meter_and_instrument_answers_spell_the_labels():
    for seed in range(20):
        for pair in TemplateGenerator(mir_per_clip=3, seed=seed).generate(clip({"meter": "6/8"})):
            if pair["family"] == "mir_qa":
                assert METER_IN_TEXT.search(pair["answer"]).group(0) == "6/8", pair
        instruments = ["Acoustic Grand Piano", "Fretless Bass", "Drums"]
        for pair in TemplateGenerator(mir_per_clip=4, seed=seed).generate(clip({"instruments": instruments})):
            if pair["family"] != "reasoning":  # reasoning may suggest an instrument to add
                assert all(name in pair["answer"] for name in instruments), pair
    answers = {p["answer"] for s in range(20)
               for p in TemplateGenerator(seed=s).generate(clip({"instruments": instruments}))}
    assert any("Acoustic Grand Piano, Fretless Bass and Drums" in a for a in answers)  # joined naturally


def test_captions_combine_the_facts():
    for seed in range(10):
        (cap,) = [p["answer"] for p in TemplateGenerator(seed=seed).generate(clip(FULL)) if p["family"] == "captioning"]
        for value in ("F# minor", "96 ", "6/8", "Acoustic Grand Piano", "Fretless Bass", "Drums", "waltz", "medium",
                      "Flute"):
            assert value in cap, (value, cap)
        assert KEY_IN_TEXT.search(cap).group(0) == "F# minor"


def test_no_leakage_and_no_lowercase_a_major(many):
    generator = TemplateGenerator(mir_per_clip=8, captions=1, reasoning=2, seed=3)
    for c in many:
        raw = generator.generate(c)
        kept, dropped = filter_pairs(raw)
        assert kept == raw and not dropped  # the templates never trip LLark's filters
        for pair in raw:
            assert not INAUDIBLE_QUESTION.search(pair["question"])
            assert not any(phrase in pair["answer"].lower() for phrase in BANNED_PHRASES)
            # a case-insensitive key parser would read "a minor" as A minor
            assert not re.search(r"\ba (major|minor)\b", pair["answer"]), pair


def test_first_key_and_bpm_in_every_answer_are_the_clip_own(many):
    generator = TemplateGenerator(mir_per_clip=8, reasoning=3, seed=1)
    for c in many:
        labels = c["labels"]
        for pair in generator.generate(c):
            found = KEY_IN_TEXT.search(pair["answer"])
            if found and pair["family"] in ("mir_qa", "reasoning") and "chord" not in pair["question"].lower():
                assert found.group(0).lower() == labels["key"].lower(), pair
            if "tempo" in labels and "BPM" in pair["answer"] and pair["family"] == "mir_qa":
                assert NUMBER.search(pair["answer"]).group(0) == str(Facts(tempo=labels["tempo"]).bpm), pair


def test_determinism_and_seed_changes_pairs(many):
    a = [TemplateGenerator(seed=7).generate(c) for c in many[:50]]
    assert a == [TemplateGenerator(seed=7).generate(c) for c in many[:50]]
    b = [TemplateGenerator(seed=8).generate(c) for c in many[:50]]
    assert sum(x != y for x, y in zip(a, b)) > 40
    # more MIR pairs leave the captions and reasoning of a clip as they were
    full = clip(FULL)
    other = [p for p in TemplateGenerator(mir_per_clip=2, seed=7).generate(full) if p["family"] != "mir_qa"]
    assert other == [p for p in TemplateGenerator(mir_per_clip=9, seed=7).generate(full) if p["family"] != "mir_qa"]


def test_variety_of_phrasings(many):
    pairs = [p for c in many for p in TemplateGenerator(mir_per_clip=8, seed=0).generate(c)]
    questions = {p["question"] for p in pairs}
    for fact in ("key", "tempo", "meter", "instruments"):
        assert len(questions & questions_of(fact)) >= 10, fact
    key_answers = {p["answer"].replace(c["labels"]["key"], "KEY").replace(c["labels"]["key"].split()[0], "TONIC")
                   for c in many for p in TemplateGenerator(mir_per_clip=8, seed=0).generate(c)
                   if p["question"] in questions_of("key")}
    assert len(key_answers) >= 8  # distinct answer phrasings once the key itself is masked
    assert len({p["question"] for p in pairs if p["family"] == "captioning"}) >= 15
    assert len(CAPTION_QUESTIONS) >= 25
    assert len({p["answer"] for p in pairs if p["family"] == "captioning"}) == len(
        [p for p in pairs if p["family"] == "captioning"])
    assert len({p["question"] for p in pairs if p["family"] == "reasoning"}) >= 15


def test_missing_labels_give_no_questions_about_them():
    generators = [TemplateGenerator(mir_per_clip=8, reasoning=3, seed=s) for s in range(30)]
    pairs = [p for g in generators for p in g.generate(clip({"tempo": 120.0}))]
    about_others = questions_of("key", "mode", "meter", "instruments", "instrument_count", "drums", "genre", "melody",
                                "chords")
    assert pairs and not {p["question"] for p in pairs} & about_others
    for pair in pairs:
        assert not KEY_IN_TEXT.search(pair["answer"]) and not METER_IN_TEXT.search(pair["answer"])
        assert not any(name in pair["answer"] for name in GM), pair
    assert TemplateGenerator().generate(clip({})) == []
    assert TemplateGenerator().generate(clip({"beats": [0.0, 0.5]})) == []  # nothing to ask about


def test_transcription_only_with_abc_and_without_inaudible_fields():
    with_abc = TemplateGenerator(seed=0).generate(clip(FULL))
    (pair,) = [p for p in with_abc if p["family"] == "transcription"]
    assert pair["answer"] == FULL["abc"] and "ABC" in pair["question"]
    no_abc = {k: v for k, v in FULL.items() if k != "abc"}
    assert not [p for p in TemplateGenerator(seed=0).generate(clip(no_abc)) if p["family"] == "transcription"]
    titled = dict(FULL, abc="X:1\nT:The Metadata Reel\nC:Trad.\nM:6/8\nL:1/8\nK:D\nA2B c2d|")
    (pair,) = [p for p in TemplateGenerator(seed=0).generate(clip(titled)) if p["family"] == "transcription"]
    assert pair["answer"] == "X:1\nM:6/8\nL:1/8\nK:D\nA2B c2d|"  # title and composer are not audible
    assert not [p for p in TemplateGenerator(transcriptions=0).generate(clip(FULL)) if p["family"] == "transcription"]


@pytest.mark.parametrize("labels, message", [
    ({"key": "H major"}, "label 'key'"), ({"key": "f# minor"}, "label 'key'"), ({"tempo": "fast"}, "label 'tempo'"),
    ({"tempo": True}, "label 'tempo'"), ({"meter": "6-8"}, "label 'meter'"),
    ({"instruments": "Piano"}, "label 'instruments'"),
    ({"genre": ""}, "label 'genre'"), ({"chords": [{"chord": "Q:maj"}]}, "label 'chords'"),
])
def test_bad_labels_are_named(labels, message):
    with pytest.raises(LabelError, match=message):
        TemplateGenerator().generate(clip(labels))


def test_music_helpers():
    assert scale_notes("F#", "minor") == ["F#", "G#", "A", "B", "C#", "D", "E"]
    assert scale_notes("Eb", "major") == ["Eb", "F", "G", "Ab", "Bb", "C", "D"]
    assert Facts(tempo=96.5).bpm == 97 and Facts(tempo=75.4).feel == "slow" and Facts(tempo=150).feel == "fast"


def test_filters_drop_and_count():
    pairs = [{"question": "What key is this in?", "answer": "It is in D major.", "family": "mir_qa"}]
    pairs += [{"question": "What key?", "answer": f"Well, {p} it is D major.", "family": "mir_qa"} for p in
              ("based on the provided metadata", "As an AI, I think", "I cannot determine whether", "I\u2019m sorry,")]
    pairs += [{"question": q, "answer": "Something.", "family": "mir_qa"} for q in
              ("What is the title of this song?", "Who is the artist?", "Which composer wrote this?",
               "What album is this from?", "Which movement is this?", "What is the duration?", "How long is this track?")]
    kept, dropped = filter_pairs(pairs)
    assert kept == pairs[:1] and dropped == {"banned_phrase": 4, "inaudible_question": 7}


def test_read_clips_errors_name_file_and_line(tmp_path):
    path = tmp_path / "clips.jsonl"
    path.write_text('{"clip_id": "a", "labels": {}}\n\n{not json\n')
    with pytest.raises(ClipsFormatError, match=r"clips\.jsonl:3: not valid JSON"):
        read_clips(path)
    path.write_text('{"clip_id": "a"}\n{"clip_id": "a"}\n')
    with pytest.raises(ClipsFormatError, match=r"clips\.jsonl:2: duplicate clip_id 'a' \(first on line 1\)"):
        read_clips(path)
    path.write_text('{"labels": {}}\n')
    with pytest.raises(ClipsFormatError, match=r"clips\.jsonl:1: missing or empty 'clip_id'"):
        read_clips(path)


# ----------------------------------------------------------------------------- JSON repair and schema

GOOD = [{"question": "What key is this in?", "answer": "It's in D major.", "family": "mir_qa"}]


@pytest.mark.parametrize("text, expected", [
    (json.dumps(GOOD), GOOD),
    ("```json\n" + json.dumps(GOOD) + "\n```", GOOD),
    ("Sure! Here are the pairs [1 of 1]:\n" + json.dumps(GOOD) + "\nHope this helps!", GOOD),
    ('[{"question": "What key is this in?", "answer": "It\'s in D major.", "family": "mir_qa",},]', GOOD),
    ("[{'question': 'What key is this in?', 'answer': 'It's in D major.', 'family': 'mir_qa'}]", GOOD),
    ('[{question: "What key is this in?", answer: "It\'s in D major.", family: "mir_qa"}]', GOOD),
    ('[{\u201cquestion\u201d: \u201cWhat key is this in?\u201d, \u201canswer\u201d: \u201cIt\'s in D major.\u201d, '
     '\u201cfamily\u201d: \u201cmir_qa\u201d}]', GOOD),
    ('{"ok": True, "missing": None, "n": 1e3}', {"ok": True, "missing": None, "n": 1000.0}),
    ('[{"answer": "line one\nline two"}]', [{"answer": "line one\nline two"}]),
    ('[{"answer": "He said "hi" loudly", "family": "x"}]', [{"answer": 'He said "hi" loudly', "family": "x"}]),
])
def test_json_repair_table(text, expected):
    assert repair_json(text) == expected


@pytest.mark.parametrize("text", ["I'm sorry, I cannot help with that.", '[{"question": "a", "answer": "b"', "", "[}"])
def test_json_repair_gives_up_clearly(text):
    with pytest.raises(JSONRepairError, match="could not repair"):
        repair_json(text)


def test_validate_pairs():
    pair = {"question": " Q? ", "answer": "A.", "family": "MIR Q/A"}
    assert validate_pairs([pair]) == [{"question": "Q?", "answer": "A.", "family": "mir_qa"}]
    assert validate_pairs({"qa": [dict(pair, family="Captioning")]})[0]["family"] == "captioning"
    single = validate_pairs(dict(pair, family="reasoning", extra=1))  # one object, extra keys dropped
    assert single == [{"question": "Q?", "answer": "A.", "family": "reasoning"}]
    for bad, message in (([], "non-empty"), ([{"question": "q", "family": "mir_qa"}], "item 0: 'answer'"),
                         ([pair, "text"], "item 1: expected an object"),
                         ([dict(pair, family="transcription")], "not one of")):
        with pytest.raises(SchemaError, match=message):
            validate_pairs(bad)


# ----------------------------------------------------------------------------- LLM client and backend


class CannedServer:
    """A chat-completions stand-in on 127.0.0.1, port 0; `respond(body, n)` -> (status, content, headers).

    At most `budget` requests are answered; later ones get 503 and are counted, so a test sees runaway loops.
    """

    def __init__(self, respond, budget=20):
        self.respond, self.budget, self.requests = respond, budget, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                status, content, headers = (503, None, {}) if len(outer.requests) > outer.budget else \
                    outer.respond(body, len(outer.requests))
                reply = {"choices": [{"message": {"role": "assistant", "content": content}}]}
                data = json.dumps(reply if status == 200 else {"error": "canned"}).encode()
                try:
                    self.send_response(status)
                    headers = {**headers, "Content-Type": "application/json", "Content-Length": str(len(data))}
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up first (the timeout test)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self):
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture(autouse=True)
def local_only(monkeypatch):
    for name in ("no_proxy", "NO_PROXY"):  # never route the test traffic through a proxy
        monkeypatch.setenv(name, "*")


def test_client_retries_with_backoff_then_succeeds(monkeypatch):
    script = {1: (500, None, {}), 2: (429, None, {"Retry-After": "3"}), 3: (200, "hello", {})}
    waits = []
    monkeypatch.setenv("TEST_LLM_KEY", "secret")
    with CannedServer(lambda body, n: script[n]) as server:
        client = ChatClient(LLMConfig(server.base_url, "test-model", api_key_env="TEST_LLM_KEY", backoff_s=0.5,
                                      max_retries=3, timeout_s=5, seed=1), sleep=waits.append)
        assert client.complete([{"role": "user", "content": "hi"}]) == "hello"
    assert waits == [0.5, 3.0] and len(server.requests) == 3  # doubling, and Retry-After honoured
    first = server.requests[0]
    assert first["path"] == "/v1/chat/completions" and first["auth"] == "Bearer secret"
    assert first["body"]["model"] == "test-model" and first["body"]["seed"] == 1


def test_client_gives_up_clearly(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with CannedServer(lambda body, n: (400, None, {})) as server:
        client = ChatClient(LLMConfig(server.base_url, "m", max_retries=3), sleep=lambda s: None)
        with pytest.raises(LLMError, match="HTTP 400"):
            client.complete([])
    assert len(server.requests) == 1 and server.requests[0]["auth"] is None  # 4xx is not retried
    with CannedServer(lambda body, n: (502, None, {})) as server:
        waits = []
        with pytest.raises(LLMError, match=r"no answer after 3 attempts \(HTTP 502"):
            ChatClient(LLMConfig(server.base_url, "m", max_retries=2, backoff_s=1, max_backoff_s=1.5),
                       sleep=waits.append).complete([])
    assert waits == [1, 1.5] and len(server.requests) == 3
    with socket.socket() as s:  # a port nothing listens on: connection refused, retried, then a clear error
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(LLMError, match="no answer after 2 attempts"):
        ChatClient(LLMConfig(f"http://127.0.0.1:{port}/v1", "m", max_retries=1), sleep=lambda s: None).complete([])
    with CannedServer(lambda body, n: (time.sleep(0.4), (200, "late", {}))[1]) as server:
        started = time.perf_counter()
        with pytest.raises(LLMError, match="timed out"):
            ChatClient(LLMConfig(server.base_url, "m", max_retries=0, timeout_s=0.1)).complete([])
        assert time.perf_counter() - started < 0.35  # the timeout bounds the wait
    with pytest.raises(ValueError, match="http"):
        ChatClient(LLMConfig("127.0.0.1:8000", "m"))


def run_script(*args):
    spec = importlib.util.spec_from_file_location("instruct_script", REPO / "preprocessing" / "instruct.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main([str(a) for a in args])


def canned_llm():
    """Replies chosen by the clip's genre, which the prompt carries in its labels JSON."""
    good = [{"question": "What key is this in?", "answer": "It is in F# minor.", "family": "mir_qa"},
            {"question": "Describe this music.", "answer": "A wistful piano waltz in F# minor.", "family": "captioning"},
            {"question": "What mood does it convey?", "answer": "Wistful, from the minor mode.", "family": "reasoning"},
            {"question": "What key?", "answer": "Based on the provided metadata, F# minor.", "family": "mir_qa"},
            {"question": "Who is the composer?", "answer": "Nobody knows.", "family": "mir_qa"}]
    broken = ("Here you go!\n```json\n[{'question': 'What key is this in?', 'answer': 'It's in D major.', "
              "'family': 'mir_qa',},\n {question: \"Describe it.\", answer: \"A calm piece.\", "
              "family: \"captioning\"},]\n```")
    retried = []

    def respond(body, n):
        prompt = body["messages"][1]["content"]
        if '"genre": "good"' in prompt:
            return 200, json.dumps(good), {}
        if '"genre": "broken"' in prompt:
            return 200, broken, {}
        if '"genre": "retry"' in prompt:
            retried.append(n)
            return (500, None, {}) if len(retried) == 1 else (200, json.dumps(good[:3]), {})
        # "never": no JSON at all, then (re-asked) JSON that fails the schema
        return 200, ("I'm sorry, I cannot help with that." if len(body["messages"]) == 2 else '[{"question": "q"}]'), {}

    return respond


def test_llm_backend_end_to_end_with_repair_retry_and_failure(tmp_path, monkeypatch, capsys):
    clips = tmp_path / "clips.jsonl"
    genres = ["good", "broken", "retry", "never"]
    clips.write_text("".join(json.dumps(clip(dict(FULL, genre=g), f"{g}-start0.000-end25.000")) + "\n" for g in genres))
    out = tmp_path / "qa.jsonl"
    monkeypatch.setenv("TEST_LLM_KEY", "secret")
    with CannedServer(canned_llm(), budget=12) as server:
        args = ["--clips", clips, "--out", out, "--backend", "llm", "--base-url", server.base_url, "--model", "test-model",
                "--api-key-env", "TEST_LLM_KEY", "--retries", "2", "--backoff", "0.001", "--attempts", "2", "--no-progress"]
        assert run_script(*args) == 0  # one clip failed, the others have Q/A
        assert len(server.requests) == 1 + 1 + 2 + 2  # good, broken (repaired), retry (500 then ok), never (2 attempts)
        summary = json.loads(capsys.readouterr().err.split("  (failures")[0].strip().splitlines()[-1])
        assert summary["generated"] == 3 and summary["failed"] == 1
        assert summary["dropped"] == {"banned_phrase": 1, "inaudible_question": 1}
        rows = {r["clip_id"].split("-")[0]: r["qa"] for r in map(json.loads, out.read_text().splitlines())}
        assert set(rows) == {"good", "broken", "retry"}
        assert [p["family"] for p in rows["good"]] == ["mir_qa", "captioning", "reasoning", "transcription"]
        assert rows["good"][-1]["answer"] == FULL["abc"]  # transcriptions come verbatim from the label
        assert rows["broken"][0] == {"question": "What key is this in?", "answer": "It's in D major.", "family": "mir_qa"}
        (failure,) = map(json.loads, (tmp_path / "qa.failures.jsonl").read_text().splitlines())
        assert failure["clip_id"].startswith("never") and "no valid reply in 2 attempts" in failure["error"]
        assert "clips.jsonl:4" in failure["error"]
        first = server.requests[0]
        assert first["auth"] == "Bearer secret" and first["body"]["model"] == "test-model"
        labels_sent = json.loads(first["body"]["messages"][1]["content"].split("\n")[1])
        assert labels_sent["key"] == "F# minor" and "abc" not in labels_sent  # labels as JSON, the ABC kept out
        assert "metadata" in first["body"]["messages"][1]["content"]  # the prompt forbids mentioning it
        # A re-run asks only about the clip that failed.
        assert run_script(*args) == 0
        assert len(server.requests) == 6 + 2
    assert json.loads(capsys.readouterr().err.split("  (failures")[0].strip().splitlines()[-1])["kept"] == 3


def test_llm_run_stops_when_the_endpoint_is_dead(tmp_path, capsys):
    clips = tmp_path / "clips.jsonl"
    clips.write_text("".join(json.dumps(clip(FULL, f"c{i}-start0.000-end25.000")) + "\n" for i in range(4)))
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert run_script("--clips", clips, "--out", tmp_path / "qa.jsonl", "--backend", "llm", "--model", "m",
                      "--base-url", f"http://127.0.0.1:{port}/v1", "--retries", "0", "--give-up-after", "2",
                      "--no-progress") == 1
    err = capsys.readouterr().err
    assert "stopping: 2 clips in a row failed at the endpoint" in err
    summary = json.loads(err.split("  (failures")[0].strip().splitlines()[-1])
    assert summary["failed"] == 2 and summary["not_tried"] == 2 and summary["generated"] == 0


def test_llm_generator_skips_clips_without_facts():
    client = ChatClient(LLMConfig("http://127.0.0.1:9/v1", "m", max_retries=0))
    assert LLMGenerator(client).generate(clip({"beats": [0.0]})) == []  # no request is made
    assert client.requests_sent == 0


# ----------------------------------------------------------------------------- the script


def test_script_end_to_end_resumes_and_records_failures(tmp_path, many):
    clips = tmp_path / "clips.jsonl"
    rows = many[:40] + [clip({"key": "H major"}, "bad-start0.000-end25.000"), clip({}, "empty-start0.000-end25.000")]
    clips.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "qa.jsonl"

    def script(*extra):
        return subprocess.run([sys.executable, str(REPO / "preprocessing" / "instruct.py"), "--clips", str(clips),
                               "--out", str(out), "--no-progress", *extra], capture_output=True, text=True, timeout=60)

    first = script("--seed", "5")
    assert first.returncode == 0, first.stderr  # two clips failed, recorded; the others were written
    summary = json.loads(first.stderr.split("  (failures")[0].strip().splitlines()[-1])
    assert summary["generated"] == 40 and summary["failed"] == 2 and summary["dropped"] == {}
    written = out.read_text()
    lines = [json.loads(line) for line in written.splitlines()]
    assert [r["clip_id"] for r in lines] == [r["clip_id"] for r in many[:40]]  # clips.jsonl order
    assert lines[0]["qa"] == TemplateGenerator(seed=5).generate(many[0])
    failures = {f["clip_id"]: f["error"] for f in map(json.loads, (tmp_path / "qa.failures.jsonl").read_text().splitlines())}
    assert "clips.jsonl:41: LabelError: label 'key'" in failures["bad-start0.000-end25.000"]
    assert "no Q/A pairs" in failures["empty-start0.000-end25.000"]
    assert not (tmp_path / "qa.jsonl.partial").exists()

    again = script("--seed", "5")
    assert json.loads(again.stderr.split("  (failures")[0].strip().splitlines()[-1])["kept"] == 40
    assert out.read_text() == written  # idempotent

    # An interrupted run: 33 clips in --out, one more in the partial file, which ends in a torn line.
    out.write_text("".join(line + "\n" for line in written.splitlines()[:33]))
    (tmp_path / "qa.jsonl.partial").write_text(written.splitlines()[33] + "\n" + written.splitlines()[34][:20])
    resumed = script("--seed", "5")
    summary = json.loads(resumed.stderr.split("  (failures")[0].strip().splitlines()[-1])
    assert summary["kept"] == 34 and summary["generated"] == 6 and out.read_text() == written

    clips.write_text("".join(json.dumps(r) + "\n" for r in many[:3]))
    fixed = script("--seed", "5")
    assert fixed.returncode == 0 and not (tmp_path / "qa.failures.jsonl").exists()  # stale failures removed
    assert len(out.read_text().splitlines()) == 3  # qa.jsonl follows clips.jsonl
    assert json.loads(fixed.stderr.strip().splitlines()[-1])["stale_removed"] == 37

    clips.write_text('{"clip_id": "a"}\n{"clip_id": \n')
    broken = script()
    assert broken.returncode == 2 and "clips.jsonl:2: not valid JSON" in broken.stderr


def test_a_second_run_on_the_same_output_stops_and_leaves_the_first_runs_work_alone(tmp_path, capsys):
    clips = tmp_path / "clips.jsonl"
    clips.write_text("".join(json.dumps(clip(FULL, f"c{i}-start0.000-end25.000")) + "\n" for i in range(2)))
    out, partial = tmp_path / "qa.jsonl", tmp_path / "qa.jsonl.partial"
    with sole_writer(out):  # a first run, still writing: one clip finished so far
        partial.write_text(json.dumps({"clip_id": "c0-start0.000-end25.000", "qa": [{"question": "q", "answer": "a",
                                                                                   "family": "mir_qa"}]}) + "\n")
        before = partial.read_bytes()
        assert run_script("--clips", clips, "--out", out, "--no-progress") == 2
        assert "qa.jsonl: another process is writing it" in capsys.readouterr().err
        assert partial.read_bytes() == before and not out.exists()
    assert run_script("--clips", clips, "--out", out, "--no-progress") == 0  # once the first is done: resumes
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["clip_id"] for r in rows] == ["c0-start0.000-end25.000", "c1-start0.000-end25.000"]
    assert rows[0]["qa"][0]["answer"] == "a" and not partial.exists()
