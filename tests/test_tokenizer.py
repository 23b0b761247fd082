import torch

from llark.tokenizer import AUDIO_END, AUDIO_PATCH, AUDIO_START, add_llark_tokens, train_bpe_tokenizer
from tests.conftest import PROBE_TEXTS, tiny_model


def test_bpe_training_is_deterministic():
    first = train_bpe_tokenizer(PROBE_TEXTS, vocab_size=300)
    second = train_bpe_tokenizer(PROBE_TEXTS, vocab_size=300)
    assert first.get_vocab() == second.get_vocab()
    text = "Which instrument is loudest? The cello, in 6/8 at 120 BPM."
    assert first.encode(text) == second.encode(text)
    assert first.decode(first.encode(text, add_special_tokens=False)) == text  # byte-level: lossless
    digits = first.convert_ids_to_tokens(first.encode("196", add_special_tokens=False))
    assert digits == ["1", "9", "6"]  # numbers are spelled digit by digit


def test_audio_tokens_are_added_after_the_base_vocabulary(tmp_path):
    tokenizer = train_bpe_tokenizer(PROBE_TEXTS, vocab_size=300)
    base = len(tokenizer)
    ids = add_llark_tokens(tokenizer)
    assert ids.base_vocab_size == base
    assert sorted([ids.audio_start, ids.audio_patch, ids.audio_end, ids.pad]) == list(range(base, base + 4))
    assert tokenizer.encode(f"{AUDIO_START}{AUDIO_PATCH}{AUDIO_END}", add_special_tokens=False) == [
        ids.audio_start, ids.audio_patch, ids.audio_end]
    tokenizer.save_pretrained(tmp_path)  # the tiny path loads it back from a checkpoint
    from transformers import AutoTokenizer
    assert AutoTokenizer.from_pretrained(str(tmp_path)).get_vocab() == tokenizer.get_vocab()


def test_new_token_embeddings_start_at_the_mean():
    model = tiny_model()
    base = model.base_lm().get_input_embeddings().weight[: model.ids.base_vocab_size]
    expected = base.mean(0)
    assert model.new_token_embeddings.shape[0] == 4  # <pad>, <audio_start>, <audio>, <audio_end>
    for row in model.new_token_embeddings:
        torch.testing.assert_close(row, expected)


def test_isolated_spaces_make_a_word_the_same_token_everywhere(tmp_path):
    texts = [f"Key {key} major\nX:1\nK:{key}\n{key}2 {key}A|\n" for key in "ABCDEFG"] * 20
    plain = train_bpe_tokenizer(texts, vocab_size=300)
    isolated = train_bpe_tokenizer(texts, vocab_size=300, isolate_spaces=True)

    def tokens(tokenizer, text):
        return tokenizer.convert_ids_to_tokens(tokenizer.encode(text, add_special_tokens=False))

    assert tokens(plain, "Key D")[-1] != tokens(plain, "K:D")[-1]  # 'ĠD' and 'D': two tokens for one key
    assert tokens(isolated, "Key D")[-2:] == ["Ġ", "D"] and tokens(isolated, "K:D")[-1] == "D"
    text = "Key D major,  K:D  d2 fe|"
    assert isolated.decode(isolated.encode(text, add_special_tokens=False)) == text  # still lossless
    isolated.save_pretrained(tmp_path)  # the rule travels with the checkpoint's tokenizer
    from transformers import AutoTokenizer
    assert tokens(AutoTokenizer.from_pretrained(str(tmp_path)), "Key D")[-2:] == ["Ġ", "D"]
