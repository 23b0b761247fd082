"""Rendered formats and label masks, token by token, for every template instance."""

import pytest

from llark.templates import AUDIO, BOS, EOS, TEMPLATES, get_template
from llark.tokenizer import IGNORE_INDEX, encode_segments
from tests.conftest import tiny_tokenizer

SYSTEM = "You are a music expert."


def text_of(segments):
    marks = {id(AUDIO): "<AUDIO>", id(BOS): "<s>", id(EOS): "</s>"}
    return "".join(marks.get(id(s.content), s.content) if not isinstance(s.content, str) else s.content
                   for s in segments)


@pytest.mark.parametrize("name, position, expected", [
    ("llama2", "before", "<s>[INST] <<SYS>>\nYou are a music expert.\n<</SYS>>\n\n<AUDIO>\nWhat key? [/INST] D minor</s>"),
    ("llama2", "after", "<s>[INST] <<SYS>>\nYou are a music expert.\n<</SYS>>\n\nWhat key?\n<AUDIO> [/INST] D minor</s>"),
    ("llark", "before", "You are a music expert.\n### Human: <AUDIO>\nWhat key?\n### Assistant: D minor\n###"),
    ("chatmusician", "before", "You are a music expert.\nHuman: <AUDIO>\nWhat key? </s> Assistant: D minor</s>"),
])
def test_rendered_formats(name, position, expected):
    segments = get_template(name).render("What key?", "D minor", audio_position=position, system=SYSTEM)
    assert text_of(segments) == expected


def test_llama2_without_system_and_without_audio():
    segments = TEMPLATES["llama2"].render("Write a reel.", "X:1", with_audio=False)
    assert text_of(segments) == "<s>[INST] Write a reel. [/INST] X:1</s>"
    prompt = TEMPLATES["chatmusician"].render("Write a reel.", None, with_audio=False)
    assert text_of(prompt) == "Human: Write a reel. </s> Assistant: "


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_label_mask_token_by_token(name):
    tokenizer, ids = tiny_tokenizer()
    template = TEMPLATES[name]
    answer = "The loudest instrument is the cello."
    segments = template.render("Which instrument is loudest in this clip?", answer, audio_position="after")
    input_ids, labels = encode_segments(tokenizer, ids, segments, num_frames=5)
    assert len(input_ids) == len(labels)
    # Expected: every token of the trained segments, in order, and nothing else.
    expected = []
    for segment in segments:
        if segment.content is AUDIO:
            piece = [ids.audio_start] + [ids.audio_patch] * 5 + [ids.audio_end]
        elif segment.content is BOS:
            piece = [ids.bos]
        elif segment.content is EOS:
            piece = [ids.eos]
        else:
            piece = tokenizer.encode(segment.content, add_special_tokens=False)
        expected += [(token, token if segment.trained else IGNORE_INDEX) for token in piece]
    assert list(zip(input_ids, labels)) == expected
    trained = [t for t, l in zip(input_ids, labels) if l != IGNORE_INDEX]
    decoded = tokenizer.decode(trained)
    assert decoded.startswith(answer)
    assert decoded.endswith("</s>" if template.add_eos else "\n###")
    assert input_ids.count(ids.audio_patch) == 5 and labels[input_ids.index(ids.audio_start)] == IGNORE_INDEX


def test_prompt_ends_where_the_answer_begins():
    """At inference the prompt is the training example minus the trained tokens."""
    tokenizer, ids = tiny_tokenizer()
    for template in TEMPLATES.values():
        full, labels = encode_segments(tokenizer, ids, template.render("Q?", "An answer."), num_frames=3)
        prompt, _ = encode_segments(tokenizer, ids, template.render("Q?", None), num_frames=3)
        first_label = next(i for i, l in enumerate(labels) if l != IGNORE_INDEX)
        assert full[:first_label] == prompt, template.name


def test_unknown_template_and_position():
    with pytest.raises(KeyError, match="unknown template"):
        get_template("alpaca")
    with pytest.raises(ValueError, match="audio_position"):
        TEMPLATES["llark"].render("Q", "A", audio_position="middle")
