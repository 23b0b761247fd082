"""Tokenizers: the LM's own (loaded from its local directory) or a small byte-level BPE for CPU models.

Both paths end the same way: the audio tokens (and a pad token when missing) are added after the
base vocabulary, so ids >= `base_vocab_size` are exactly the new tokens whose embeddings llark owns.

    tokenizer = train_bpe_tokenizer(texts, vocab_size=512)   # deterministic for the same texts
    ids = add_llark_tokens(tokenizer)
    input_ids, labels = encode_segments(tokenizer, ids, template.render(q, a), num_frames=250)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from llark.templates import AUDIO, BOS, EOS, Segment

AUDIO_START, AUDIO_PATCH, AUDIO_END = "<audio_start>", "<audio>", "<audio_end>"
PAD = "<pad>"
BPE_SPECIAL_TOKENS = ("<s>", "</s>", "<unk>")  # the Llama names, so templates read the same for both paths
IGNORE_INDEX = -100  # label value the loss skips


@dataclass(frozen=True)
class SpecialIds:
    """Ids the model needs; everything at or above `base_vocab_size` was added by llark."""

    base_vocab_size: int
    audio_start: int
    audio_patch: int
    audio_end: int
    pad: int
    bos: int | None
    eos: int


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int, isolate_spaces: bool = False) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on `texts` (same texts in the same order -> same tokenizer).

    `isolate_spaces`: every space is a token of its own ("Key D" -> 'Key', 'Ġ', 'D'), so a word is the
    same token wherever it stands (see LMConfig.bpe_isolate_spaces)."""
    bpe = Tokenizer(models.BPE())
    # Digits one by one (as Llama's tokenizer does): "96 BPM" and "196 BPM" then share their tokens,
    # so numbers are learned digit by digit instead of one token per value.
    steps = [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    if isolate_spaces:
        steps.insert(0, pre_tokenizers.Split(" ", behavior="isolated"))
    bpe.pre_tokenizer = pre_tokenizers.Sequence(steps)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(BPE_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def load_pretrained_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """The LM's tokenizer from a local directory (never from a hub)."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: tokenizer directory not found (set model.lm.path to a local directory)")
    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def add_llark_tokens(tokenizer: PreTrainedTokenizerBase) -> SpecialIds:
    """Add the audio tokens (and <pad> when the tokenizer has none); return the ids the model uses."""
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no EOS token; llark needs one to end answers")
    base_vocab_size = len(tokenizer)
    new_tokens = [AUDIO_START, AUDIO_PATCH, AUDIO_END]
    if tokenizer.pad_token is None:
        tokenizer.add_special_tokens({"pad_token": PAD})
    tokenizer.add_special_tokens({"additional_special_tokens": new_tokens})
    return special_ids(tokenizer, base_vocab_size)


def special_ids(tokenizer: PreTrainedTokenizerBase, base_vocab_size: int) -> SpecialIds:
    ids = tokenizer.convert_tokens_to_ids([AUDIO_START, AUDIO_PATCH, AUDIO_END])
    if any(i is None or i < base_vocab_size for i in ids):
        raise ValueError(f"audio tokens are missing from the tokenizer (ids {ids}); call add_llark_tokens first")
    return SpecialIds(
        base_vocab_size=base_vocab_size,
        audio_start=ids[0],
        audio_patch=ids[1],
        audio_end=ids[2],
        pad=tokenizer.pad_token_id,
        bos=tokenizer.bos_token_id,
        eos=tokenizer.eos_token_id,
    )


def encode_segments(
    tokenizer: PreTrainedTokenizerBase, ids: SpecialIds, segments: list[Segment], num_frames: int,
    known: dict[str, list[int]] | None = None,
) -> tuple[list[int], list[int]]:
    """Token ids and labels (IGNORE_INDEX outside the trained segments) of one rendered example.

    `known` (text -> its ids) is read and filled for the untrained segments, the prompt's parts, which repeat
    from example to example (system prompt, template words, questions); each segment is encoded on its own,
    so its ids do not depend on its neighbours. Answers are always encoded."""
    input_ids: list[int] = []
    labels: list[int] = []
    for segment in segments:
        if segment.content is AUDIO:
            piece = [ids.audio_start] + [ids.audio_patch] * num_frames + [ids.audio_end]
        elif segment.content is BOS:
            if ids.bos is None:
                raise ValueError("the template asks for a BOS token but the tokenizer has none")
            piece = [ids.bos]
        elif segment.content is EOS:
            piece = [ids.eos]
        elif known is not None and not segment.trained:
            piece = known.get(segment.content)
            if piece is None:
                piece = known[segment.content] = tokenizer.encode(segment.content, add_special_tokens=False)
        else:
            piece = tokenizer.encode(segment.content, add_special_tokens=False)
        input_ids += piece
        labels += piece if segment.trained else [IGNORE_INDEX] * len(piece)
    return input_ids, labels
