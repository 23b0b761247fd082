"""LLark model: audio splicing, losses, generation, trainable components and checkpoints."""

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from transformers import LlamaConfig, LlamaForCausalLM

from llark.config import Config, EncoderConfig, LMConfig, ModelConfig, TrainableConfig
from llark.data import PACKED_LENGTH_MULTIPLE, ExampleBuilder, collate, pack_rows
from llark.label_targets import TARGET_KEYS, encode_label_targets
from llark.model import LLark, Projector, build_lm, projector_channel_families
from llark.templates import get_template
from llark.tokenizer import add_llark_tokens, load_pretrained_tokenizer, train_bpe_tokenizer
from tests.conftest import PROBE_TEXTS, tiny_model

QUESTIONS = ["Which instrument is loudest in this clip?", "Name the instrument that stands out the most."]


def make_batch(model, frames=(3, 7), answers=("The loudest instrument is the cello.", "The loudest instrument is the organ."),
               left_pad=False, seed=0):
    rng = np.random.default_rng(seed)
    builder = ExampleBuilder(model.tokenizer, model.ids, get_template(model.config.template), 128, audio_position="before")
    examples = [builder(rng.normal(size=(t, 16)).astype(np.float32), q, a, random.Random(0))
                for t, q, a in zip(frames, QUESTIONS, answers)]
    return collate(examples, model.ids.pad, left_pad=left_pad)


def test_projected_frames_replace_the_placeholders_per_example():
    model = tiny_model()
    batch = make_batch(model, frames=(3, 7))
    embeds = model.embed(batch["input_ids"], batch["audio"], batch["audio_lengths"])
    for row, frames in enumerate((3, 7)):
        positions = (batch["input_ids"][row] == model.ids.audio_patch).nonzero().squeeze(1)
        assert len(positions) == frames
        expected = model.projector(batch["audio"][row, :frames])
        torch.testing.assert_close(embeds[row, positions], expected)
    # Non-audio tokens keep their token embeddings; new tokens read llark's own table.
    start = (batch["input_ids"][0] == model.ids.audio_start).nonzero().item()
    torch.testing.assert_close(embeds[0, start], model.new_token_embeddings[model.ids.audio_start - model.ids.base_vocab_size])


def test_placeholder_count_must_match_frames():
    model = tiny_model()
    batch = make_batch(model)
    with pytest.raises(ValueError, match="placeholders"):
        model.embed(batch["input_ids"], batch["audio"], batch["audio_lengths"] + 1)


def test_label_only_logits_give_the_same_loss_and_gradients():
    model = tiny_model()
    batch = make_batch(model)
    loss_fast = model(**batch, label_only_logits=True)
    grads_fast = torch.autograd.grad(loss_fast, model.projector.parameters())
    loss_full = model(**batch, label_only_logits=False)
    grads_full = torch.autograd.grad(loss_full, model.projector.parameters())
    torch.testing.assert_close(loss_fast, loss_full)
    for a, b in zip(grads_fast, grads_full):
        torch.testing.assert_close(a, b)
    # The loss is the mean cross-entropy of exactly the answer tokens (and EOS).
    logits = model.lm(inputs_embeds=model.embed(batch["input_ids"], batch["audio"], batch["audio_lengths"]),
                      attention_mask=batch["attention_mask"]).logits[:, :-1]
    targets = batch["labels"][:, 1:]
    mask = targets != -100
    torch.testing.assert_close(loss_full, torch.nn.functional.cross_entropy(logits[mask], targets[mask]))


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_rows_give_the_same_loss_and_gradients_as_padded_rows(attention):
    model = tiny_model(attention=attention)
    assert model.base_lm().config._attn_implementation == attention
    rng = np.random.default_rng(1)
    builder = ExampleBuilder(model.tokenizer, model.ids, get_template(model.config.template), 128, audio_position="before")
    long_answer = "The loudest instrument is the cello, and the organ and the flute play under it. " * 2 + "Oboe."
    examples = [builder(rng.normal(size=(t, 16)).astype(np.float32), QUESTIONS[t % 2], a, random.Random(t))
                for t, a in ((9, long_answer), (2, "Cello."), (3, "The organ."), (4, "Flute."), (1, "Organ."))]
    examples.append(builder(None, "Name an instrument.", "The cello.", random.Random(0)))  # text only: no frames
    padded, packed = collate(examples, model.ids.pad), collate(examples, model.ids.pad, pack=True)
    # Rows as long as the longest example, rounded up to a multiple of PACKED_LENGTH_MULTIPLE (bounded shapes).
    longest = padded["input_ids"].shape[1]
    assert packed["input_ids"].shape[1] == -(-longest // PACKED_LENGTH_MULTIPLE) * PACKED_LENGTH_MULTIPLE
    assert packed["input_ids"].shape[1] % PACKED_LENGTH_MULTIPLE == 0 and longest % PACKED_LENGTH_MULTIPLE != 0
    assert len(packed["input_ids"]) < len(padded["input_ids"])  # the short ones share rows
    assert packed["attention_mask"].sum() == padded["attention_mask"].sum()
    assert (packed["labels"] != -100).sum() == (padded["labels"] != -100).sum()
    losses, grads = [], []
    for batch in (padded, packed):
        loss = model(**batch)
        losses.append(loss)
        grads.append(torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad], allow_unused=True))
    torch.testing.assert_close(losses[0], losses[1])
    for a, b in zip(*grads):
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    # Without the restarting positions, the same rows would attend across examples: the loss changes.
    leaky = dict(packed, position_ids=None)
    assert not torch.allclose(model(**leaky), losses[0])


def test_eager_and_sdpa_attention_compute_the_same_model():
    """model.lm.attention picks kernels, not a model: the same weights give the same loss and gradients in
    padded and packed rows, and the same greedy answers from the KV cache."""
    models = {attention: tiny_model(seed=3, attention=attention) for attention in ("sdpa", "eager")}
    models["eager"].load_state_dict(models["sdpa"].state_dict())
    for batch in labelled_batches(models["sdpa"]):
        results = {}
        for attention, model in models.items():
            loss = model(**{k: v for k, v in batch.items() if k not in TARGET_KEYS})
            results[attention] = (loss, torch.autograd.grad(loss, list(model.parameters()), allow_unused=True))
        torch.testing.assert_close(results["sdpa"][0], results["eager"][0])
        for a, b in zip(results["sdpa"][1], results["eager"][1]):
            if a is not None:
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    prompts = make_batch(models["sdpa"], left_pad=True)
    answers = {attention: model.generate(prompts["input_ids"][:, :-6], prompts["attention_mask"][:, :-6],
                                         prompts["audio"], prompts["audio_lengths"], max_new_tokens=8)
               for attention, model in models.items()}
    assert answers["sdpa"] == answers["eager"]


CLIP_LABELS = [
    {"key": "F# minor", "tempo": 121.0, "meter": "6/8", "instruments": ["Flute", "Drums"]},
    {"key": "C major", "tempo": 90.0, "meter": "3/4", "instruments": ["Acoustic Grand Piano", "Cello"]},
    {"key": "Bb major", "meter": "4/4"},  # no tempo, no instruments: those heads skip it
    {},
]


def labelled_batches(model):
    """Padded and packed batches of four clips with labels and a text-only example."""
    rng = np.random.default_rng(2)
    builder = ExampleBuilder(model.tokenizer, model.ids, get_template(model.config.template), 128, audio_position="before")
    examples = [builder(rng.normal(size=(t, 16)).astype(np.float32), QUESTIONS[0], a, random.Random(t))
                | encode_label_targets(labels)
                for t, a, labels in zip((9, 2, 3, 4), ("The cello and the organ.", "Cello.", "Organ.", "Flute."), CLIP_LABELS)]
    examples.append(builder(None, "Name an instrument.", "The cello.", random.Random(0)) | encode_label_targets({}))
    return collate(examples, model.ids.pad), collate(examples, model.ids.pad, pack=True)


def test_label_loss_reads_each_examples_audio_positions_in_padded_and_packed_rows():
    model = tiny_model(label_loss_weight=0.5)
    padded, packed = labelled_batches(model)
    answer_loss = model(**{k: v for k, v in padded.items() if k not in (*TARGET_KEYS, "frame_owner")})
    total = model(**padded)
    # By hand: the mean of layer 1's output over each clip's placeholders, through each head.
    decoder = model.base_lm().get_decoder()
    hidden = decoder(inputs_embeds=model.embed(padded["input_ids"], padded["audio"], padded["audio_lengths"]),
                     attention_mask=padded["attention_mask"], output_hidden_states=True).hidden_states[1]
    pooled = torch.stack([hidden[row, padded["input_ids"][row] == model.ids.audio_patch].mean(0) for row in range(4)])
    heads = model.label_heads
    expected = (F.cross_entropy(heads["key"](pooled[:3]), padded["target_key"][:3])
                + F.cross_entropy(heads["tempo"](pooled[:2]), padded["target_tempo"][:2])
                + F.cross_entropy(heads["meter"](pooled[:3]), padded["target_meter"][:3])
                + F.binary_cross_entropy_with_logits(heads["instruments"](pooled[:2]), padded["target_instruments"][:2],
                                                     reduction="sum") / 2)
    torch.testing.assert_close(total, answer_loss + 0.5 * expected)
    # Packed rows hold the clips in another order; each frame still counts for its own clip.
    assert not torch.equal(packed["frame_owner"], padded["frame_owner"])
    torch.testing.assert_close(model(**packed), total)
    # The targets are tied to their clips: swapping two clips' labels changes the loss.
    swapped = dict(padded, target_key=padded["target_key"][[1, 0, 2, 3, 4]])
    assert not torch.allclose(model(**swapped), total)


def test_label_heads_go_on_with_the_checkpoint(tmp_path):
    model = tiny_model(seed=3, label_loss_weight=1.0).eval()
    padded, _ = labelled_batches(model)
    model.save_pretrained(tmp_path / "ckpt", run_config_for(model), model.tokenizer)
    assert (tmp_path / "ckpt" / "label_heads.safetensors").is_file()
    torch.testing.assert_close(LLark.from_pretrained(tmp_path / "ckpt")(**padded), model(**padded))


def test_label_layer_must_be_one_of_the_lms():
    model = tiny_model(label_loss_weight=1.0)
    model.config.label_layer = 2  # the tiny LM has one decoder layer
    with pytest.raises(ValueError, match="label_layer=2"):
        model(**labelled_batches(model)[0])


def test_label_layer_0_reads_the_projected_audio_tokens():
    model = tiny_model(label_loss_weight=1.0)
    model.config.label_layer = 0
    model.config.label_instruments_weight = 0.25
    padded, packed = labelled_batches(model)
    answer_loss = model(**{k: v for k, v in padded.items() if k not in (*TARGET_KEYS, "frame_owner")})
    embeds = model.embed(padded["input_ids"], padded["audio"], padded["audio_lengths"])
    pooled = torch.stack([embeds[row, padded["input_ids"][row] == model.ids.audio_patch].mean(0) for row in range(4)])
    heads = model.label_heads
    expected = (F.cross_entropy(heads["key"](pooled[:3]), padded["target_key"][:3])
                + F.cross_entropy(heads["tempo"](pooled[:2]), padded["target_tempo"][:2])
                + F.cross_entropy(heads["meter"](pooled[:3]), padded["target_meter"][:3])
                + 0.25 * F.binary_cross_entropy_with_logits(heads["instruments"](pooled[:2]),
                                                            padded["target_instruments"][:2], reduction="sum") / 2)
    total = model(**padded)
    torch.testing.assert_close(total, answer_loss + expected)
    torch.testing.assert_close(model(**packed), total)


def test_label_probabilities_read_each_prompts_audio_as_training_pools_it():
    # Left-padded prompts (as answers are generated), the heads at decoder layer 1: each row reads the mean
    # of its own audio positions, as the same prompt alone; softmax per single-label head, sigmoid per class.
    model = tiny_model(seed=5, label_loss_weight=1.0).eval()
    batch = make_batch(model, frames=(2, 9), answers=(None, None), left_pad=True)
    assert (batch["attention_mask"][:, 0] == 0).any()
    read = model.label_probabilities(batch["input_ids"], batch["attention_mask"], batch["audio"], batch["audio_lengths"])
    decoder = model.base_lm().get_decoder()
    for row, frames in enumerate((2, 9)):
        ids = batch["input_ids"][row : row + 1][:, batch["attention_mask"][row].bool()]
        with torch.no_grad():
            hidden = decoder(inputs_embeds=model.embed(ids, batch["audio"][row : row + 1, :frames], torch.tensor([frames])),
                             output_hidden_states=True).hidden_states[1]
            pooled = hidden[0, ids[0] == model.ids.audio_patch].mean(0)
            for name, head in model.label_heads.items():
                logits = head(pooled)
                expected = torch.sigmoid(logits) if name == "instruments" else logits.softmax(-1)
                torch.testing.assert_close(read[name][row], expected, atol=1e-5, rtol=1e-4)
    assert torch.allclose(read["key"].sum(-1), torch.ones(2)) and not torch.allclose(read["instruments"].sum(-1), torch.ones(2))
    with pytest.raises(ValueError, match="no label heads"):
        tiny_model().label_probabilities(batch["input_ids"], batch["attention_mask"], batch["audio"], batch["audio_lengths"])


def test_pack_rows_is_first_fit_decreasing():
    assert pack_rows([5, 9, 4, 2, 9, 1], capacity=9) == [[1], [4], [0, 2], [3, 5]]
    with pytest.raises(ValueError, match="does not fit"):
        pack_rows([10], capacity=9)
    example = {"input_ids": [1, 2], "labels": [-100, 2], "features": np.zeros((0, 0), np.float32)}
    with pytest.raises(ValueError, match="for training"):
        collate([example], pad_id=0, left_pad=True, pack=True)


def test_batched_generation_matches_one_by_one_with_left_padding():
    model = tiny_model(seed=3).eval()
    with torch.no_grad():  # an EOS logit of 0 (others random) keeps an untrained model talking
        model.base_lm().get_output_embeddings().weight[model.ids.eos].zero_()
    batch = make_batch(model, frames=(2, 9), answers=(None, None), left_pad=True)
    assert (batch["attention_mask"][:, 0] == 0).any()  # really left-padded
    together = model.generate(batch["input_ids"], batch["attention_mask"], batch["audio"], batch["audio_lengths"],
                              max_new_tokens=12)
    for row in range(2):
        alone = make_batch(model, frames=((2, 9)[row],), answers=(None,), left_pad=True, seed=0)
        # Same features as in the batch for this row:
        alone["audio"] = batch["audio"][row : row + 1, : batch["audio_lengths"][row]]
        alone["input_ids"] = batch["input_ids"][row : row + 1][:, batch["attention_mask"][row].bool()]
        alone["attention_mask"] = torch.ones_like(alone["input_ids"])
        single = model.generate(alone["input_ids"], alone["attention_mask"], alone["audio"],
                                batch["audio_lengths"][row : row + 1], max_new_tokens=12)
        assert single[0] == together[row]
    assert [len(tokens) for tokens in together] == [12, 12]


def test_samples_per_prompt_decode_as_copies_of_the_prompt_would():
    """Each prompt is read once and its KV cache copied to its k answer rows: the same tokens as k copies of
    the prompt in the batch, greedy or sampled with the same seed (MBR decoding's 16 samples per question)."""
    model = tiny_model(seed=3).eval()
    with torch.no_grad():  # an EOS logit of 0 (others random) keeps an untrained model talking
        model.base_lm().get_output_embeddings().weight[model.ids.eos].zero_()
    batch = make_batch(model, frames=(2, 9), answers=(None, None), left_pad=True)
    copies = {k: v.repeat_interleave(3, dim=0) for k, v in batch.items() if k in ("input_ids", "attention_mask", "audio", "audio_lengths")}
    for sampling in ({}, {"do_sample": True, "temperature": 1.5, "top_k": 20}):
        def decode(inputs, **extra):
            return model.generate(inputs["input_ids"], inputs["attention_mask"], inputs["audio"], inputs["audio_lengths"],
                                  max_new_tokens=10, generator=torch.Generator().manual_seed(5), **sampling, **extra)

        shared = decode(batch, samples_per_prompt=3)
        assert shared == decode(copies) and len(shared) == 6
    assert len({tuple(tokens) for tokens in shared[:3]}) > 1  # sampled rows of one prompt differ


def test_generate_reports_each_answers_log_probability_under_the_model_itself():
    """log_probs: the model's own log-probability of each sampled answer (temperature 1, no penalty), as
    scoring the answer after its prompt in one forward pass gives; MBR weighs distinct answers by it."""
    model = tiny_model(seed=3).eval()
    batch = make_batch(model, frames=(5,), answers=(None,), left_pad=True)
    log_probs: list[float] = []
    rows = model.generate(batch["input_ids"], batch["attention_mask"], batch["audio"], batch["audio_lengths"],
                          max_new_tokens=6, do_sample=True, temperature=0.7, repetition_penalty=1.3,
                          generator=torch.Generator().manual_seed(1), samples_per_prompt=4, log_probs=log_probs)
    assert len(log_probs) == 4 and len({tuple(r) for r in rows}) > 1
    for tokens, reported in zip(rows, log_probs):
        ended = len(tokens) < 6  # stopped at EOS, whose probability counts too
        answer = torch.tensor([tokens + [model.ids.eos] * ended])
        ids = torch.cat([batch["input_ids"], answer], dim=1)
        with torch.no_grad():
            embeds = model.embed(ids, batch["audio"], batch["audio_lengths"])
            logits = model.lm(inputs_embeds=embeds, attention_mask=torch.ones_like(ids)).logits[0].float()
        logits[:, model.ids.base_vocab_size :] = float("-inf")
        scores = torch.log_softmax(logits, dim=-1)[batch["input_ids"].shape[1] - 1 : -1]
        expected = scores.gather(1, answer[0][:, None]).sum().item()
        assert reported == pytest.approx(expected, abs=1e-4)


def test_continuations_of_one_prefix_score_as_whole_sequences_would():
    """continuation_log_probs reads the prefix once and its continuations from copies of its KV cache, a few
    rows at a time: each row's sum equals the teacher-forced log-probabilities of the whole sequence (exact
    MBR over a tempo scores 271 numbers after one prompt this way)."""
    model = tiny_model(seed=4).eval()
    batch = make_batch(model, frames=(6,), answers=(None,))
    prefix = batch["input_ids"][:, : batch["attention_mask"].sum()]
    vocab = model.base_lm().get_output_embeddings().weight.shape[0]
    generator = torch.Generator().manual_seed(2)
    continuations = torch.randint(0, vocab, (5, 4), generator=generator)
    scored = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 0], [0, 1, 1, 0]], dtype=torch.bool)
    continuations[~scored] = model.ids.pad  # padding, which may lie beyond the head
    got = model.continuation_log_probs(prefix, batch["audio"], batch["audio_lengths"], continuations, scored,
                                       chunk_size=2)
    assert got.dtype == torch.float64 and got.shape == (5,)
    for row in range(5):
        ids = torch.cat([prefix, continuations[row : row + 1]], dim=1)
        with torch.no_grad():
            embeds = model.embed(ids, batch["audio"], batch["audio_lengths"])
            logits = model.lm(inputs_embeds=embeds, attention_mask=torch.ones_like(ids)).logits[0].float()
        scores = torch.log_softmax(logits, dim=-1)[prefix.shape[1] - 1 : -1]
        picked = scores.gather(1, continuations[row].clamp(max=vocab - 1)[:, None]).squeeze(1)
        assert got[row].item() == pytest.approx(picked[scored[row]].sum().item(), abs=1e-4)


def constant_head(model, favourite: int, vocab: int) -> None:
    """Replace the LM head by one whose logits always favour token `favourite`."""
    head = torch.nn.Linear(32, vocab, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[favourite] = 10.0
        head.bias[5] = 5.0  # the runner-up
    model.base_lm().lm_head = head


def test_generation_stops_at_eos():
    model = tiny_model().eval()
    constant_head(model, model.ids.eos, model.ids.base_vocab_size)
    batch = make_batch(model, answers=(None, None), left_pad=True)
    steps = []
    out = model.generate(batch["input_ids"], batch["attention_mask"], batch["audio"], batch["audio_lengths"],
                         max_new_tokens=10, on_tokens=steps.append)
    assert out == [[], []] and len(steps) == 1


def test_generation_stops_at_the_lms_last_position(caplog):
    """A row never runs past max_position_embeddings (256 here): positions beyond were never trained."""
    model = tiny_model().eval()
    constant_head(model, 7, model.ids.base_vocab_size)  # never EOS
    batch = make_batch(model, answers=(None, None), left_pad=True)
    prompt_lengths = batch["attention_mask"].sum(1).tolist()
    out = model.generate(batch["input_ids"], batch["attention_mask"], batch["audio"], batch["audio_lengths"],
                         max_new_tokens=400)
    assert [len(tokens) for tokens in out] == [256 - length for length in prompt_lengths]
    assert "2 of 2 answers stopped at the LM's last position (256)" in caplog.text
    caplog.clear()
    short = model.generate(batch["input_ids"], batch["attention_mask"], batch["audio"], batch["audio_lengths"],
                           max_new_tokens=5)
    assert [len(tokens) for tokens in short] == [5, 5] and not caplog.text


def test_a_row_that_finishes_first_leaves_the_batch_and_the_others_decode_as_before():
    """The finished row and its KV cache leave the batch; streaming reports the pad id for it."""
    model = tiny_model(seed=3).eval()
    with torch.no_grad():  # an EOS logit of 0 (others random) keeps an untrained model talking
        model.base_lm().get_output_embeddings().weight[model.ids.eos].zero_()
    batch = make_batch(model, frames=(2, 9), answers=(None, None), left_pad=True)
    args = (batch["input_ids"], batch["attention_mask"], batch["audio"], batch["audio_lengths"])
    full = model.generate(*args, max_new_tokens=6)
    steps = []
    early = model.generate(*args, max_new_tokens=6, is_done=lambda row, tokens: row == 0,
                           on_tokens=lambda tokens: steps.append(tokens.tolist()))
    assert early == [full[0][:1], full[1]] and len(full[1]) == 6
    assert [step[0] for step in steps] == [full[0][0]] + [model.ids.pad] * 5
    assert [step[1] for step in steps] == full[1]


def test_a_row_that_finishes_first_is_padded_even_when_no_prompt_was():
    """Text-only prompts of equal length hold no id past the base vocabulary; the finished row is fed
    the pad id, which lies there."""
    model = tiny_model().eval()
    constant_head(model, 7, model.ids.base_vocab_size)
    builder = ExampleBuilder(model.tokenizer, model.ids, get_template(model.config.template), 128)
    example = builder(None, QUESTIONS[0], None, random.Random(0))
    batch = collate([example, example], model.ids.pad, left_pad=True)
    assert model.ids.pad >= model.ids.base_vocab_size > int(batch["input_ids"].max())
    out = model.generate(batch["input_ids"], batch["attention_mask"], batch["audio"], batch["audio_lengths"],
                         max_new_tokens=4, repetition_penalty=1.1, is_done=lambda row, tokens: row == 0)
    assert [len(tokens) for tokens in out] == [1, 4]


def test_generation_never_emits_llark_tokens():
    """Even when the LM's head is larger than the base vocabulary, llark's own ids are masked."""
    model = tiny_model().eval()
    constant_head(model, model.ids.audio_patch, model.ids.base_vocab_size + 4)
    batch = make_batch(model, answers=(None, None), left_pad=True)
    out = model.generate(batch["input_ids"], batch["attention_mask"], batch["audio"], batch["audio_lengths"],
                         max_new_tokens=4)
    assert out == [[5] * 4, [5] * 4]


def test_repetition_penalty_moves_greedy_decoding_off_seen_tokens():
    model = tiny_model().eval()
    head = torch.nn.Linear(model.base_lm().lm_head.in_features, model.ids.base_vocab_size, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.linspace(1.0, 2.0, model.ids.base_vocab_size))  # a fixed preference order
        head.bias[model.ids.eos] = -1.0
    model.base_lm().lm_head = head
    batch = make_batch(model, answers=(None, None), left_pad=True)
    args = (batch["input_ids"], batch["attention_mask"], batch["audio"], batch["audio_lengths"])
    top = model.ids.base_vocab_size - 1
    assert model.generate(*args, max_new_tokens=4) == [[top] * 4, [top] * 4]
    penalised = model.generate(*args, max_new_tokens=6, repetition_penalty=10.0)
    for row, tokens in zip(batch["input_ids"].tolist(), penalised):
        assert len(set(tokens)) == len(tokens) and not set(tokens) & set(row)  # each step takes the best unseen
        assert tokens == sorted(tokens, reverse=True)


def test_sampling_is_seeded_and_streams():
    model = tiny_model(seed=1).eval()
    batch = make_batch(model, answers=(None, None), left_pad=True)
    args = (batch["input_ids"], batch["attention_mask"], batch["audio"], batch["audio_lengths"])
    first = model.generate(*args, max_new_tokens=8, do_sample=True, temperature=1.5, top_k=20, top_p=0.9,
                           generator=torch.Generator().manual_seed(7))
    again = model.generate(*args, max_new_tokens=8, do_sample=True, temperature=1.5, top_k=20, top_p=0.9,
                           generator=torch.Generator().manual_seed(7))
    assert first == again
    greedy = model.generate(*args, max_new_tokens=8)
    top1 = model.generate(*args, max_new_tokens=8, do_sample=True, top_k=1, generator=torch.Generator().manual_seed(0))
    assert top1 == greedy
    streamed = []
    model.generate(*args, max_new_tokens=8, on_tokens=lambda tokens: streamed.append(tokens.tolist()))
    assert [step[0] for step in streamed] == greedy[0]


def test_trainable_components_are_explicit():
    frozen = tiny_model(trainable=TrainableConfig(projector=True, lm="none", lm_embeddings=False, new_token_embeddings=True))
    names = {n for n, p in frozen.named_parameters() if p.requires_grad}
    assert names == {"new_token_embeddings", "projector.net.0.weight", "projector.net.0.bias"}
    lora = tiny_model(trainable=TrainableConfig(projector=False, lm="lora", new_token_embeddings=False))
    names = {n for n, p in lora.named_parameters() if p.requires_grad}
    assert names and all("lora_" in n for n in names)
    full = tiny_model(trainable=TrainableConfig(lm="full", lm_embeddings=False))
    assert not full.base_lm().get_input_embeddings().weight.requires_grad
    assert not full.base_lm().get_output_embeddings().weight.requires_grad
    assert full.base_lm().get_decoder().layers[0].self_attn.q_proj.weight.requires_grad


def run_config_for(model: LLark) -> Config:
    return Config(model=model.config)


def test_save_and_load_round_trip(tmp_path):
    model = tiny_model(seed=5).eval()
    batch = make_batch(model)
    model.save_pretrained(tmp_path / "ckpt", run_config_for(model), model.tokenizer)
    assert {p.name for p in (tmp_path / "ckpt").iterdir()} == {
        "config.json", "projector.safetensors", "new_token_embeddings.safetensors", "lm", "tokenizer"}
    loaded = LLark.from_pretrained(tmp_path / "ckpt")
    torch.testing.assert_close(loaded(**batch), model(**batch))
    prompt = make_batch(model, answers=(None, None), left_pad=True)
    args = (prompt["input_ids"], prompt["attention_mask"], prompt["audio"], prompt["audio_lengths"])
    assert loaded.generate(*args, max_new_tokens=6) == model.generate(*args, max_new_tokens=6)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_a_loaded_checkpoint_keeps_its_attention_kernels(tmp_path, attention):
    """A curriculum's later stage (train.init_from) and evaluation load the model with the kernels model.lm.attention
    names, not Hugging Face's default: the demo's stage 2 trained with sdpa's slow CPU backward until it did."""
    model = tiny_model(seed=5, attention=attention)
    model.save_pretrained(tmp_path / "ckpt", run_config_for(model), model.tokenizer)
    loaded = LLark.from_pretrained(tmp_path / "ckpt")
    assert loaded.base_lm().config._attn_implementation == attention
    assert loaded.run_config.model.lm.attention == attention


def test_from_pretrained_names_a_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an llark checkpoint"):
        LLark.from_pretrained(tmp_path)


@pytest.fixture
def local_pretrained_lm(tmp_path):
    """A tiny 'pretrained' Hugging Face directory, as Llama-2-7b-chat would be on disk."""
    tokenizer = train_bpe_tokenizer(PROBE_TEXTS, vocab_size=300)
    torch.manual_seed(0)
    lm = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, num_key_value_heads=2, intermediate_size=64,
                                      max_position_embeddings=256))
    lm.save_pretrained(tmp_path / "base-lm")
    tokenizer.save_pretrained(tmp_path / "base-lm")
    return tmp_path / "base-lm"


@pytest.mark.parametrize("trainable_lm", ["none", "lora"])
def test_a_pretrained_base_is_referenced_not_copied(tmp_path, local_pretrained_lm, trainable_lm):
    config = ModelConfig(lm=LMConfig(source="pretrained", path=str(local_pretrained_lm), tokenizer="pretrained"),
                         audio_dim=16, trainable=TrainableConfig(lm=trainable_lm), lora=ModelConfig().lora)
    tokenizer = load_pretrained_tokenizer(local_pretrained_lm)
    ids = add_llark_tokens(tokenizer)
    model = LLark(config, build_lm(config.lm, ids.base_vocab_size), ids, len(tokenizer))
    model.tokenizer = tokenizer
    if trainable_lm == "lora":  # move the adapter away from its zero init so the round trip means something
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.normal_(0, 0.02)
    model.save_pretrained(tmp_path / "ckpt", Config(model=config), tokenizer)
    files = {p.name for p in (tmp_path / "ckpt").iterdir()}
    assert "lm" not in files  # no copy of the base weights
    assert ("lm_adapter.safetensors" in files) == (trainable_lm == "lora")
    loaded = LLark.from_pretrained(tmp_path / "ckpt")
    batch = make_batch(model)
    torch.testing.assert_close(loaded(**batch), model(**batch))


def test_grouped_projector_sums_one_mlp_per_family_and_reloads(tmp_path):
    model = tiny_model(seed=3)
    # 16 MIR channels: log_mel 0-1, chroma 2-13, onset 14, rms 15
    run_config = Config(model=ModelConfig(**{**model.config.__dict__, "projector": "grouped_mlp2", "standardize_audio": True,
                                             "projector_families": [["chroma"], ["onset", "log_mel", "rms"]]}),
                        encoder=EncoderConfig(name="mir", settings={"n_mels": 2, "tempo_bins": 0}))
    families = projector_channel_families(run_config)
    assert families == [list(range(2, 14)), [14, 0, 1, 15]]
    grouped = LLark(run_config.model, model.lm, model.ids, len(model.tokenizer), families)
    grouped.tokenizer = model.tokenizer
    mean, std = torch.linspace(-1, 1, 16), torch.linspace(0.5, 2, 16)
    grouped.projector.set_feature_statistics(mean, std)
    frames = torch.randn(2, 5, 16)
    standardized = (frames - mean) / std
    chroma_mlp, rest_mlp = grouped.projector.net.mlps  # each reads its family's channels alone
    expected = chroma_mlp(standardized[..., 2:14]) + rest_mlp(standardized[..., [14, 0, 1, 15]])
    torch.testing.assert_close(grouped.projector(frames), expected)
    grouped.save_pretrained(tmp_path / "ckpt", run_config, model.tokenizer)
    loaded = LLark.from_pretrained(tmp_path / "ckpt")
    torch.testing.assert_close(loaded.projector(frames), expected)
    batch = make_batch(grouped)
    torch.testing.assert_close(loaded(**batch), grouped(**batch))
    # The checkpoint records the channels each MLP read: an encoder whose groups now lie elsewhere is refused.
    saved = load_file(tmp_path / "ckpt" / "projector.safetensors")
    assert saved["net.channels_1"].tolist() == [14, 0, 1, 15]
    save_file({**saved, "net.channels_1": torch.tensor([0, 1, 14, 15])}, tmp_path / "ckpt" / "projector.safetensors")
    with pytest.raises(ValueError, match=r"ckpt: its grouped projector's families read other channels \(net.channels_1\)"):
        LLark.from_pretrained(tmp_path / "ckpt")
    # A checkpoint from before the channels were saved takes them from the config.
    save_file({k: v for k, v in saved.items() if not k.startswith("net.channels_")}, tmp_path / "ckpt" / "projector.safetensors")
    torch.testing.assert_close(LLark.from_pretrained(tmp_path / "ckpt").projector(frames), expected)
    with pytest.raises(ValueError, match=r"'grouped_mlp2' needs each family's channels: .*projector_channel_families"):
        Projector("grouped_mlp2", 16, 8)
    with pytest.raises(ValueError, match="model.projector='mlp2' reads every channel at once"):
        Projector("mlp2", 16, 8, families=families)
    with pytest.raises(ValueError, match="each of the 16 channels once"):
        Projector("grouped_mlp2", 16, 8, families=[list(range(15))])


def test_family_dropout_leaves_whole_families_out_of_an_example_in_training_only():
    torch.manual_seed(0)
    families = [[0, 1], [2], [3, 4, 5]]
    projector = Projector("grouped_mlp2", 6, 8, families=families, family_dropout=0.5)
    frames = torch.randn(64, 3, 6)
    with torch.no_grad():
        per_family = torch.stack([mlp(frames[..., family]) for mlp, family in zip(projector.net.mlps, families)])  # [F, B, T, H]
        projector.eval()
        torch.testing.assert_close(projector(frames), per_family.sum(0))  # answering: every family, unscaled
        projector.train()
        dropped = projector(frames)
    # Each example's tokens are the sum of some of its families' outputs, each kept one times 1 / (1 - 0.5),
    # the same families on every frame of the example.
    subsets = torch.tensor([[(mask >> f) & 1 for f in range(3)] for mask in range(8)], dtype=torch.float32)  # [8, F]
    candidates = torch.einsum("sf,fbth->sbth", subsets * 2.0, per_family)
    error = (candidates - dropped).abs().amax(dim=(2, 3))  # [8 subsets, B]
    assert bool((error.min(0).values < 1e-5).all())
    chosen = error.argmin(0)
    assert len(set(chosen.tolist())) >= 4  # the subsets differ from example to example
    kept = subsets[chosen].mean(0)
    assert bool(((kept > 0.3) & (kept < 0.7)).all())  # each family kept about half the time
    with pytest.raises(ValueError, match=r"projector_family_dropout must be in \[0, 1\), got 1.0"):
        Projector("grouped_mlp2", 6, 8, families=families, family_dropout=1.0)
    with pytest.raises(ValueError, match="projector_family_dropout leaves out families of channels: it needs "
                                         "model.projector='grouped_mlp2', not 'mlp2'"):
        Projector("mlp2", 6, 8, family_dropout=0.1)


def test_the_checkpoint_keeps_the_fitted_models_its_features_were_made_with(tmp_path):
    # train.py passes the shards' record (the beat-level fit); None, where unknown, is not written
    model = tiny_model(seed=4)
    model.save_pretrained(tmp_path / "known", Config(model=model.config), model.tokenizer,
                          encoder_fitted={"beat_level": "0123456789abcdef"})
    assert LLark.from_pretrained(tmp_path / "known").encoder_fitted == {"beat_level": "0123456789abcdef"}
    model.save_pretrained(tmp_path / "unknown", Config(model=model.config), model.tokenizer)
    assert LLark.from_pretrained(tmp_path / "unknown").encoder_fitted is None


def test_standardized_projector_keeps_its_statistics_in_the_checkpoint(tmp_path):
    from llark.config import ModelConfig

    model = tiny_model(seed=2)
    config = ModelConfig(**{**model.config.__dict__, "standardize_audio": True})
    standardized = LLark(config, model.lm, model.ids, len(model.tokenizer))
    standardized.tokenizer = model.tokenizer
    mean, std = torch.linspace(0, 1, 16), torch.linspace(0.5, 2, 16)
    standardized.projector.set_feature_statistics(mean, std)
    frames = torch.randn(3, 16)
    expected = standardized.projector.net((frames - mean) / std)
    torch.testing.assert_close(standardized.projector(frames), expected)
    standardized.save_pretrained(tmp_path / "ckpt", Config(model=config), model.tokenizer)
    loaded = LLark.from_pretrained(tmp_path / "ckpt")
    torch.testing.assert_close(loaded.projector.feature_std, std)
    torch.testing.assert_close(loaded.projector(frames), expected)
    with pytest.raises(ValueError, match="standardize"):
        model.projector.set_feature_statistics(mean, std)
    # A gain multiplies the standardized channels; it is kept in the same buffer, so checkpoints load as before.
    gain = torch.ones(16)
    gain[4:8] = 3.0
    standardized.projector.set_feature_statistics(mean, std, gain)
    torch.testing.assert_close(standardized.projector(frames), standardized.projector.net((frames - mean) / std * gain))
    standardized.save_pretrained(tmp_path / "gained", Config(model=config), model.tokenizer)
    torch.testing.assert_close(LLark.from_pretrained(tmp_path / "gained").projector.feature_std, std / gain)


def test_loss_per_example_averages_each_answer_first_in_padded_and_packed_rows():
    model = tiny_model()
    rng = np.random.default_rng(4)
    builder = ExampleBuilder(model.tokenizer, model.ids, get_template(model.config.template), 128, audio_position="before")
    answers = ("The loudest instrument is the cello, and the organ and the flute play under it. " * 2, "Cello.",
               "The organ.", "Flute.")
    examples = [builder(rng.normal(size=(t, 16)).astype(np.float32), QUESTIONS[0], a, random.Random(t))
                for t, a in zip((9, 2, 3, 4), answers)]
    padded, packed = collate(examples, model.ids.pad), collate(examples, model.ids.pad, pack=True)
    assert len(packed["input_ids"]) < len(padded["input_ids"])
    token_mean = model(**padded)
    # Each example alone: its own mean over its answer tokens.
    alone = [model(**collate([example], model.ids.pad)) for example in examples]
    expected = torch.stack(alone).mean()
    torch.testing.assert_close(model(**padded, loss_per_example=True), expected)
    torch.testing.assert_close(model(**packed, loss_per_example=True), expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(token_mean, expected)  # the long answer weighs more in the token mean
