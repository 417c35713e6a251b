"""Text encoders: the bundled MiniLM, tiny BERT / T5 / CLIP folders, prompt checks, caching."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.errors import MotionError
from engine.text_encoder import (
    MAX_PROMPT_CHARS,
    TextEncoderConfig,
    TextEncoding,
    build_text_encoder,
    load_text_encoder,
    validate_prompt,
)

WORDS = ["<pad>", "<unk>", "<s>", "</s>", "a", "person", "walks", "jumps", "forward", "back"]


def _save_tiny_tokenizer(folder: Path) -> None:
    """A word-level tokenizer that wraps every prompt as <s> words </s>, made offline."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 2), ("</s>", 3)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
    )
    fast.save_pretrained(folder)


def _tiny_model(kind: str) -> torch.nn.Module:
    import transformers as tf

    torch.manual_seed(0)
    n = len(WORDS)
    if kind == "bert":
        config = tf.BertConfig(
            vocab_size=n, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=32, max_position_embeddings=64,
        )  # fmt: skip
        return tf.BertModel(config)
    if kind == "t5":
        config = tf.T5Config(vocab_size=n, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2)
        return tf.T5EncoderModel(config)
    config = tf.CLIPTextConfig(
        vocab_size=n, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, max_position_embeddings=64, bos_token_id=2, eos_token_id=3,
        pad_token_id=0,
    )  # fmt: skip
    return tf.CLIPTextModel(config)


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny random BERT, T5 encoder and CLIP text tower saved as local model folders."""
    root = tmp_path_factory.mktemp("encoders")
    folders = {}
    for kind in ("bert", "t5", "clip"):
        folders[kind] = root / kind
        _tiny_model(kind).save_pretrained(folders[kind])
        _save_tiny_tokenizer(folders[kind])
    return folders


@pytest.fixture(scope="module")
def minilm():
    return load_text_encoder(TextEncoderConfig(), "cpu")


def _count_forward_calls(encoder, work) -> int:
    """How many forward passes of the encoder's model ``work()`` costs."""
    calls = []
    handle = encoder.model.register_forward_hook(lambda *_: calls.append(1))
    try:
        work()
    finally:
        handle.remove()
    return len(calls)


# ---- bundled MiniLM ------------------------------------------------------------------------


def test_minilm_shapes_mask_and_mean_pooling(minilm):
    prompts = ["a person walks forward", "someone jumps"]
    enc = minilm.encode(prompts)
    lengths = [len(minilm.tokenizer(p)["input_ids"]) for p in prompts]
    assert minilm.dim == 384 and len(enc) == 2
    assert enc.tokens.shape == (2, max(lengths), 384)
    assert enc.mask.sum(dim=1).tolist() == lengths
    for i, n in enumerate(lengths):
        torch.testing.assert_close(enc.pooled[i], enc.tokens[i, :n].mean(dim=0))
        assert torch.all(enc.tokens[i, n:] == 0)


def test_minilm_pooled_matches_sentence_transformers(minilm):
    """sentence-transformers' embedding is our pooled vector, L2-normalised."""
    st = pytest.importorskip("sentence_transformers")
    from engine.text_encoder import bundled_minilm_folder

    reference = st.SentenceTransformer(str(bundled_minilm_folder()), device="cpu")
    prompts = ["a person walks forward and waves", "a man kicks with his left leg"]
    expected = torch.as_tensor(reference.encode(prompts))
    pooled = minilm.encode(prompts).pooled
    torch.testing.assert_close(
        pooled / pooled.norm(dim=1, keepdim=True), expected, atol=1e-5, rtol=0
    )


def test_encoding_does_not_depend_on_batch_or_cache(minilm):
    minilm.clear_cache()
    alone = minilm.encode(["a person walks"])
    minilm.clear_cache()
    batched = minilm.encode(["a man does a cartwheel then bows", "a person walks"])
    n = int(alone.mask.sum())
    assert torch.equal(batched.tokens[1, :n], alone.tokens[0, :n])
    assert torch.equal(batched.pooled[1], alone.pooled[0])


def test_repeated_prompts_and_null_cost_no_forward_pass(minilm):
    prompt = "a person runs in a circle"
    assert _count_forward_calls(minilm, lambda: minilm.encode([prompt])) == 1
    minilm.null(1)
    assert _count_forward_calls(minilm, lambda: minilm.encode([prompt, prompt])) == 0
    assert _count_forward_calls(minilm, lambda: minilm.null(3)) == 0
    null = minilm.null(3)
    assert null.tokens.shape[0] == 3 and torch.equal(null.tokens[0], null.tokens[2])
    assert null.mask[0].sum() == 2  # [CLS] [SEP] of the empty prompt


def test_cache_evicts_least_recently_used(tiny_folders):
    encoder = build_text_encoder(TextEncoderConfig(name=str(tiny_folders["bert"])))
    encoder.cache_size = 2
    assert _count_forward_calls(encoder, lambda: encoder.encode(["a", "person", "a", "walks"])) == 3
    assert _count_forward_calls(encoder, lambda: encoder.encode(["walks", "a"])) == 0
    assert _count_forward_calls(encoder, lambda: encoder.encode(["person"])) == 1


def test_load_text_encoder_shares_one_instance(minilm):
    assert load_text_encoder(TextEncoderConfig(), "cpu") is minilm
    assert load_text_encoder(TextEncoderConfig(max_tokens=8), "cpu") is not minilm


def test_encoder_is_frozen(minilm):
    assert not minilm.model.training
    assert not any(p.requires_grad for p in minilm.model.parameters())
    assert not minilm.encode(["a person sits down"]).tokens.requires_grad


# ---- other encoders, one config value away -------------------------------------------------


@pytest.mark.parametrize("kind", ["bert", "t5", "clip"])
def test_local_folders_resolve_by_model_type(tiny_folders, kind):
    encoder = build_text_encoder(TextEncoderConfig(name=str(tiny_folders[kind])))
    assert encoder.kind == kind and encoder.dim == 16
    enc = encoder.encode(["a person walks forward", "a person jumps"])
    assert enc.tokens.shape == (2, 6, 16)  # <s> a person walks forward </s>
    assert enc.mask.sum(dim=1).tolist() == [6, 5]
    if kind == "clip":  # pooled = the final-norm state at the EOS token (last real token)
        torch.testing.assert_close(enc.pooled[1], enc.tokens[1, 4])
    else:
        torch.testing.assert_close(enc.pooled[1], enc.tokens[1, :5].mean(dim=0))


def test_max_tokens_truncates(tiny_folders):
    config = TextEncoderConfig(name=str(tiny_folders["bert"]), max_tokens=3)
    enc = build_text_encoder(config).encode(["a person walks forward and back"])
    assert enc.tokens.shape[1] == 3


def test_bad_encoder_names_and_kinds(tmp_path):
    with pytest.raises(MotionError, match="kind 'gpt' is not one of"):
        TextEncoderConfig.from_dict({"kind": "gpt"})
    with pytest.raises(MotionError, match="max_tokens must be at least 2"):
        TextEncoderConfig(max_tokens=1)
    with pytest.raises(MotionError, match="no such folder"):
        build_text_encoder(TextEncoderConfig(name=str(tmp_path / "nowhere" / "x" / "y")))
    with pytest.raises(MotionError, match="cannot load text encoder"):
        build_text_encoder(TextEncoderConfig(name=str(tmp_path)))  # a folder without a model


# ---- prompt checks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("", "prompt 1 is empty"),
        ("  \t ", "prompt 1 is empty"),
        ("x" * (MAX_PROMPT_CHARS + 1), f"1001 characters long; the limit is {MAX_PROMPT_CHARS}"),
        ("ab\x07cd", r"U\+0007 .* at position 3"),
        ("walk\nrun", r"U\+000A .* at position 5"),
        (42, "expected text, got int"),
    ],
)
def test_validate_prompt_rejects(prompt, message):
    with pytest.raises(MotionError, match=message):
        validate_prompt(prompt)


def test_encode_names_the_bad_prompt_and_accepts_the_limit(tiny_folders):
    encoder = build_text_encoder(TextEncoderConfig(name=str(tiny_folders["bert"])))
    with pytest.raises(MotionError, match="prompt 2 is empty"):
        encoder.encode(["a person walks", " "])
    with pytest.raises(MotionError, match="no prompt"):
        encoder.encode([])
    assert len(encoder.encode("a " * (MAX_PROMPT_CHARS // 2))) == 1  # exactly 1000 characters


# ---- TextEncoding helpers ------------------------------------------------------------------


def _encoding(b: int, length: int, d: int = 3, fill: float = 1.0) -> TextEncoding:
    return TextEncoding(
        torch.full((b, length, d), fill), torch.ones(b, length, dtype=torch.bool), torch.zeros(b, d)
    )


def test_cat_pads_to_longest_and_marks_padding():
    both = TextEncoding.cat([_encoding(1, 2, fill=1.0), _encoding(2, 4, fill=2.0)])
    assert both.tokens.shape == (3, 4, 3) and len(both) == 3
    assert both.mask[0].tolist() == [True, True, False, False]
    assert torch.all(both.tokens[0, 2:] == 0) and torch.all(both.tokens[1:] == 2)


def test_repeat_interleave_and_index_keep_prompt_order():
    enc = TextEncoding.cat([_encoding(1, 2, fill=1.0), _encoding(1, 2, fill=2.0)])
    rep = enc.repeat_interleave(2)
    assert rep.tokens[:, 0, 0].tolist() == [1, 1, 2, 2]
    assert rep.index(2).tokens[:, 0, 0].tolist() == [2]
    assert rep.index(-1).tokens[:, 0, 0].tolist() == [2]
    assert rep.index([0, 3]).tokens[:, 0, 0].tolist() == [1, 2]
    assert rep.to("cpu").device == torch.device("cpu")


def test_encoding_checks_shapes():
    with pytest.raises(ValueError, match="mask must be bool"):
        TextEncoding(torch.zeros(2, 3, 4), torch.ones(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="pooled must be"):
        TextEncoding(torch.zeros(2, 3, 4), torch.ones(2, 3, dtype=torch.bool), torch.zeros(2, 5))


def test_blank_embedding_rows_are_found_and_refused(tiny_folders, tmp_path):
    """A slimmed encoder copy (rows of unseen words zeroed) reads those words as nothing:
    ``blank_tokens`` names them and ``check_reads`` refuses captions that hold them."""
    from engine.text_encoder import check_reads

    folder = tmp_path / "slimmed"
    model = _tiny_model("bert")
    with torch.no_grad():
        model.get_input_embeddings().weight[WORDS.index("jumps")] = 0.0
    model.save_pretrained(folder)
    _save_tiny_tokenizer(folder)
    slimmed = build_text_encoder(TextEncoderConfig(name=str(folder)))
    assert slimmed.blank_tokens(["a person walks forward", "a person jumps"]) == ["jumps"]
    check_reads(slimmed, ["a person walks back"], "here")  # every word has its row
    with pytest.raises(MotionError, match="no embedding for 1 token.*'jumps'.*--texts"):
        check_reads(slimmed, ["a person walks", "a person jumps back"], "training on X")
    whole = build_text_encoder(TextEncoderConfig(name=str(tiny_folders["bert"])))
    assert whole.blank_tokens(["a person jumps"]) == []
