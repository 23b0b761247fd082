"""One conversation-template object; the formats we train and serve in are instances of it.

A template turns (question, audio, answer) into segments: text that is only context, the audio
block, and the answer text that the loss is computed on. Token ids come from `llark.tokenizer`.

    template = TEMPLATES["llama2"]
    segments = template.render("What key is this in?", answer="D minor", audio_position="before")
"""

from __future__ import annotations

from dataclasses import dataclass

AUDIO = object()  # marks where the <audio_start> <audio>xT <audio_end> block goes
BOS = object()  # the tokenizer's beginning-of-sequence token
EOS = object()  # the tokenizer's end-of-sequence token


@dataclass(frozen=True)
class Segment:
    """A piece of an example: text or one of AUDIO/BOS/EOS, and whether the loss covers it."""

    content: object  # str, AUDIO, BOS or EOS
    trained: bool = False


@dataclass(frozen=True)
class ConversationTemplate:
    """A single-turn chat format, described by data rather than code.

    prompt = bos? + head + [audio + sep] question [sep + audio] + user_suffix + answer_prefix
    answer = answer + answer_suffix + eos?      (the loss covers the answer part)
    head   = head_format with {system_block} = system_format(system), or "" without a system sentence
    """

    name: str
    default_system: str
    system_format: str  # how a non-empty system sentence is written; "{system}" is replaced
    head_format: str  # what opens the user turn; "{system_block}" is replaced
    user_suffix: str
    answer_prefix: str
    answer_suffix: str
    audio_separator: str  # between the audio block and the question
    add_bos: bool
    add_eos: bool
    stop_strings: tuple[str, ...] = ()  # generation also stops when one of these appears

    def render(
        self,
        question: str,
        answer: str | None = None,
        audio_position: str = "before",
        system: str = "",
        with_audio: bool = True,
    ) -> list[Segment]:
        """Segments of one example; `answer=None` renders the prompt for generation."""
        if audio_position not in ("before", "after"):
            raise ValueError(f"audio_position must be 'before' or 'after', got {audio_position!r}")
        system = system or self.default_system
        segments: list[Segment] = []
        if self.add_bos:
            segments.append(Segment(BOS))
        system_block = self.system_format.format(system=system) if system else ""
        head = self.head_format.format(system_block=system_block)
        if with_audio and audio_position == "before":
            segments += [Segment(head), Segment(AUDIO), Segment(self.audio_separator + question + self.user_suffix)]
        elif with_audio:
            segments += [Segment(head + question + self.audio_separator), Segment(AUDIO), Segment(self.user_suffix)]
        else:
            segments.append(Segment(head + question + self.user_suffix))
        # The answer prefix (a space) is context, not a target: at inference it ends the prompt.
        if self.answer_prefix:
            segments.append(Segment(self.answer_prefix))
        if answer is None:
            return segments
        segments.append(Segment(answer + self.answer_suffix, trained=True))
        if self.add_eos:
            segments.append(Segment(EOS, trained=True))
        return segments


LLAMA2_CHAT = ConversationTemplate(
    # Llama-2-chat's own format: <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {answer} </s>
    name="llama2",
    default_system="",
    system_format="<<SYS>>\n{system}\n<</SYS>>\n\n",
    head_format="[INST] {system_block}",
    user_suffix=" [/INST]",
    answer_prefix=" ",
    answer_suffix="",
    audio_separator="\n",
    add_bos=True,
    add_eos=True,
)

LLARK = ConversationTemplate(
    # LLaVA-v0 style used by LLark: no EOS, generation stops on "###".
    name="llark",
    default_system=(
        "A chat between a curious human and an artificial intelligence assistant. "
        "The assistant gives helpful, detailed, and polite answers to the human's questions."
    ),
    system_format="{system}\n",
    head_format="{system_block}### Human: ",
    user_suffix="\n### Assistant:",
    answer_prefix=" ",
    answer_suffix="\n###",
    audio_separator="\n",
    add_bos=False,
    add_eos=False,
    stop_strings=("###",),
)

CHATMUSICIAN = ConversationTemplate(
    # ChatMusician: "Human: {q} </s> Assistant: {a}</s>", no BOS; "</s>" in the text is the EOS token.
    name="chatmusician",
    default_system="",
    system_format="{system}\n",
    head_format="{system_block}Human: ",
    user_suffix=" </s> Assistant: ",
    answer_prefix="",
    answer_suffix="",
    audio_separator="\n",
    add_bos=False,
    add_eos=True,
)

TEMPLATES: dict[str, ConversationTemplate] = {t.name: t for t in (LLAMA2_CHAT, LLARK, CHATMUSICIAN)}


def get_template(name: str) -> ConversationTemplate:
    if name not in TEMPLATES:
        raise KeyError(f"unknown template {name!r}; known: {sorted(TEMPLATES)}")
    return TEMPLATES[name]
